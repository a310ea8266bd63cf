/*
 * vireo-storage-daemon's QMP monitors: --chardev socket servers named by
 * --monitor, each a QmpServer (monitor/qmp-server.h) on the daemon's loop,
 * serving qapi/storage-daemon.json. The export and node commands are here;
 * virtio introspection of the exports is in qmp-virtio.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "block/block-stats.h"
#include "block/dirty-bitmap.h"
#include "block/format-info-json.h"
#include "block/node.h"
#include "daemons/storage-daemon/storage-daemon.h"
#include "monitor/qmp-server.h"
#include "nbd/nbd.h"
#include "qapi/storage-daemon-qapi-commands.h"
#include "qapi/storage-daemon-qapi-events.h"
#include "util/keyval.h"
#include "util/osdep.h"

#define QMP_DAEMON_PREFIX storage_daemon
#define QMP_DAEMON_PACKAGE "vireo-storage-daemon " VIREO_VERSION
#include "monitor/qmp-daemon-cmds.h"

#define MAX_MONITORS 8

/* A --chardev waiting for its --monitor. */
typedef struct Chardev {
    char *id;
    char *path;
    struct Chardev *next;
} Chardev;

static Chardev *chardevs;
static QmpServer *monitors[MAX_MONITORS];
static unsigned nr_monitors;
/* Generated handlers take no context: the daemon has one loop. */
static VuLoop *served_loop;
static bool *quit_flag;

/* ---- the command line ---- */

static const OptParam chardev_params[] = {
    { "backend", OPT_STRING, "socket" },
    { "id", OPT_STRING, "chardev id" },
    { "path", OPT_STRING, "UNIX socket path" },
    { "server", OPT_BOOL, "listen (must be on)", "off" },
    { "wait", OPT_BOOL, "wait for a client first (must be off)", "on" },
    { NULL },
};

static bool check_chardev(const KeyValList *kv, Error **errp)
{
    const char *backend = keyval_get(kv, "backend"), *id = keyval_get(kv, "id");
    if (!backend || strcmp(backend, "socket")) {
        error_setg(errp, "chardev backend '%s' is not supported (only socket)",
                   backend ? backend : "");
    } else if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
    } else if (!keyval_get(kv, "path")) {
        error_setg(errp, "chardev '%s': only UNIX sockets (path=) are supported", id);
    } else if (!keyval_get_bool(kv, "server", false)) {
        error_setg(errp, "chardev '%s': only server=on sockets are supported", id);
    } else if (keyval_get_bool(kv, "wait", true)) {
        /* The daemon serves its exports at once rather than waiting for a client. */
        error_setg(errp, "chardev '%s': wait=off is needed", id);
    } else {
        for (Chardev *c = chardevs; c; c = c->next) {
            if (!strcmp(c->id, id)) {
                error_setg(errp, "attempt to add duplicate property '%s' to object "
                           "(type 'container')", id);
                return false;
            }
        }
        return true;
    }
    return false;
}

bool sd_chardev_add(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "backend", chardev_params, &kv, errp)) {
        return false;
    }
    bool ok = check_chardev(&kv, errp);
    if (ok) {
        Chardev *c = xzalloc(sizeof(*c));
        c->id = xstrdup(keyval_get(&kv, "id"));
        c->path = xstrdup(keyval_get(&kv, "path"));
        c->next = chardevs;
        chardevs = c;
    }
    keyval_free(&kv);
    return ok;
}

static const OptParam monitor_params[] = {
    { "chardev", OPT_STRING, "chardev id" },
    { "mode", OPT_STRING, "control" },
    { "pretty", OPT_BOOL, "indented replies (not supported)", "off" },
    { NULL },
};

