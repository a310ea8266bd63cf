/*
 * virtio-blk-pci: the device model, options and configuration space. The
 * requests themselves are virtio-blk-req.c's, shared with the vhost-user-blk
 * export of vireo-storage-daemon. Completions arrive on the main loop
 * through the block queue's eventfd.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "core/main-loop.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"
#include "virtio/virtio-blk-req.h"
#include "virtio/virtio-pci.h"

#define SECTOR_SIZE     VIRTIO_BLK_SECTOR_SIZE
#define QUEUE_SIZE      256
#define MAX_QUEUES      16

typedef struct VirtIOBlock {
    VirtIODevice vdev;
    VirtioBlkBackend be;        /* the request engine: image, queue, serial */
    BlockImage *img;
    BlockQueue *bq;
    char *serial;               /* get-id answer, NULL: empty */
    char *drive_id;             /* -drive id= of the image, for block_resize */
    bool readonly;
    bool writeback;             /* the cache mode at power-on (cache=writethrough|directsync: off) */
    bool pending_notify[MAX_QUEUES];
} VirtIOBlock;

static const OptParam blk_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "drive", OPT_STRING, "id of the -drive" },
    { "serial", OPT_STRING, "disk serial number" },
    { "num-queues", OPT_NUMBER, "request queues", "1" },
    { "queue-size", OPT_NUMBER, "size of each queue", "256" },
    { "config-wce", OPT_BOOL, "guest may change the cache mode", "on" },
    { "discard", OPT_BOOL, "offer discard", "on" },
    { "write-zeroes", OPT_BOOL, "offer write-zeroes", "on" },
    { "bootindex", OPT_NUMBER, "boot order (ignored)" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};

/* ---- completing requests ---- */

static void blk_completed(VirtioBlkBackend *be, VirtQueue *vq, const VirtQueueElement *elem,
                          uint32_t written)
{
    VirtIOBlock *blk = be->opaque;
    if (vq->index < MAX_QUEUES) {
        blk->pending_notify[vq->index] = true;
    }
}

static void notify_pending(VirtIOBlock *blk)
{
    for (unsigned q = 0; q < blk->vdev.nvqs && q < MAX_QUEUES; q++) {
        if (blk->pending_notify[q]) {
            blk->pending_notify[q] = false;
            virtqueue_notify(&blk->vdev.vq[q]);
        }
    }
}

static void blk_queue_ready(void *opaque)
{
    VirtIOBlock *blk = opaque;
    blk_queue_process(blk->bq, false);
    notify_pending(blk);
}

static void blk_handle_output(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBlock *blk = vdev->opaque;
    VirtQueueElement elem;
    do {
        virtqueue_set_notification(vq, false);
        while (virtqueue_pop(vq, &elem)) {
            virtio_blk_handle_request(&blk->be, vq, &elem);
        }
        virtqueue_set_notification(vq, true);
    } while (!virtqueue_empty(vq));
    notify_pending(blk);
}

/* ---- device ---- */

static void blk_reset(VirtIODevice *vdev)
{
    VirtIOBlock *blk = vdev->opaque;
    /* Rings are gone: completions now only free their requests. */
    if (blk->bq) {
        blk_queue_drain(blk->bq);
    }
    memset(blk->pending_notify, 0, sizeof(blk->pending_notify));
    vdev->config[VIRTIO_BLK_CFG_WRITEBACK] = blk->writeback;
}

static void blk_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size)
{
    /* Only the cache mode (writeback) byte is the driver's to change. */
    if (offset <= VIRTIO_BLK_CFG_WRITEBACK && offset + size > VIRTIO_BLK_CFG_WRITEBACK) {
        unsigned shift = 8 * (VIRTIO_BLK_CFG_WRITEBACK - offset);
        vdev->config[VIRTIO_BLK_CFG_WRITEBACK] = (val >> shift) & 1;
    }
}

