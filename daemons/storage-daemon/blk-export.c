/*
 * The vhost-user-blk export: a vhost-user back-end (vhost-user/) whose rings
 * run the shared virtio-blk request engine (virtio/virtio-blk-req.c) on a
 * block node. Completions come back through the block queue's eventfd on
 * the same loop as the socket and the kicks, so nothing here needs a lock.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/dirty-bitmap.h"
#include "block/node.h"
#include "daemons/storage-daemon/storage-daemon.h"
#include "util/keyval.h"
#include "util/osdep.h"
#include "vhost-user/vhost-user.h"
#include "virtio/virtio-blk-req.h"

/* QEMU's vhost-user-blk uses 128-entry rings; this bounds requests in flight. */
#define QUEUE_DEPTH_PER_RING 256

/*
 * One open node, shared by every export of it (as qemu-storage-daemon lets
 * a node be exported on several sockets, e.g. to the source and the
 * destination of a migration). The image has one I/O queue; its completions
 * belong to whichever export submitted them.
 */
typedef struct ExportNode {
    char *name;
    BlockImage *img;
    BlockQueue *bq;
    VuLoop *loop;
    bool writable, gather;
    unsigned users;
    struct ExportNode *next;
} ExportNode;

struct BlkExport {
    char *id;
    char *node_name;
    VuLoop *loop;
    VuDev dev;
    VirtioBlkBackend be;
    ExportNode *node;
    BlockImage *img;
    BlockQueue *bq;
    bool pending_notify[VU_MAX_QUEUES];
    struct BlkExport *next;
};

static BlkExport *exports;
static ExportNode *export_nodes;

static void export_free(BlkExport *e);

static const OptParam export_params[] = {
    { "type", OPT_STRING, "vhost-user-blk" },
    { "id", OPT_STRING, "export id" },
    { "node-name", OPT_STRING, "block node to export" },
    { "addr.type", OPT_STRING, "unix or fd" },
    { "addr.path", OPT_STRING, "socket path (unix)" },
    { "addr.str", OPT_STRING, "listening socket fd number (fd)" },
    { "writable", OPT_BOOL, "allow writes", "off" },
    { "num-queues", OPT_NUMBER, "request queues", "1" },
    { "logical-block-size", OPT_SIZE, "logical block size", "512" },
    { "iothread", OPT_STRING, "accepted: one loop serves everything" },
    { "fixed-iothread", OPT_BOOL, "accepted" },
    { "writethrough", OPT_BOOL, "flush after every write", "off" },
    { NULL },
};

/* ---- the device ---- */

static uint64_t export_features(VuDev *dev)
{
    BlkExport *e = dev->opaque;
    uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC |
                 1ull << VIRTIO_RING_F_EVENT_IDX |
                 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_GEOMETRY |
                 1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
                 1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_CONFIG_WCE |
                 1ull << VIRTIO_BLK_F_MQ;
    if (e->be.readonly) {
        f |= 1ull << VIRTIO_BLK_F_RO;
    } else {
        f |= 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
    }
    return f;
}

static void notify_pending(BlkExport *e)
{
    for (unsigned q = 0; q < e->dev.num_queues; q++) {
        if (e->pending_notify[q]) {
            e->pending_notify[q] = false;
            vu_vring_notify(&e->dev, &e->dev.vring[q]);
        }
    }
}

static void request_completed(VirtioBlkBackend *be, VirtQueue *vq,
                              const VirtQueueElement *elem, uint32_t written)
{
    BlkExport *e = be->opaque;
    vu_request_done(&e->dev, &e->dev.vring[vq->index], elem, written);
    e->pending_notify[vq->index] = true;
}

static void submit(VuDev *dev, VuVring *vr, VirtQueueElement *elem)
{
    BlkExport *e = dev->opaque;
    virtio_blk_handle_request(&e->be, vu_vring_vq(dev, vr), elem);
}

static void queue_ready(void *opaque);

/*
 * Pop every request, then run the node's queue once: that hands the batch to
 * the host in one system call (io_uring holds submissions back until the
 * queue runs, and nothing else would run it before a completion arrives)
 * and completes at once what finished inline, so a request served without
 * blocking costs one trip round the loop, not two.
 */
static void export_process(VuDev *dev, VuVring *vr)
{
    BlkExport *e = dev->opaque;
    VirtQueue *vq = vu_vring_vq(dev, vr);
    VirtQueueElement elem;
    vu_inflight_resubmit(dev, vr, submit);
    do {
        virtqueue_set_notification(vq, false);
        while (virtqueue_pop(vq, &elem)) {
            vu_request_begin(dev, vr, elem.head);
            submit(dev, vr, &elem);
        }
        virtqueue_set_notification(vq, true);
    } while (!virtqueue_empty(vq));
    queue_ready(e->node);
    notify_pending(e);
}

static void notify_node(const ExportNode *n)
{
    for (BlkExport *e = exports; e; e = e->next) {
        if (e->node == n) {
            notify_pending(e);
        }
    }
}