static Chardev *monitor_chardev(const KeyValList *kv, Error **errp)
{
    const char *id = keyval_get(kv, "chardev"), *mode = keyval_get(kv, "mode");
    if (!id) {
        error_setg(errp, "Parameter 'chardev' is missing");
        return NULL;
    }
    if (mode && strcmp(mode, "control")) {
        error_setg(errp, "Only QMP is supported");
        return NULL;
    }
    if (keyval_get_bool(kv, "pretty", false)) {
        error_setg(errp, "pretty=on is not supported");
        return NULL;
    }
    for (Chardev *c = chardevs; c; c = c->next) {
        if (!strcmp(c->id, id)) {
            return c;
        }
    }
    error_setg(errp, "chardev \"%s\" not found", id);
    return NULL;
}

static void monitor_ready(void *opaque)
{
    qmp_server_poll(opaque);
}

static void monitor_log(const char *msg)
{
    fprintf(stderr, "vireo-storage-daemon: monitor: %s\n", msg);
}

bool sd_monitor_add(VuLoop *loop, const char *opts, bool *quit, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "chardev", monitor_params, &kv, errp)) {
        return false;
    }
    Chardev *c = monitor_chardev(&kv, errp);
    keyval_free(&kv);
    if (!c) {
        return false;
    }
    if (nr_monitors == MAX_MONITORS) {
        error_setg(errp, "at most %d monitors are supported", MAX_MONITORS);
        return false;
    }
    QmpServerConfig cfg = {
        .table = &storage_daemon_qmp_command_table,
        .version = qmp_daemon_version_json,
        .log = monitor_log,
    };
    QmpServer *srv = qmp_server_new(c->path, &cfg, errp);
    if (!srv) {
        return false;
    }
    monitors[nr_monitors++] = srv;
    served_loop = loop;
    quit_flag = quit;
    return vu_loop_set_fd(loop, qmp_server_fd(srv), monitor_ready, srv, errp);
}

void sd_monitor_close_all(void)
{
    while (nr_monitors) {
        qmp_server_free(monitors[--nr_monitors]);
    }
    while (chardevs) {
        Chardev *c = chardevs;
        chardevs = c->next;
        free(c->id);
        free(c->path);
        free(c);
    }
}

/* The reply goes out first: the loop ends after this turn and the
 * monitors flush what their clients' sockets take before closing. */
void qmp_quit(Error **errp)
{
    *quit_flag = true;
}

/* ---- exports ---- */

static BlockExportInfo *export_info(BlockExportType type, const char *id, const char *node)
{
    BlockExportInfo *info = xzalloc(sizeof(*info));
    info->id = xstrdup(id);
    info->type = type;
    info->node_name = xstrdup(node);
    info->shutting_down = false;    /* removal completes before its reply */
    return info;
}

static void add_nbd_info(const char *id, const char *node, void *opaque)
{
    BlockExportInfoList ***tail = opaque;
    QAPI_LIST_APPEND(*tail, export_info(BLOCK_EXPORT_TYPE_NBD, id, node));
}

BlockExportInfoList *qmp_query_block_exports(Error **errp)
{
    BlockExportInfoList *list = NULL, **tail = &list;
    sd_nbd_foreach(add_nbd_info, &tail);
    for (BlkExport *e = blk_export_first(); e; e = blk_export_next(e)) {
        QAPI_LIST_APPEND(tail, export_info(BLOCK_EXPORT_TYPE_VHOST_USER_BLK,
                                           blk_export_id(e), blk_export_node(e)));
    }
    return list;
}

/* Append key=value to a keyval string, doubling commas as keyval escapes them. */
static void keyval_append(char **s, const char *key, const char *value)
{
    size_t len = strlen(*s), extra = strlen(key) + 2 * strlen(value) + 3;
    char *p = xrealloc(*s, len + extra);
    char *out = p + len;
    out += sprintf(out, "%s%s=", len ? "," : "", key);
    for (const char *v = value; *v; v++) {
        *out++ = *v;
        if (*v == ',') {
            *out++ = ',';
        }
    }
    *out = '\0';
    *s = p;
}

static void keyval_append_u64(char **s, const char *key, uint64_t value)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, value);
    keyval_append(s, key, num);
}