/* Drain in-flight requests into still-mapped guest RAM, then let the image go. */
static void blk_quiesce(VirtIODevice *vdev)
{
    VirtIOBlock *blk = vdev->opaque;
    if (!blk->bq) {
        return;
    }
    main_loop_set_fd_handler(blk_queue_fd(blk->bq), NULL, NULL, NULL);
    blk_queue_free(blk->bq);        /* drains first */
    blk->bq = NULL;
    blk_close(blk->img, NULL);
    blk->img = NULL;
}

static const VirtIODeviceOps blk_ops = {
    .reset = blk_reset,
    .config_write = blk_config_write,
    .quiesce = blk_quiesce,
};

static uint64_t blk_features(const VirtIOBlock *blk, const KeyValList *kv, unsigned nq)
{
    uint64_t f = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_GEOMETRY |
                 1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH |
                 1ULL << VIRTIO_BLK_F_TOPOLOGY;
    f |= keyval_get_bool(kv, "config-wce", true) ? 1ULL << VIRTIO_BLK_F_CONFIG_WCE : 0;
    f |= keyval_get_bool(kv, "discard", true) ? 1ULL << VIRTIO_BLK_F_DISCARD : 0;
    f |= keyval_get_bool(kv, "write-zeroes", true) ? 1ULL << VIRTIO_BLK_F_WRITE_ZEROES : 0;
    f |= nq > 1 ? 1ULL << VIRTIO_BLK_F_MQ : 0;
    f |= blk->readonly ? 1ULL << VIRTIO_BLK_F_RO : 0;
    return f;
}

/* -drive file=..,format=..,if=none,id=..,readonly=on,cache=..,aio=.. */
static bool open_drive(VirtIOBlock *blk, const char *drive_opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(drive_opts, NULL, NULL, &kv, errp)) {
        return false;
    }
    const char *file = keyval_get(&kv, "file");
    const char *cache = keyval_get(&kv, "cache");
    const char *aio = keyval_get(&kv, "aio");
    blk->readonly = keyval_get_bool(&kv, "readonly", false);
    unsigned flags = blk->readonly ? 0 : BLK_O_RDWR;
    blk->writeback = !cache || (strcmp(cache, "writethrough") && strcmp(cache, "directsync"));
    if (cache && (!strcmp(cache, "none") || !strcmp(cache, "directsync"))) {
        flags |= BLK_O_NOCACHE;
    }
    if (aio && (!strcmp(aio, "io_uring") || !strcmp(aio, "native"))) {
        flags |= BLK_O_URING;
    }
    /* driver= names the top driver: a format, or a protocol such as null-co. */
    const char *format = keyval_get(&kv, "format");
    format = format ? format : keyval_get(&kv, "driver");
    bool ok = false;
    if (!file && !format) {
        error_setg(errp, "-drive without file=");
    } else {
        KeyValList proto;
        blk_drive_protocol_options(&kv, &proto);
        blk->img = blk_open_opts(file, format, &proto, flags, errp);
        free(proto.items);
        blk->be.gather_segments = file && virtio_blk_on_forwarding_fs(file);
        blk->bq = blk->img ? blk_queue_new(blk->img, QUEUE_SIZE * 2, errp) : NULL;
        ok = blk->bq != NULL;
    }
    keyval_free(&kv);
    return ok;
}