/* Drains the node's queue: other exports of the node may have completions too. */
static void export_drain(VuDev *dev)
{
    BlkExport *e = dev->opaque;
    blk_queue_drain(e->bq);
    notify_pending(e);
    notify_node(e->node);
}

static void export_config_write(VuDev *dev, uint32_t offset, const uint8_t *buf,
                                uint32_t len)
{
    /* Only the cache mode (writeback) byte is the driver's to change. */
    if (offset <= VIRTIO_BLK_CFG_WRITEBACK && offset + len > VIRTIO_BLK_CFG_WRITEBACK) {
        dev->vdev.config[VIRTIO_BLK_CFG_WRITEBACK] =
            buf[VIRTIO_BLK_CFG_WRITEBACK - offset] & 1;
    }
}

static const VuDevOps export_ops = {
    .features = export_features,
    .process = export_process,
    .drain = export_drain,
    .config_write = export_config_write,
};

static void queue_ready(void *opaque)
{
    ExportNode *n = opaque;
    blk_queue_process(n->bq, false);
    notify_node(n);
}

/* ---- the shared node ---- */

static ExportNode *node_get(VuLoop *loop, const char *name, bool writable, unsigned depth,
                            bool *gather, Error **errp)
{
    for (ExportNode *n = export_nodes; n; n = n->next) {
        if (!strcmp(n->name, name)) {
            if (writable && !n->writable) {
                error_setg(errp, "Node '%s' is already exported read-only; "
                           "a writable export of it needs all its exports writable", name);
                return NULL;
            }
            *gather = n->gather;
            n->users++;
            return n;
        }
    }
    ExportNode *n = xzalloc(sizeof(*n));
    n->img = blockdev_open(name, writable, gather, errp);
    /* The image's persistent bitmaps go live: the export's writes mark them
     * (in_use on disk until they are stored back at the end). */
    if (n->img && writable && blk_dirty_bitmaps_load(n->img, errp) < 0) {
        blockdev_release(name);
        n->img = NULL;
    }
    n->bq = n->img ? blk_queue_new(n->img, depth, errp) : NULL;
    if (!n->bq || !vu_loop_set_fd(loop, blk_queue_fd(n->bq), queue_ready, n, errp)) {
        blk_queue_free(n->bq);
        if (n->img) {
            blockdev_release(name);
        }
        free(n);
        return NULL;
    }
    n->name = xstrdup(name);
    n->loop = loop;
    n->writable = writable;
    n->gather = *gather;
    n->users = 1;
    n->next = export_nodes;
    export_nodes = n;
    return n;
}

static void node_put(ExportNode *n)
{
    if (--n->users) {
        return;
    }
    ExportNode **pp = &export_nodes;
    while (*pp != n) {
        pp = &(*pp)->next;
    }
    *pp = n->next;
    Error *err = NULL;
    if (!vu_loop_set_fd(n->loop, blk_queue_fd(n->bq), NULL, NULL, &err)) {
        error_free(err);
        err = NULL;
    }
    blk_queue_drain(n->bq);
    if (blk_dirty_bitmaps_store(n->img, &err) < 0) {
        error_report_err(err);      /* left in_use: found inconsistent next time */
    }
    blk_queue_free(n->bq);
    blockdev_release(n->name);
    free(n->name);
    free(n);
}

/* ---- creation ---- */

static int export_socket(const KeyValList *kv, Error **errp)
{
    const char *type = keyval_get(kv, "addr.type");
    if (type && !strcmp(type, "unix") && keyval_get(kv, "addr.path")) {
        return vu_listen_unix(keyval_get(kv, "addr.path"), errp);
    }
    if (type && !strcmp(type, "fd") && keyval_get(kv, "addr.str")) {
        char *end;
        long fd = strtol(keyval_get(kv, "addr.str"), &end, 10);
        if (*end || fd < 0 || fd > 65535) {
            error_setg(errp, "addr.str '%s' is not a file descriptor number",
                       keyval_get(kv, "addr.str"));
            return -1;
        }
        return (int)fd;
    }
    error_setg(errp, "addr.type=unix with addr.path, or addr.type=fd with addr.str, is needed");
    return -1;
}

static bool check_export_opts(const KeyValList *kv, Error **errp)
{
    const char *type = keyval_get(kv, "type");
    uint64_t bs = keyval_get_number(kv, "logical-block-size", 512);
    uint64_t nq = keyval_get_number(kv, "num-queues", 1);
    if (!type || strcmp(type, "vhost-user-blk")) {
        error_setg(errp, "Invalid parameter '%s' for 'type'", type ? type : "");
        return false;
    }
    if (!keyval_get(kv, "id") || !keyval_get(kv, "node-name")) {
        error_setg(errp, "Parameter '%s' is missing", keyval_get(kv, "id") ? "node-name" : "id");
        return false;
    }
    if (bs < 512 || bs > 32768 || (bs & (bs - 1))) {
        error_setg(errp, "logical-block-size must be a power of 2 between 512 and 32768");
        return false;
    }
    if (nq < 1 || nq > VU_MAX_QUEUES) {
        error_setg(errp, "num-queues must be between 1 and %d", VU_MAX_QUEUES);
        return false;
    }
    return true;
}