static void nbd_export_add_qmp(const char *id, const char *node_name, bool has_writable,
                               bool writable, bool has_name, const char *name,
                               bool has_description, const char *description,
                               bool has_bitmaps, strList *bitmaps,
                               bool has_allocation_depth, bool allocation_depth,
                               Error **errp)
{
    const char *names[64];
    unsigned n = 0;
    for (strList *l = has_bitmaps ? bitmaps : NULL; l; l = l->next) {
        if (n == 64) {
            error_setg(errp, "at most 64 bitmaps can be exported");
            return;
        }
        names[n++] = l->value;
    }
    sd_nbd_export_add(id, node_name, has_name ? name : NULL,
                      has_description ? description : NULL, has_writable && writable,
                      names, n, has_allocation_depth && allocation_depth, errp);
}

/*
 * A vhost-user-blk export takes exactly --export's members, so it is
 * spelled as an --export string and goes through the same parser and checks.
 */
static void export_add_parsed(const BlockExportOptions *o, Error **errp)
{
    if (o->type == BLOCK_EXPORT_TYPE_NBD) {
        if (o->has_addr || o->has_logical_block_size || o->has_num_queues) {
            error_setg(errp, "Parameter '%s' is unexpected",
                       o->has_addr ? "addr" : o->has_num_queues ? "num-queues"
                                         : "logical-block-size");
            return;
        }
        nbd_export_add_qmp(o->id, o->node_name, o->has_writable, o->writable, o->has_name, o->name,
                           o->has_description, o->description, o->has_bitmaps, o->bitmaps,
                           o->has_allocation_depth, o->allocation_depth, errp);
        return;
    }
    if (o->has_name || o->has_description || o->has_bitmaps || o->has_allocation_depth) {
        error_setg(errp, "Parameter '%s' is unexpected",
                   o->has_name ? "name" : o->has_description ? "description"
                             : o->has_bitmaps ? "bitmaps" : "allocation-depth");
        return;
    }
    if (!o->has_addr) {
        error_setg(errp, "Parameter 'addr' is missing");
        return;
    }
    if (sd_nbd_export_is(o->id)) {
        error_setg(errp, "Block export id '%s' is already in use", o->id);
        return;
    }
    char *opts = xstrdup("");
    keyval_append(&opts, "type", BlockExportType_str[o->type]);
    keyval_append(&opts, "id", o->id);
    keyval_append(&opts, "node-name", o->node_name);
    keyval_append(&opts, "addr.type", SocketAddressType_str[o->addr->type]);
    if (o->addr->has_path) {
        keyval_append(&opts, "addr.path", o->addr->path);
    }
    if (o->addr->has_str) {
        keyval_append(&opts, "addr.str", o->addr->str);
    }
    if (o->has_writable) {
        keyval_append(&opts, "writable", o->writable ? "on" : "off");
    }
    if (o->has_writethrough) {
        keyval_append(&opts, "writethrough", o->writethrough ? "on" : "off");
    }
    if (o->has_iothread) {
        keyval_append(&opts, "iothread", o->iothread);
    }
    if (o->has_fixed_iothread) {
        keyval_append(&opts, "fixed-iothread", o->fixed_iothread ? "on" : "off");
    }
    if (o->has_logical_block_size) {
        keyval_append_u64(&opts, "logical-block-size", o->logical_block_size);
    }
    if (o->has_num_queues) {
        keyval_append_u64(&opts, "num-queues", o->num_queues);
    }
    blk_export_add(served_loop, opts, errp);
    free(opts);
}

/*
 * block-export-add is hand-marshalled, as QEMU's union on @type is: the
 * schema declares the shared members, and the whole request is checked
 * here against BlockExportOptions, which holds every type's members.
 */
json_object *qmp_block_export_add(json_object *args, Error **errp)
{
    BlockExportOptions *o = xzalloc(sizeof(*o));
    Error *err = NULL;
    if (qapi_struct_from_json(&storage_daemon_qapi_type_BlockExportOptions, args, NULL, o, &err)) {
        export_add_parsed(o, &err);
    }
    qapi_free_BlockExportOptions(o);
    if (err) {
        error_propagate(errp, err);
        return NULL;
    }
    return json_object_new_object();
}