static bool blk_setup(const VirtioCreateContext *ctx, const KeyValList *kv, VirtIOBlock *blk,
                      unsigned *nq, Error **errp)
{
    const char *drive = keyval_get(kv, "drive");
    const char *drive_opts = drive ? virtio_find_backend_opts(ctx->cfg->drives, drive) : NULL;
    *nq = keyval_get_number(kv, "num-queues", 1);
    unsigned qsize = keyval_get_number(kv, "queue-size", QUEUE_SIZE);
    if (!drive) {
        error_setg(errp, "drive property not set");
        return false;
    }
    if (!drive_opts) {
        error_setg(errp, "Property 'virtio-blk-device.drive' can't find value '%s'", drive);
        return false;
    }
    if (*nq < 1 || *nq > MAX_QUEUES) {
        error_setg(errp, "num-queues property must be between 1 and %d", MAX_QUEUES);
        return false;
    }
    if (qsize < 4 || qsize > VIRTQUEUE_MAX_SIZE || (qsize & (qsize - 1))) {
        error_setg(errp, "queue-size property must be a power of 2 between 4 and %d",
                   VIRTQUEUE_MAX_SIZE);
        return false;
    }
    if (!open_drive(blk, drive_opts, errp)) {
        return false;
    }
    const char *serial = keyval_get(kv, "serial");
    blk->serial = serial ? xstrdup(serial) : NULL;
    blk->drive_id = xstrdup(drive);
    virtio_device_init(&blk->vdev, "virtio-blk", VIRTIO_ID_BLOCK, ctx->mem,
                       VIRTIO_BLK_CFG_SIZE, *nq);
    for (unsigned q = 0; q < *nq; q++) {
        virtio_queue_setup(&blk->vdev, q, qsize, blk_handle_output);
    }
    blk->vdev.host_features |= blk_features(blk, kv, *nq);
    blk->vdev.ops = &blk_ops;
    blk->vdev.opaque = blk;
    virtio_blk_fill_config(blk->vdev.config, blk_size(blk->img), *nq, qsize, blk->writeback,
                           SECTOR_SIZE);
    blk->be = (VirtioBlkBackend){
        .vdev = &blk->vdev, .img = blk->img, .bq = blk->bq, .serial = blk->serial,
        .readonly = blk->readonly, .gather_segments = blk->be.gather_segments,
        .completed = blk_completed, .opaque = blk,
    };
    main_loop_set_fd_handler(blk_queue_fd(blk->bq), blk_queue_ready, NULL, blk);
    return true;
}

bool virtio_blk_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    VirtioPciOptions po;
    unsigned nq = 1;
    if (!keyval_parse(opts, "driver", blk_params, &kv, errp)) {
        return false;
    }
    VirtIOBlock *blk = xzalloc(sizeof(*blk));
    bool ok = blk_setup(ctx, &kv, blk, &nq, errp) &&
              virtio_pci_parse_options(&kv, nq + 1, &po, errp);
    if (ok) {
        virtio_pci_apply_feature_props(&kv, &blk->vdev);
        ok = virtio_pci_plug(ctx, &kv, "virtio-blk-pci", &blk->vdev, 0x010000, &po, errp);
    }
    keyval_free(&kv);
    if (!ok && blk->bq) {
        main_loop_set_fd_handler(blk_queue_fd(blk->bq), NULL, NULL, NULL);
        blk_queue_free(blk->bq);
    }
    if (!ok) {
        if (blk->img) {
            blk_close(blk->img, NULL);
        }
        free(blk->serial);
        free(blk->drive_id);
        free(blk->vdev.config);
        free(blk->vdev.vq);
        free(blk);
    }
    return ok;
}

/* The virtio-blk disk whose image is the drive @drive, NULL when none is. */
static VirtIOBlock *find_by_drive(const char *drive)
{
    for (VirtIODevice *vdev = virtio_device_first(); vdev; vdev = vdev->next) {
        VirtIOBlock *blk = vdev->ops == &blk_ops ? vdev->opaque : NULL;
        if (blk && blk->img && blk->drive_id && !strcmp(blk->drive_id, drive)) {
            return blk;
        }
    }
    return NULL;
}

void qmp_block_resize(bool has_device, const char *device, bool has_node_name,
                      const char *node_name, int64_t size, Error **errp)
{
    const char *name = has_device ? device : has_node_name ? node_name : "";
    VirtIOBlock *blk = find_by_drive(name);
    if (!blk) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   has_device ? device : "", has_node_name ? node_name : "");
        return;
    }
    if (size < 0) {
        error_setg(errp, "New size cannot be negative");
        return;
    }
    if (blk_resize(blk->img, (uint64_t)size, errp) < 0) {
        return;
    }
    /* The capacity field leads the config space, in 512-byte sectors. */
    uint64_t sectors = htole64(blk_size(blk->img) / SECTOR_SIZE);
    memcpy(blk->vdev.config, &sectors, sizeof(sectors));
    virtio_notify_config(&blk->vdev);
}
