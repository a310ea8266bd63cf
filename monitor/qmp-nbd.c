/*
 * vireo's NBD server commands (qapi/block-export.json): nbd-server-start,
 * nbd-server-stop, block-export-add type=nbd, block-export-del,
 * query-block-exports, the older nbd-server-add/-remove, and
 * BLOCK_EXPORT_DELETED.
 *
 * An export is a user of its block node with QEMU's permissions (read,
 * plus write when writable, sharing everything), so a writable export of a
 * disk whose device does not share writes is refused as QEMU refuses it.
 * The server's thread enters the block layer under the big lock, like the
 * devices; dirty bitmaps are the node's live ones, marked busy while
 * exported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/node.h"
#include "core/lock.h"
#include "monitor/qmp-nbd.h"
#include "nbd/nbd.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "util/osdep.h"

typedef struct VmmExport {
    char *id, *name;
    BlockNode *node;
    BlockNodeUser *user;
    struct VmmExport *next;
} VmmExport;

static NbdServer *server;
static VmmExport *exports;

static void server_log(const char *msg)
{
    warn_report("%s", msg);
}

/* ---- exports ---- */

#define QUEUE_DEPTH 64      /* when the export makes the node's queue */

/* The server lets an export go: its reads still in flight land first. */
static void export_drain(void *opaque)
{
    block_node_queue_drain(opaque);
}

static VmmExport *find_export(const char *id, bool by_name)
{
    for (VmmExport *e = exports; e; e = e->next) {
        if (!strcmp(by_name ? e->name : e->id, id)) {
            return e;
        }
    }
    return NULL;
}

/*
 * Do discards reach the image? QEMU's nodes pass them on only with
 * discard=unmap, each node of a -blockdev chain for itself (-drive sets
 * it on both of its nodes).
 */
static bool discards_pass(BlockNode *n)
{
    BlockNode *f = block_node_file(n);
    return block_node_discard_unmap(n) &&
           (!f || block_node_from_drive(n) || block_node_discard_unmap(f));
}

/*
 * @device_ok: the older nbd-server-add, which names a drive or a node;
 * block-export-add takes node names only, as in QEMU.
 */
static void export_add(const char *id, const char *node_name, bool device_ok,
                       const char *name, const char *description, bool writable,
                       strList *bitmaps, bool allocation_depth, Error **errp)
{
    if (find_export(id, false)) {
        error_setg(errp, "Block export id '%s' is already in use", id);
        return;
    }
    BlockNode *node = device_ok ? block_node_find_device(node_name) : NULL;
    if (!node) {
        node = block_node_find(node_name);
    }
    if (!node) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   device_ok ? node_name : "", node_name);
        return;
    }
    if (!server) {
        error_setg(errp, "NBD server not running");
        return;
    }
    if (!name) {
        name = node_name;
    }
    if (strlen(name) > 4096) {
        error_setg(errp, "export name '%s' too long", name);
        return;
    }
    if (description && strlen(description) > 4096) {
        error_setg(errp, "description '%s' too long", description);
        return;
    }
    if (nbd_export_exists(server, name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        return;
    }
    BlockImage *img = block_node_image(node, errp);
    if (!img) {
        return;
    }
    if (writable && block_node_read_only(node)) {
        error_setg(errp, "Cannot export read-only node as writable");
        return;
    }
    char *desc = xasprintf("block export '%s'", id);
    BlockNodeUser *user = block_node_attach(node, desc, NULL,
                                            BLK_PERM_CONSISTENT_READ |
                                            (writable ? BLK_PERM_WRITE : 0),
                                            BLK_PERM_ALL, errp);
    free(desc);
    if (!user) {
        return;
    }
    unsigned nr = 0;
    for (strList *l = bitmaps; l; l = l->next) {
        nr++;
    }
    NbdBitmap *bms = xzalloc(sizeof(NbdBitmap) * (nr + 1));
    unsigned got = 0;
    bool ok = true;
    for (strList *l = bitmaps; l && ok; l = l->next) {
        for (unsigned i = 0; i < got && ok; i++) {
            if (!strcmp(bms[i].name, l->value)) {
                error_setg(errp, "Bitmap '%s' is exported twice", l->value);
                ok = false;
            }
        }
        ok = ok && nbd_bitmap_live(&bms[got], img, l->value, writable, errp);
        got += ok;
    }
    /* Reads go through the node's shared queue, several per connection at
     * once; its completions run from the main loop like the devices'. */
    Error *qerr = NULL;
    BlockQueue *queue = block_node_queue(node, QUEUE_DEPTH, &qerr);
    if (!queue) {
        warn_report("block export '%s' reads one request at a time: %s", id,
                    error_get_pretty(qerr));
        error_free(qerr);
    }
    NbdExportConfig cfg = {
        .name = name, .description = description, .img = img, .writable = writable,
        .allocation_depth = allocation_depth, .bitmaps = bms, .nr_bitmaps = got,
        .queue = queue, .drain = export_drain, .drain_opaque = node,
        .ignore_discard = !discards_pass(node),
    };
    if (!ok || !nbd_export_add(server, &cfg, errp)) {
        for (unsigned i = 0; i < got; i++) {
            bms[i].release(bms[i].opaque);
            free(bms[i].name);
        }
        free(bms);
        block_node_detach(user);
        return;
    }
    free(bms);                  /* the export took the entries */
    VmmExport *e = xzalloc(sizeof(*e));
    e->id = xstrdup(id);
    e->name = xstrdup(name);
    e->node = node;
    e->user = user;
    e->next = exports;
    exports = e;
}

