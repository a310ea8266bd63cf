/*
 * virtio-blk-pci: the device model, options and configuration space. The
 * requests themselves are virtio-blk-req.c's, shared with the vhost-user-blk
 * export of vireo-storage-daemon. Completions arrive on the main loop
 * through the block queue's eventfd.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "block/node.h"
#include "core/main-loop.h"
#include "core/runstate.h"
#include "qapi/qapi-events.h"
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
    BlockImage *img;            /* the node's, shared with its other users */
    BlockQueue *bq;             /* the node's queue, shared too */
    BlockNode *node;
    BlockNodeUser *user;        /* our claim on the node */
    char *serial;               /* get-id answer, NULL: empty */
    int werror, rerror;         /* ON_ERROR_* */
    bool readonly;
    bool writeback;             /* the cache mode at power-on (cache=writethrough|directsync: off) */
    bool pending_notify[MAX_QUEUES];
} VirtIOBlock;

static const OptParam blk_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "drive", OPT_STRING, "id of the -drive, or a node name" },
    { "share-rw", OPT_BOOL, "let other users of the node write too", "off" },
    { "werror", OPT_STRING, "on write errors: auto, enospc, ignore, report or stop", "auto" },
    { "rerror", OPT_STRING, "on read errors: auto, enospc, ignore, report or stop", "auto" },
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

/* ---- rerror= / werror= ---- */

enum { ON_ERROR_REPORT, ON_ERROR_IGNORE, ON_ERROR_STOP, ON_ERROR_ENOSPC };

static bool parse_on_error(const char *value, const char *what, int *out, Error **errp)
{
    static const char *const names[] = { "report", "ignore", "stop", "enospc" };
    for (int i = 0; i < 4; i++) {
        if (!strcmp(value, names[i])) {
            *out = i;
            return true;
        }
    }
    error_setg(errp, "'%s' invalid %s error action", value, what);
    return false;
}

/* The device's setting, else the -drive's, else QEMU's default. */
static bool error_policy(const KeyValList *kv, const BlockNode *n, bool read, int *out,
                         Error **errp)
{
    const char *v = keyval_get(kv, read ? "rerror" : "werror");
    if (!v || !strcmp(v, "auto")) {
        v = read ? block_node_drive_rerror(n) : block_node_drive_werror(n);
    }
    if (!v) {
        *out = read ? ON_ERROR_REPORT : ON_ERROR_ENOSPC;
        return true;
    }
    return parse_on_error(v, read ? "read" : "write", out, errp);
}

static VirtioBlkErrorAction blk_io_error(VirtioBlkBackend *be, bool is_read, int err)
{
    VirtIOBlock *blk = be->opaque;
    int policy = is_read ? blk->rerror : blk->werror;
    VirtioBlkErrorAction action =
        policy == ON_ERROR_IGNORE ? VIRTIO_BLK_ERROR_IGNORE
        : policy == ON_ERROR_STOP || (policy == ON_ERROR_ENOSPC && err == ENOSPC)
        ? VIRTIO_BLK_ERROR_STOP : VIRTIO_BLK_ERROR_REPORT;
    const char *device = block_node_device(blk->node);
    BlockErrorAction qaction = action == VIRTIO_BLK_ERROR_IGNORE ? BLOCK_ERROR_ACTION_IGNORE
                               : action == VIRTIO_BLK_ERROR_STOP ? BLOCK_ERROR_ACTION_STOP
                               : BLOCK_ERROR_ACTION_REPORT;
    qapi_event_send_block_io_error(device ? device : "", true, block_node_name(blk->node),
                                   is_read ? IO_OPERATION_TYPE_READ : IO_OPERATION_TYPE_WRITE,
                                   qaction, true, err == ENOSPC, strerror(err));
    if (action == VIRTIO_BLK_ERROR_STOP) {
        if (blk->user && !block_node_user_io_status(blk->user)) {
            block_node_user_set_io_status(blk->user, err == ENOSPC ? 2 : 1);
        }
        if (runstate_is_running()) {
            vm_stop(RUN_STATE_IO_ERROR);
        }
    }
    return action;
}

/* cont: the requests an error stopped go again, the status is ok again. */
static void retry_stopped(void *opaque);

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