void qmp_block_export_del(const char *id, bool has_mode, BlockExportRemoveMode mode,
                          Error **errp)
{
    bool hard = has_mode && mode == BLOCK_EXPORT_REMOVE_MODE_HARD;
    if (sd_nbd_export_is(id)) {
        sd_nbd_export_del(id, hard, errp);      /* sends the event */
    } else if (blk_export_del(id, hard, errp)) {
        storage_daemon_qapi_event_send_block_export_deleted(id);
    }
}

/* ---- the NBD server ---- */

void qmp_nbd_server_start(SocketAddressLegacy *addr, bool has_tls_creds,
                          const char *tls_creds, bool has_tls_authz, const char *tls_authz,
                          bool has_max_connections, uint32_t max_connections,
                          Error **errp)
{
    if (has_tls_creds || has_tls_authz) {
        error_setg(errp, "TLS is not supported");
        return;
    }
    SocketAddressLegacyData *d = addr->data;
    NbdAddress a;
    if (sd_nbd_addr_parse(SocketAddressType_str[addr->type], d->has_path ? d->path : NULL,
                          d->has_host ? d->host : NULL, d->has_port ? d->port : NULL,
                          d->has_str ? d->str : NULL, &a, errp)) {
        sd_nbd_server_start(&a, has_max_connections ? max_connections : 0, errp);
    }
}

void qmp_nbd_server_stop(Error **errp)
{
    sd_nbd_server_stop(errp);
}

void qmp_nbd_server_add(const char *device, bool has_name, const char *name,
                        bool has_description, const char *description,
                        bool has_writable, bool writable, bool has_bitmap,
                        const char *bitmap, Error **errp)
{
    const char *bm[1] = { bitmap };
    /* The legacy command names its export by the export name, which is also its id. */
    const char *id = has_name ? name : device;
    sd_nbd_export_add(id, device, id, has_description ? description : NULL,
                      has_writable && writable, bm, has_bitmap ? 1 : 0, false, errp);
}

void qmp_nbd_server_remove(const char *name, bool has_mode, BlockExportRemoveMode mode,
                           Error **errp)
{
    sd_nbd_export_remove_by_name(name, has_mode && mode == BLOCK_EXPORT_REMOVE_MODE_HARD,
                                 errp);
}

/* ---- block nodes ---- */

/* The image's live bitmaps, newest first; NULL when it has none. */
static BlockDirtyInfoList *dirty_bitmaps(BlockImage *img)
{
    BlockDirtyInfoList *head = NULL, **tail = &head;
    for (BdrvDirtyBitmap *bm = img ? bdrv_dirty_bitmap_first(img) : NULL; bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        BlockDirtyInfo *d = xzalloc(sizeof(*d));
        d->has_name = true;
        d->name = xstrdup(bdrv_dirty_bitmap_name(bm));
        d->count = (int64_t)bdrv_dirty_bitmap_count(bm);
        d->granularity = bdrv_dirty_bitmap_granularity(bm);
        d->recording = bdrv_dirty_bitmap_recording(bm);
        d->busy = bdrv_dirty_bitmap_busy(bm);
        d->persistent = bdrv_dirty_bitmap_persistent(bm);
        d->has_inconsistent = bdrv_dirty_bitmap_inconsistent(bm);
        d->inconsistent = d->has_inconsistent;
        QAPI_LIST_APPEND(tail, d);
    }
    return head;
}

