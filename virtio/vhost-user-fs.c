/*
 * vhost-user-fs-pci: virtio-fs (device id 26) served by a vhost-user
 * back-end such as virtiofsd. vireo builds the configuration space itself
 * (the mount tag and the number of request queues, as QEMU does); queue 0
 * is the high-priority queue, the request queues follow. Modern only.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"
#include "virtio/vhost-user-device.h"

#define FS_TAG_SIZE         36      /* struct virtio_fs_config.tag */
#define FS_CFG_NUM_QUEUES   36      /* le32 num_request_queues */
#define FS_CFG_SIZE         40
#define DEFAULT_QUEUE_SIZE  128

static const OptParam vufs_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "chardev", OPT_STRING, "UNIX socket chardev of the vhost-user back-end" },
    { "tag", OPT_STRING, "mount tag the guest names" },
    { "num-request-queues", OPT_NUMBER, "request queues", "1" },
    { "queue-size", OPT_NUMBER, "size of each queue", "128" },
    { "bootindex", OPT_NUMBER, "boot order (ignored)" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};

static const unsigned vufs_feature_bits[] = {
    VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_RING_PACKED, VIRTIO_F_IOMMU_PLATFORM,
    VIRTIO_F_RING_RESET, UINT32_MAX,
};

static bool vufs_check_props(const char *tag, unsigned nrq, unsigned qsize, Error **errp)
{
    if (!tag) {
        error_setg(errp, "missing tag property");
    } else if (!*tag) {
        error_setg(errp, "tag property cannot be empty");
    } else if (strlen(tag) > FS_TAG_SIZE) {
        error_setg(errp, "tag property must be %d bytes or less", FS_TAG_SIZE);
    } else if (nrq == 0) {
        error_setg(errp, "num-request-queues property must be larger than 0");
    } else if (qsize == 0 || (qsize & (qsize - 1))) {
        error_setg(errp, "queue-size property must be a power of 2");
    } else if (qsize > VIRTQUEUE_MAX_SIZE) {
        error_setg(errp, "queue-size property must be %d or smaller", VIRTQUEUE_MAX_SIZE);
    } else {
        return true;
    }
    return false;
}

static bool vufs_setup(VhostUserDevice *s, const VirtioCreateContext *ctx, const KeyValList *kv,
                       Error **errp)
{
    const char *tag = keyval_get(kv, "tag");
    unsigned nrq = keyval_get_number(kv, "num-request-queues", 1);
    unsigned qsize = keyval_get_number(kv, "queue-size", DEFAULT_QUEUE_SIZE);
    Chardev *chr = vhost_user_device_chardev(kv, "vhost-user-fs-device", "missing chardev",
                                             errp);
    if (!chr || !vufs_check_props(tag, nrq, qsize, errp)) {
        return false;
    }
    VhostUserSetup setup = { .feature_bits = vufs_feature_bits };
    /* Queue 0 is the high-priority queue; the request queues follow. */
    if (!vhost_user_device_init(s, ctx, chr, "vhost-user-fs", VIRTIO_ID_FS, FS_CFG_SIZE,
                                nrq + 1, qsize, &vhost_user_device_ops, setup, errp)) {
        return false;
    }
    memcpy(s->vdev.config, tag, strlen(tag));
    uint32_t le_nrq = htole32(nrq);
    memcpy(s->vdev.config + FS_CFG_NUM_QUEUES, &le_nrq, sizeof(le_nrq));
    s->vdev.host_features = vhost_user_mask_features(s->vu, s->vdev.host_features);
    return true;
}

bool vhost_user_fs_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "driver", vufs_params, &kv, errp)) {
        return false;
    }
    VhostUserDevice *s = xzalloc(sizeof(*s));
    bool ok = vufs_setup(s, ctx, &kv, errp);
    /* virtio-fs exists only as a virtio 1.x device */
    ok = vhost_user_device_plug(s, ok, ctx, &kv, "vhost-user-fs-pci", 0x018000, true, errp);
    keyval_free(&kv);
    return ok;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *vhost_user_fs_pci_params(void);
const OptParam *vhost_user_fs_pci_params(void)
{
    return vufs_params;
}