static bool export_setup(BlkExport *e, VuLoop *loop, const KeyValList *kv, Error **errp)
{
    bool writable = keyval_get_bool(kv, "writable", false), gather = false;
    unsigned nq = keyval_get_number(kv, "num-queues", 1);
    e->node = node_get(loop, keyval_get(kv, "node-name"), writable,
                       QUEUE_DEPTH_PER_RING * nq, &gather, errp);
    if (!e->node) {
        return false;
    }
    e->img = e->node->img;
    e->bq = e->node->bq;
    int lfd = export_socket(kv, errp);
    if (lfd < 0 || !vu_dev_init(&e->dev, e->id, loop, lfd, nq, VIRTIO_BLK_CFG_SIZE,
                                &export_ops, e, errp)) {
        return false;
    }
    if (!strcmp(keyval_get(kv, "addr.type"), "unix")) {
        e->dev.socket_path = xstrdup(keyval_get(kv, "addr.path"));
    }
    e->dev.protocol_offered =
        1ull << VHOST_USER_PROTOCOL_F_MQ | 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD |
        1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK | 1ull << VHOST_USER_PROTOCOL_F_CONFIG |
        1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD |
        1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS |
        1ull << VHOST_USER_PROTOCOL_F_STATUS;
    bool writethrough = keyval_get_bool(kv, "writethrough", false);
    virtio_blk_fill_config(e->dev.vdev.config, blk_size(e->img), nq, VIRTQUEUE_MAX_SIZE,
                           !writethrough, keyval_get_number(kv, "logical-block-size", 512));
    e->be = (VirtioBlkBackend){
        .vdev = &e->dev.vdev, .img = e->img, .bq = e->bq, .readonly = !writable,
        .gather_segments = gather, .completed = request_completed, .opaque = e,
        /* The node's level: query-blockstats shows its wr_highest_offset. */
        .stats = block_node_stats(block_node_find(keyval_get(kv, "node-name"))),
    };
    return true;
}

bool blk_export_add(VuLoop *loop, const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, NULL, export_params, &kv, errp)) {
        return false;
    }
    if (!check_export_opts(&kv, errp)) {
        keyval_free(&kv);
        return false;
    }
    for (BlkExport *o = exports; o; o = o->next) {
        if (!strcmp(o->id, keyval_get(&kv, "id"))) {
            error_setg(errp, "Duplicate export id '%s'", o->id);
            keyval_free(&kv);
            return false;
        }
    }
    BlkExport *e = xzalloc(sizeof(*e));
    e->id = xstrdup(keyval_get(&kv, "id"));
    e->node_name = xstrdup(keyval_get(&kv, "node-name"));
    e->loop = loop;
    bool ok = export_setup(e, loop, &kv, errp);
    keyval_free(&kv);
    if (!ok) {
        export_free(e);     /* block-export-add may be retried with other options */
        return false;
    }
    e->next = exports;
    exports = e;
    return true;
}

/* Undo export_setup() however far it got, and give the node back. */
static void export_free(BlkExport *e)
{
    if (e->dev.loop) {
        vu_dev_cleanup(&e->dev);
        if (e->dev.socket_path) {
            unlink(e->dev.socket_path);
            free(e->dev.socket_path);
        }
    }
    if (e->node) {
        node_put(e->node);
    }
    free(e->node_name);
    free(e->id);
    free(e);
}

void blk_export_close_all(void)
{
    while (exports) {
        BlkExport *e = exports;
        exports = e->next;
        export_free(e);
    }
}

/* ---- for the monitor ---- */

BlkExport *blk_export_first(void)
{
    return exports;
}

BlkExport *blk_export_next(const BlkExport *e)
{
    return e->next;
}

BlkExport *blk_export_find(const char *id)
{
    for (BlkExport *e = exports; e; e = e->next) {
        if (!strcmp(e->id, id)) {
            return e;
        }
    }
    return NULL;
}

const char *blk_export_id(const BlkExport *e)
{
    return e->id;
}

const char *blk_export_node(const BlkExport *e)
{
    return e->node_name;
}

VuDev *blk_export_dev(BlkExport *e)
{
    return &e->dev;
}

/*
 * Removal is synchronous: in-flight requests are drained while the
 * frontend's memory is still mapped, so no export lingers half shut down.
 */
bool blk_export_del(const char *id, bool hard, Error **errp)
{
    BlkExport **pp = &exports;
    while (*pp && strcmp((*pp)->id, id)) {
        pp = &(*pp)->next;
    }
    BlkExport *e = *pp;
    if (!e) {
        error_setg(errp, "Export '%s' is not found", id);
        return false;
    }
    if (!hard && e->dev.conn_fd >= 0) {
        error_setg(errp, "export '%s' still in use", id);
        return false;
    }
    *pp = e->next;
    export_free(e);
    return true;
}