static void add_node_info(const BlockNodeInfo *n, void *opaque)
{
    BlockDeviceInfoList ***tail = opaque;
    BlockDeviceInfo *info = xzalloc(sizeof(*info));
    info->file = xstrdup(n->filename);
    info->node_name = xstrdup(n->name);
    info->ro = n->read_only;
    info->drv = xstrdup(n->driver);
    info->detect_zeroes = BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF;
    info->cache = xzalloc(sizeof(*info->cache));
    /* Nodes have no cache.writeback option here: writes are cached until
     * a flush (an export's writethrough=on flushes each one itself). */
    info->cache->writeback = true;
    info->cache->direct = n->direct;
    info->image = xzalloc(sizeof(*info->image));
    info->image->filename = xstrdup(n->filename);
    info->image->format = xstrdup(n->driver);
    info->image->virtual_size = n->virtual_size;
    info->image->has_actual_size = n->actual_size >= 0;
    info->image->actual_size = n->actual_size;
    info->image->has_cluster_size = n->cluster_size != 0;
    info->image->cluster_size = n->cluster_size;
    info->image->has_dirty_flag = true;
    info->image->dirty_flag = n->dirty;
    if (n->format.type && !strcmp(n->format.type, "qcow2")) {
        info->image->has_format_specific = true;
        info->image->format_specific = qcow2_format_specific_json(&n->format);
    }
    info->dirty_bitmaps = dirty_bitmaps(n->img);
    info->has_dirty_bitmaps = info->dirty_bitmaps != NULL;
    QAPI_LIST_APPEND(*tail, info);
}

BlockDeviceInfoList *qmp_query_named_block_nodes(bool has_flat, bool flat, Error **errp)
{
    BlockDeviceInfoList *list = NULL, **tail = &list;
    blockdev_foreach(add_node_info, &tail);
    return list;
}

/* ---- statistics ---- */

/*
 * A node's own level, as QEMU keeps it per node: only the end of the
 * highest write; the request counters belong to block devices.
 */
static BlockStats *node_stats(BlockNode *n)
{
    BlockStats *bs = xzalloc(sizeof(*bs));
    bs->has_node_name = true;
    bs->node_name = xstrdup(block_node_name(n));
    bs->stats = xzalloc(sizeof(*bs->stats));
    BlockNode *f = block_node_file(n);
    if (f) {
        bs->stats->wr_highest_offset = (int64_t)block_node_stats(n)->wr_highest_offset;
        bs->has_parent = true;
        bs->parent = node_stats(f);
        return bs;
    }
    bs->stats->wr_highest_offset = (int64_t)block_stats_protocol_node_highest(n);
    if (!strcmp(block_node_driver(n), "file")) {
        BlockNode *top = NULL;
        for (BlockNode *t = block_node_first(); t && !top; t = block_node_next(t)) {
            top = block_node_file(t) == n ? t : NULL;
        }
        /* Discards that reached the file: a raw node with discard=unmap over
         * a file node with it passes the client's on. */
        bool passed = top && !strcmp(block_node_driver(top), "raw") &&
                      block_node_discard_unmap(top) && block_node_discard_unmap(n);
        const BlockNodeStats *s = block_node_stats(passed ? top : n);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "driver", json_object_new_string("file"));
        json_object_object_add(o, "discard-nb-ok",
                               json_object_new_int64((int64_t)s->ops[BLOCK_STATS_UNMAP]));
        json_object_object_add(o, "discard-nb-failed",
                               json_object_new_int64((int64_t)s->failed_ops[BLOCK_STATS_UNMAP]));
        json_object_object_add(o, "discard-bytes-ok",
                               json_object_new_int64((int64_t)s->bytes[BLOCK_STATS_UNMAP]));
        bs->has_driver_specific = true;
        bs->driver_specific = o;
    }
    return bs;
}

BlockStatsList *qmp_query_blockstats(bool has_query_nodes, bool query_nodes, Error **errp)
{
    BlockStatsList *list = NULL, **tail = &list;
    if (!has_query_nodes || !query_nodes) {
        return list;            /* no block devices here, only nodes */
    }
    for (BlockNode *n = block_node_first(); n; n = block_node_next(n)) {
        QAPI_LIST_APPEND(tail, node_stats(n));
    }
    return list;
}
