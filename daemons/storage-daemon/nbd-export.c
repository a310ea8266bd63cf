/*
 * vireo-storage-daemon's NBD server and NBD exports, with
 * qemu-storage-daemon's options:
 *
 *   --nbd-server addr.type=unix,addr.path=P[,max-connections=N]
 *   --nbd-server addr.type=inet,addr.host=H,addr.port=P
 *   --export type=nbd,id=ID,node-name=N[,name=NAME][,description=D]
 *            [,writable=on][,bitmaps.0=B][,allocation-depth=on]
 *
 * and the QMP commands nbd-server-start/-stop. The server (nbd/) runs on
 * its own thread; each export holds its node as the vhost-user exports do
 * (blockdev_open), so no image is shared between the two threads; its
 * dirty bitmaps are the node's live ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/node.h"
#include "daemons/storage-daemon/storage-daemon.h"
#include "nbd/nbd.h"
#include "qapi/storage-daemon-qapi-events.h"
#include "util/keyval.h"
#include "util/osdep.h"

#define MAX_BITMAPS 64

typedef struct NbdExportRec {
    char *id, *node, *name;
    struct NbdExportRec *next;
} NbdExportRec;

static NbdServer *server;
static NbdExportRec *records;

static void server_log(const char *msg)
{
    fprintf(stderr, "vireo-storage-daemon: %s\n", msg);
}

bool sd_nbd_server_start(const NbdAddress *addr, unsigned max_connections, Error **errp)
{
    if (server) {
        error_setg(errp, "NBD server already running");
        return false;
    }
    NbdServerConfig cfg = { .max_connections = max_connections, .log = server_log };
    server = nbd_server_new(addr, &cfg, errp);
    return server != NULL;
}

static const OptParam server_params[] = {
    { "addr.type", OPT_STRING, "unix, inet or fd" },
    { "addr.path", OPT_STRING, "socket path (unix)" },
    { "addr.host", OPT_STRING, "host (inet)" },
    { "addr.port", OPT_STRING, "port (inet)" },
    { "addr.str", OPT_STRING, "listening socket fd number (fd)" },
    { "max-connections", OPT_NUMBER, "most clients at once (0: no limit)", "0" },
    { "tls-creds", OPT_STRING, "not supported" },
    { "tls-authz", OPT_STRING, "not supported" },
    { NULL },
};

bool sd_nbd_addr_parse(const char *type, const char *path, const char *host,
                       const char *port, const char *str, NbdAddress *addr, Error **errp)
{
    memset(addr, 0, sizeof(*addr));
    if (type && !strcmp(type, "unix") && path) {
        addr->type = NBD_ADDR_UNIX;
        addr->path = path;
        return true;
    }
    if (type && !strcmp(type, "inet") && port) {
        addr->type = NBD_ADDR_INET;
        addr->host = host ? host : "";
        addr->port = port;
        return true;
    }
    if (type && !strcmp(type, "fd") && str) {
        char *end;
        long fd = strtol(str, &end, 10);
        if (*end || fd < 0 || fd > 65535) {
            error_setg(errp, "'%s' is not a file descriptor number", str);
            return false;
        }
        addr->type = NBD_ADDR_FD;
        addr->fd = (int)fd;
        return true;
    }
    error_setg(errp, "addr.type=unix with addr.path, addr.type=inet with addr.port, "
               "or addr.type=fd with addr.str is needed");
    return false;
}

bool sd_nbd_server_opt(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, NULL, server_params, &kv, errp)) {
        return false;
    }
    NbdAddress addr;
    bool ok = false;
    if (keyval_get(&kv, "tls-creds") || keyval_get(&kv, "tls-authz")) {
        error_setg(errp, "TLS is not supported");
    } else if (sd_nbd_addr_parse(keyval_get(&kv, "addr.type"), keyval_get(&kv, "addr.path"),
                                 keyval_get(&kv, "addr.host"), keyval_get(&kv, "addr.port"),
                                 keyval_get(&kv, "addr.str"), &addr, errp)) {
        uint64_t max = keyval_get_number(&kv, "max-connections", 0);
        if (max > UINT32_MAX) {
            error_setg(errp, "max-connections is too large");
        } else {
            ok = sd_nbd_server_start(&addr, (unsigned)max, errp);
        }
    }
    keyval_free(&kv);
    return ok;
}

static void record_free(NbdExportRec *r)
{
    free(r->id);
    free(r->node);
    free(r->name);
    free(r);
}

static NbdExportRec *record_find(const char *id)
{
    for (NbdExportRec *r = records; r; r = r->next) {
        if (!strcmp(r->id, id)) {
            return r;
        }
    }
    return NULL;
}

/* Do discards pass the node (and its file node) as with QEMU's discard=unmap? */
static bool discards_reach_image(BlockNode *n)
{
    BlockNode *f = block_node_file(n);
    return block_node_discard_unmap(n) && (!f || block_node_discard_unmap(f));
}