/* The node ran a batch of completions: tell the guest about ours. */
static void blk_io_done(void *opaque)
{
    notify_pending(opaque);
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
    virtio_blk_drop_held(&blk->be);
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

/* Drain in-flight requests into still-mapped guest RAM, then let the node go. */
static void blk_quiesce(VirtIODevice *vdev)
{
    VirtIOBlock *blk = vdev->opaque;
    if (!blk->bq) {
        return;
    }
    blk_queue_drain(blk->bq);
    virtio_blk_drop_held(&blk->be);
    blk->bq = NULL;
    blk->img = NULL;
    block_node_detach(blk->user);
    blk->user = NULL;
}

/* Hot-unplug, after blk_quiesce let the node go. */
static void blk_unrealize(VirtIODevice *vdev)
{
    VirtIOBlock *blk = vdev->opaque;
    free(blk->serial);
    free(blk->vdev.config);
    free(blk->vdev.vq);
    free(blk);
}

static const VirtIODeviceOps blk_ops = {
    .reset = blk_reset,
    .config_write = blk_config_write,
    .quiesce = blk_quiesce,
    .unrealize = blk_unrealize,
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

/*
 * Claim the node as QEMU's virtio-blk does: read, and write unless it is
 * read-only; others may read, resize and rewrite unchanged data, and write
 * only with share-rw=on.
 */
static bool use_node(VirtIOBlock *blk, const KeyValList *kv, const char *drive, Error **errp)
{
    const char *id = keyval_get(kv, "id");
    blk->readonly = block_node_read_only(blk->node);
    blk->writeback = block_node_writeback(blk->node);
    unsigned perm = BLK_PERM_CONSISTENT_READ | (blk->readonly ? 0 : BLK_PERM_WRITE);
    unsigned shared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED | BLK_PERM_RESIZE |
                      (keyval_get_bool(kv, "share-rw", false) ? BLK_PERM_WRITE : 0);
    char *desc = id ? xasprintf("block device '/machine/peripheral/%s/virtio-backend'", id)
                    : xstrdup("block device 'virtio-blk-pci'");
    blk->img = block_node_image(blk->node, errp);
    blk->user = blk->img ? block_node_attach(blk->node, desc, NULL, perm, shared, errp) : NULL;
    free(desc);
    if (!blk->user) {
        return false;
    }
    blk->bq = block_node_queue(blk->node, QUEUE_SIZE * 2, errp);
    if (!blk->bq) {
        return false;
    }
    block_node_user_set_io_done(blk->user, blk_io_done, blk);
    blk->be.gather_segments = virtio_blk_on_forwarding_fs(block_node_filename(blk->node));
    return true;
}

/* drive=: a -drive id (its device name) or a node name, as QEMU takes it. */
static BlockNode *find_drive(const char *drive, Error **errp)
{
    BlockNode *n = block_node_find_device(drive);
    if (n) {
        for (BlockNodeUser *u = block_node_user_first(n); u; u = block_node_user_next(u)) {
            if (block_node_user_qdev(u)) {
                error_setg(errp, "Drive '%s' is already in use by another device", drive);
                return NULL;
            }
        }
        return n;
    }
    n = block_node_find(drive);
    if (!n) {
        error_setg(errp, "Property 'virtio-blk-device.drive' can't find value '%s'", drive);
    }
    return n;
}

static bool blk_setup(const VirtioCreateContext *ctx, const KeyValList *kv, VirtIOBlock *blk,
                      unsigned *nq, Error **errp)
{
    const char *drive = keyval_get(kv, "drive");
    *nq = keyval_get_number(kv, "num-queues", 1);
    unsigned qsize = keyval_get_number(kv, "queue-size", QUEUE_SIZE);
    if (!drive) {
        error_setg(errp, "drive property not set");
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
    blk->node = find_drive(drive, errp);
    if (!blk->node || !error_policy(kv, blk->node, false, &blk->werror, errp) ||
        !error_policy(kv, blk->node, true, &blk->rerror, errp) ||
        !use_node(blk, kv, drive, errp)) {
        return false;
    }
    const char *serial = keyval_get(kv, "serial");
    blk->serial = serial ? xstrdup(serial) : NULL;
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
        .stats = block_node_stats(blk->node), .completed = blk_completed,
        .io_error = blk_io_error, .opaque = blk,
    };
    static bool retry_registered;
    if (!retry_registered) {
        register_vm_start_handler(retry_stopped, NULL);
        retry_registered = true;
    }
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
    if (ok) {
        block_node_user_set_qdev(blk->user, blk->vdev.path);
    }
    if (!ok) {
        block_node_detach(blk->user);
        free(blk->serial);
        free(blk->vdev.config);
        free(blk->vdev.vq);
        free(blk);
    }
    return ok;
}

static void retry_stopped(void *opaque)
{
    for (VirtIODevice *vdev = virtio_device_first(); vdev; vdev = vdev->next) {
        VirtIOBlock *blk = vdev->ops == &blk_ops ? vdev->opaque : NULL;
        if (blk && blk->bq) {
            if (blk->user) {
                block_node_user_set_io_status(blk->user, 0);
            }
            virtio_blk_retry_held(&blk->be);
            notify_pending(blk);
        }
    }
}

/* The virtio-blk disk using node @n, NULL when none does. */
static VirtIOBlock *find_by_node(const BlockNode *n)
{
    for (VirtIODevice *vdev = virtio_device_first(); vdev; vdev = vdev->next) {
        VirtIOBlock *blk = vdev->ops == &blk_ops ? vdev->opaque : NULL;
        if (blk && blk->img && blk->node == n) {
            return blk;
        }
    }
    return NULL;
}

void qmp_block_resize(bool has_device, const char *device, bool has_node_name,
                      const char *node_name, int64_t size, Error **errp)
{
    BlockNode *n = block_node_lookup(has_device ? device : NULL,
                                     has_node_name ? node_name : NULL, errp);
    if (!n) {
        return;
    }
    if (size < 0) {
        error_setg(errp, "Parameter 'size' expects a >0 size");
        return;
    }
    BlockImage *img = block_node_image(n, errp);
    if (!img || blk_resize(img, (uint64_t)size, errp) < 0) {
        return;
    }
    VirtIOBlock *blk = find_by_node(n);
    if (blk) {
        /* The capacity field leads the config space, in 512-byte sectors. */
        uint64_t sectors = htole64(blk_size(blk->img) / SECTOR_SIZE);
        memcpy(blk->vdev.config, &sectors, sizeof(sectors));
        virtio_notify_config(&blk->vdev);
    }
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *virtio_blk_pci_params(void);
const OptParam *virtio_blk_pci_params(void)
{
    return blk_params;
}