static bool export_remove(VmmExport *e, bool hard, Error **errp)
{
    if (!hard && nbd_export_clients(server, e->name) > 0) {
        error_setg(errp, "export '%s' still in use", e->id);
        return false;
    }
    if (!nbd_export_del(server, e->name, hard, NULL, errp)) {
        return false;
    }
    for (VmmExport **pp = &exports; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    block_node_detach(e->user);
    qapi_event_send_block_export_deleted(e->id);
    free(e->id);
    free(e->name);
    free(e);
    return true;
}

/* ---- commands ---- */

void qmp_nbd_server_start(SocketAddressLegacy *addr, bool has_tls_creds,
                          const char *tls_creds, bool has_tls_authz, const char *tls_authz,
                          bool has_max_connections, uint32_t max_connections,
                          Error **errp)
{
    if (server) {
        error_setg(errp, "NBD server already running");
        return;
    }
    if (has_tls_creds || has_tls_authz) {
        error_setg(errp, "TLS is not supported");
        return;
    }
    SocketAddressLegacyData *d = addr->data;
    NbdAddress a = { .fd = -1 };
    switch (addr->type) {
    case SOCKET_ADDRESS_TYPE_UNIX:
        if (!d->has_path) {
            error_setg(errp, "Parameter 'path' is missing");
            return;
        }
        a.type = NBD_ADDR_UNIX;
        a.path = d->path;
        break;
    case SOCKET_ADDRESS_TYPE_INET:
        if (!d->has_port) {
            error_setg(errp, "Parameter 'port' is missing");
            return;
        }
        a.type = NBD_ADDR_INET;
        a.host = d->has_host ? d->host : "";
        a.port = d->port;
        break;
    default:
        error_setg(errp, "only unix and inet addresses are supported");
        return;
    }
    NbdServerConfig cfg = {
        .max_connections = has_max_connections ? max_connections : 0,
        .lock = big_lock, .unlock = big_unlock, .log = server_log,
    };
    server = nbd_server_new(&a, &cfg, errp);
}

void qmp_nbd_server_stop(Error **errp)
{
    if (!server) {
        error_setg(errp, "NBD server not running");
        return;
    }
    while (exports) {
        Error *err = NULL;
        if (!export_remove(exports, true, &err)) {
            error_free(err);
            break;
        }
    }
    nbd_server_free(server);        /* lets the big lock go while its thread ends */
    server = NULL;
}

static void export_add_parsed(const BlockExportOptions *o, Error **errp)
{
    if (o->type != BLOCK_EXPORT_TYPE_NBD) {
        error_setg(errp, "export type '%s' is not supported here (vireo-storage-daemon "
                   "serves it)", BlockExportType_str[o->type]);
        return;
    }
    if (o->has_addr || o->has_logical_block_size || o->has_num_queues) {
        error_setg(errp, "Parameter '%s' is unexpected",
                   o->has_addr ? "addr" : o->has_num_queues ? "num-queues" : "logical-block-size");
        return;
    }
    export_add(o->id, o->node_name, false, o->has_name ? o->name : NULL,
               o->has_description ? o->description : NULL,
               o->has_writable && o->writable, o->has_bitmaps ? o->bitmaps : NULL,
               o->has_allocation_depth && o->allocation_depth, errp);
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
    if (qapi_struct_from_json(&qapi_type_BlockExportOptions, args, NULL, o, &err)) {
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
    VmmExport *e = find_export(id, false);
    if (!e) {
        error_setg(errp, "Export '%s' is not found", id);
        return;
    }
    export_remove(e, has_mode && mode == BLOCK_EXPORT_REMOVE_MODE_HARD, errp);
}

BlockExportInfoList *qmp_query_block_exports(Error **errp)
{
    BlockExportInfoList *list = NULL, **tail = &list;
    for (VmmExport *e = exports; e; e = e->next) {
        BlockExportInfo *info = xzalloc(sizeof(*info));
        info->id = xstrdup(e->id);
        info->type = BLOCK_EXPORT_TYPE_NBD;
        info->node_name = xstrdup(block_node_name(e->node));
        info->shutting_down = false;    /* removal completes before its reply */
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}

void qmp_nbd_server_add(const char *device, bool has_name, const char *name,
                        bool has_description, const char *description,
                        bool has_writable, bool writable, bool has_bitmap,
                        const char *bitmap, Error **errp)
{
    strList one = { .next = NULL, .value = (char *)bitmap };
    const char *id = has_name ? name : device;
    export_add(id, device, true, id, has_description ? description : NULL,
               has_writable && writable, has_bitmap ? &one : NULL, false, errp);
}

void qmp_nbd_server_remove(const char *name, bool has_mode, BlockExportRemoveMode mode,
                           Error **errp)
{
    VmmExport *e = find_export(name, true);
    if (!e) {
        error_setg(errp, "Export '%s' is not found", name);
        return;
    }
    export_remove(e, has_mode && mode == BLOCK_EXPORT_REMOVE_MODE_HARD, errp);
}

void qmp_nbd_cleanup(void)
{
    if (server) {
        qmp_nbd_server_stop(NULL);
    }
}