bool sd_nbd_export_add(const char *id, const char *node, const char *name,
                       const char *description, bool writable, const char *const *bitmaps,
                       unsigned nr_bitmaps, bool allocation_depth, Error **errp)
{
    if (!server) {
        error_setg(errp, "NBD server not running");
        return false;
    }
    if (record_find(id) || blk_export_find(id)) {
        error_setg(errp, "Block export id '%s' is already in use", id);
        return false;
    }
    if (!name) {
        name = node;
    }
    if (strlen(name) > 4096) {
        error_setg(errp, "export name '%s' too long", name);
        return false;
    }
    if (nbd_export_exists(server, name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        return false;
    }
    bool gather;
    BlockImage *img = blockdev_open(node, writable, &gather, errp);
    if (!img) {
        return false;
    }
    NbdBitmap *bms = xzalloc(sizeof(NbdBitmap) * (nr_bitmaps + 1));
    unsigned got = 0;
    for (; got < nr_bitmaps; got++) {
        if (!nbd_bitmap_live(&bms[got], img, bitmaps[got], writable, errp)) {
            break;
        }
    }
    NbdExportConfig cfg = {
        .name = name, .description = description, .img = img, .writable = writable,
        .allocation_depth = allocation_depth, .bitmaps = bms, .nr_bitmaps = got,
        .queue_depth = 64,      /* the server runs reads through a queue of its own */
        .stats = block_node_stats(block_node_find(node)),
        .ignore_discard = !discards_reach_image(block_node_find(node)),
    };
    if (got < nr_bitmaps || !nbd_export_add(server, &cfg, errp)) {
        for (unsigned i = 0; i < got; i++) {
            bms[i].release(bms[i].opaque);
            free(bms[i].name);
        }
        free(bms);
        blockdev_release(node);
        return false;
    }
    free(bms);                  /* the export took the entries */
    NbdExportRec *r = xzalloc(sizeof(*r));
    r->id = xstrdup(id);
    r->node = xstrdup(node);
    r->name = xstrdup(name);
    r->next = records;
    records = r;
    return true;
}

static const OptParam export_params[] = {
    { "type", OPT_STRING, "nbd" },
    { "id", OPT_STRING, "export id" },
    { "node-name", OPT_STRING, "block node to export" },
    { "name", OPT_STRING, "export name (default: node-name)" },
    { "description", OPT_STRING, "free text for clients" },
    { "writable", OPT_BOOL, "allow writes", "off" },
    { "writethrough", OPT_BOOL, "accepted" },
    { "iothread", OPT_STRING, "accepted" },
    { "fixed-iothread", OPT_BOOL, "accepted" },
    { "allocation-depth", OPT_BOOL, "offer qemu:allocation-depth", "off" },
    { NULL },
};

/* --export type=nbd,...: bitmaps.N=NAME are collected in order. */
bool sd_nbd_export_opt(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, NULL, NULL, &kv, errp)) {
        return false;
    }
    const char *bitmaps[MAX_BITMAPS];
    unsigned nr = 0;
    bool ok = true;
    for (int i = 0; i < kv.n && ok; i++) {
        const char *k = kv.items[i].key;
        if (!strncmp(k, "bitmaps.", 8)) {
            char *end;
            unsigned long idx = strtoul(k + 8, &end, 10);
            if (*end || idx != nr || nr == MAX_BITMAPS) {
                error_setg(errp, "Parameter '%s' is unexpected (bitmaps.0, bitmaps.1, ... "
                           "in order)", k);
                ok = false;
            } else {
                bitmaps[nr++] = kv.items[i].value;
            }
            continue;
        }
        const OptParam *p = export_params;
        while (p->name && strcmp(p->name, k)) {
            p++;
        }
        if (!p->name) {
            error_setg(errp, "Invalid parameter '%s'", k);
            ok = false;
        }
    }
    bool writable = false, depth = false;
    const char *v;
    if (ok && (v = keyval_get(&kv, "writable"))) {
        ok = parse_bool("writable", v, &writable, errp);
    }
    if (ok && (v = keyval_get(&kv, "allocation-depth"))) {
        ok = parse_bool("allocation-depth", v, &depth, errp);
    }
    if (ok && (!keyval_get(&kv, "id") || !keyval_get(&kv, "node-name"))) {
        error_setg(errp, "Parameter '%s' is missing",
                   keyval_get(&kv, "id") ? "node-name" : "id");
        ok = false;
    }
    if (ok) {
        ok = sd_nbd_export_add(keyval_get(&kv, "id"), keyval_get(&kv, "node-name"),
                               keyval_get(&kv, "name"), keyval_get(&kv, "description"),
                               writable, bitmaps, nr, depth, errp);
    }
    keyval_free(&kv);
    return ok;
}

