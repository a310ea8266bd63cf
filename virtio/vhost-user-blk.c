/*
 * vhost-user-blk-pci: a virtio block device whose requests are served by a
 * vhost-user back-end (qemu-storage-daemon --export type=vhost-user-blk,
 * vireo-storage-daemon). Capacity and geometry come from the back-end's
 * configuration space; vireo only forwards the cache-mode byte the driver
 * may write. Properties and error texts are QEMU 7.2's.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"
#include "virtio/vhost-user-device.h"
#include "virtio/virtio-blk-req.h"

#define DEFAULT_QUEUE_SIZE 128
#define MAX_QUEUES 1024

typedef struct VhostUserBlk {
    VhostUserDevice base;       /* first */
    bool config_wce;            /* the driver may switch write-back on and off */
} VhostUserBlk;

static const OptParam vub_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "chardev", OPT_STRING, "UNIX socket chardev of the vhost-user back-end" },
    { "num-queues", OPT_NUMBER, "request queues", "1" },
    { "queue-size", OPT_NUMBER, "size of each queue", "128" },
    { "config-wce", OPT_BOOL, "guest may change the cache mode", "on" },
    { "bootindex", OPT_NUMBER, "boot order (ignored)" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};

/* Bits that count only if the back-end offers them (QEMU 7.2's list). */
static const unsigned vub_feature_bits[] = {
    VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_GEOMETRY,
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_MQ, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC,
    VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_RING_PACKED,
    VIRTIO_F_IOMMU_PLATFORM, VIRTIO_F_RING_RESET, UINT32_MAX,
};

/* Only the write-back byte is the driver's to change, and only with config-wce. */
static void vub_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size)
{
    VhostUserBlk *s = vdev->opaque;
    if (!s->config_wce || offset != VIRTIO_BLK_CFG_WRITEBACK || size != 1) {
        return;
    }
    uint8_t wce = val ? 1 : 0;
    Error *err = NULL;
    if (vhost_user_set_config(s->base.vu, &wce, offset, 1, &err)) {
        vdev->config[offset] = wce;
    } else {
        virtio_mark_broken(vdev, "%s", error_get_pretty(err));
        error_free(err);
    }
}

/*
 * The back-end's configuration changed (qemu-storage-daemon's block_resize):
 * as QEMU does, only a new capacity is taken, and the driver is told with a
 * configuration interrupt.
 */
static void vub_config_change(VirtIODevice *vdev)
{
    VhostUserBlk *s = vdev->opaque;
    uint8_t cfg[VIRTIO_BLK_CFG_SIZE];
    Error *err = NULL;
    if (!vhost_user_get_config(s->base.vu, cfg, sizeof(cfg), &err)) {
        error_free(err);        /* the protocol module dealt with the back-end */
        return;
    }
    if (memcmp(vdev->config + VIRTIO_BLK_CFG_CAPACITY, cfg + VIRTIO_BLK_CFG_CAPACITY, 8) != 0) {
        memcpy(vdev->config + VIRTIO_BLK_CFG_CAPACITY, cfg + VIRTIO_BLK_CFG_CAPACITY, 8);
        virtio_notify_config(vdev);
    }
}

static const VirtIODeviceOps vub_ops = {
    .reset = vhost_user_device_reset,
    .set_status = vhost_user_device_set_status,
    .config_write = vub_config_write,
    .quiesce = vhost_user_device_quiesce,
};

static uint64_t vub_features(const VhostUserBlk *s, unsigned nq)
{
    uint64_t f = s->base.vdev.host_features |
        1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX |
        1ULL << VIRTIO_BLK_F_GEOMETRY | 1ULL << VIRTIO_BLK_F_TOPOLOGY |
        1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_RO |
        1ULL << VIRTIO_BLK_F_DISCARD | 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
    if (s->config_wce) {
        f |= 1ULL << VIRTIO_BLK_F_CONFIG_WCE;
    }
    if (nq > 1) {
        f |= 1ULL << VIRTIO_BLK_F_MQ;
    }
    return vhost_user_mask_features(s->base.vu, f);
}

static bool vub_check_props(unsigned nq, unsigned qsize, Error **errp)
{
    if (nq < 1 || nq > MAX_QUEUES) {
        error_setg(errp, "invalid number of IO queues: %u", nq);
        return false;
    }
    if (qsize <= 2) {
        error_setg(errp, "queue size must be greater than 2");
        return false;
    }
    if (qsize > VIRTQUEUE_MAX_SIZE || (qsize & (qsize - 1))) {
        error_setg(errp, "queue size must be a power of 2 not above %d", VIRTQUEUE_MAX_SIZE);
        return false;
    }
    return true;
}

static bool vub_setup(VhostUserBlk *s, const VirtioCreateContext *ctx, const KeyValList *kv,
                      Error **errp)
{
    unsigned nq = keyval_get_number(kv, "num-queues", 1);
    unsigned qsize = keyval_get_number(kv, "queue-size", DEFAULT_QUEUE_SIZE);
    s->config_wce = keyval_get_bool(kv, "config-wce", true);
    Chardev *chr = vhost_user_device_chardev(kv, "vhost-user-blk", "chardev is mandatory", errp);
    if (!chr || !vub_check_props(nq, qsize, errp)) {
        return false;
    }
    VhostUserSetup setup = {
        .units = nq, .want_config = true, .want_inflight = true,
        .feature_bits = vub_feature_bits, .config_change = vub_config_change,
    };
    VirtIODevice *vdev = &s->base.vdev;
    if (!vhost_user_device_init(&s->base, ctx, chr, "vhost-user-blk", VIRTIO_ID_BLOCK,
                                VIRTIO_BLK_CFG_SIZE, nq, qsize, &vub_ops, setup, errp) ||
        !vhost_user_get_config(s->base.vu, vdev->config, VIRTIO_BLK_CFG_SIZE, errp)) {
        return false;
    }
    /* The queue count is the frontend's choice, whatever the back-end wrote. */
    uint16_t le_nq = htole16((uint16_t)nq);
    memcpy(vdev->config + VIRTIO_BLK_CFG_NUM_QUEUES, &le_nq, sizeof(le_nq));
    vdev->host_features = vub_features(s, nq);
    return true;
}

bool vhost_user_blk_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "driver", vub_params, &kv, errp)) {
        return false;
    }
    VhostUserBlk *s = xzalloc(sizeof(*s));
    bool ok = vub_setup(s, ctx, &kv, errp);
    ok = vhost_user_device_plug(&s->base, ok, ctx, &kv, "vhost-user-blk-pci", 0x010000, false,
                                errp);
    keyval_free(&kv);
    return ok;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *vhost_user_blk_pci_params(void);
const OptParam *vhost_user_blk_pci_params(void)
{
    return vub_params;
}