bool sd_nbd_export_is(const char *id)
{
    return record_find(id) != NULL;
}

/* Remove by export id (@by_name: by export name); sends BLOCK_EXPORT_DELETED. */
static bool remove_export(const char *key, bool by_name, bool hard, Error **errp)
{
    NbdExportRec **pp = &records;
    while (*pp && strcmp(by_name ? (*pp)->name : (*pp)->id, key)) {
        pp = &(*pp)->next;
    }
    NbdExportRec *r = *pp;
    if (!r || !server) {
        error_setg(errp, "Export '%s' is not found", key);
        return false;
    }
    if (!hard && nbd_export_clients(server, r->name) > 0) {
        error_setg(errp, "export '%s' still in use", r->id);
        return false;
    }
    if (!nbd_export_del(server, r->name, hard, NULL, errp)) {
        return false;
    }
    *pp = r->next;
    blockdev_release(r->node);
    storage_daemon_qapi_event_send_block_export_deleted(r->id);
    record_free(r);
    return true;
}

bool sd_nbd_export_del(const char *id, bool hard, Error **errp)
{
    return remove_export(id, false, hard, errp);
}

bool sd_nbd_export_remove_by_name(const char *name, bool hard, Error **errp)
{
    return remove_export(name, true, hard, errp);
}

bool sd_nbd_server_stop(Error **errp)
{
    if (!server) {
        error_setg(errp, "NBD server not running");
        return false;
    }
    while (records) {
        Error *err = NULL;
        if (!remove_export(records->id, false, true, &err)) {
            error_free(err);
            break;
        }
    }
    nbd_server_free(server);
    server = NULL;
    return true;
}

void sd_nbd_foreach(void (*fn)(const char *id, const char *node, void *opaque),
                    void *opaque)
{
    for (NbdExportRec *r = records; r; r = r->next) {
        fn(r->id, r->node, opaque);
    }
}

void sd_nbd_close_all(void)
{
    if (server) {
        sd_nbd_server_stop(NULL);
    }
}
