/*
 * The block node registry (see node.h): nodes from -blockdev, -drive and
 * blockdev-add, their images and backing chains, their options, and the
 * queue their users share. The permission rules between users are in
 * node-perm.c, the statistics and write thresholds in node-stats.c.
 */
#include "block/node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block-int.h"
#include "block/dirty-bitmap.h"
#include "block/image-lock.h"
#include "block/node-int.h"
#include "util/keyval.h"
#include "util/osdep.h"

static BlockNode *nodes;        /* oldest first */
static unsigned auto_name_counter;

void (*block_node_watch_fd)(int fd, void (*cb)(void *opaque), void *opaque);
BlockDirtyInfoList *(*block_node_dirty_bitmaps_hook)(BlockNode *n);
void (*block_node_threshold_hook)(BlockNode *n, uint64_t exceeded, uint64_t threshold);

/* ---- lookup ---- */

BlockNode *block_node_find(const char *node_name)
{
    for (BlockNode *n = nodes; n && node_name; n = n->next) {
        if (!strcmp(n->name, node_name)) {
            return n;
        }
    }
    return NULL;
}

BlockNode *block_node_find_device(const char *device)
{
    for (BlockNode *n = nodes; n && device; n = n->next) {
        if (n->device && !strcmp(n->device, device)) {
            return n;
        }
    }
    return NULL;
}

BlockNode *block_node_lookup(const char *device, const char *node_name, Error **errp)
{
    BlockNode *n = block_node_find_device(device);
    if (!n) {
        n = block_node_find(node_name);
    }
    if (!n) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   device ? device : "", node_name ? node_name : "");
    }
    return n;
}

BlockNode *block_node_first(void) { return nodes; }
BlockNode *block_node_next(const BlockNode *n) { return n->next; }
const char *block_node_name(const BlockNode *n) { return n->name; }
const char *block_node_driver(const BlockNode *n) { return n->driver; }
const char *block_node_device(const BlockNode *n) { return n->device; }
BlockNode *block_node_file(const BlockNode *n) { return n->file; }
bool block_node_backing_explicit(const BlockNode *n)
{
    return n->backing != NULL;
}

BlockNode *block_node_backing(const BlockNode *n)
{
    return n->backing ? n->backing : n->backing_chain;
}
bool block_node_is_format(const BlockNode *n) { return n->file != NULL; }
bool block_node_auto_read_only(const BlockNode *n) { return n->auto_read_only; }
bool block_node_discard_unmap(const BlockNode *n) { return n->discard_unmap; }
BlockNodeDetectZeroes block_node_detect_zeroes(const BlockNode *n) { return n->detect_zeroes; }
bool block_node_writeback(const BlockNode *n) { return n->writeback; }
bool block_node_from_drive(const BlockNode *n) { return n->from_drive; }
BlockNodeStats *block_node_stats(BlockNode *n) { return &n->stats; }

static const BlockNode *proto_of(const BlockNode *n)
{
    return n->file ? n->file : n;
}

const char *block_node_filename(const BlockNode *n)
{
    if (n->img) {
        return blk_filename(n->img);
    }
    return proto_of(n)->filename;
}

bool block_node_read_only(const BlockNode *n)
{
    return n->read_only || proto_of(n)->read_only;
}

bool block_node_cache_direct(const BlockNode *n) { return proto_of(n)->direct; }
bool block_node_cache_no_flush(const BlockNode *n) { return proto_of(n)->no_flush; }
BlockNodeAio block_node_aio(const BlockNode *n) { return proto_of(n)->aio; }
BlockNodeLocking block_node_locking(const BlockNode *n) { return proto_of(n)->locking; }

bool block_node_in_use(const BlockNode *n)
{
    return n->users || n->parent;
}

/* ---- the shared queue ---- */

static void queue_ready(void *opaque)
{
    BlockNode *n = opaque;
    if (!n->img || !n->img->queue) {
        return;
    }
    blk_queue_process(n->img->queue, false);
    for (BlockNodeUser *u = n->users; u; u = u->next) {
        if (u->io_done) {
            u->io_done(u->io_opaque);
        }
    }
}

void block_node_queue_drain(BlockNode *n)
{
    if (!n->img || !n->img->queue) {
        return;
    }
    blk_queue_drain(n->img->queue);
    for (BlockNodeUser *u = n->users; u; u = u->next) {
        if (u->io_done) {
            u->io_done(u->io_opaque);
        }
    }
}

BlockQueue *block_node_queue(BlockNode *n, unsigned depth, Error **errp)
{
    BlockImage *img = block_node_image(n, errp);
    if (!img) {
        return NULL;
    }
    if (img->queue) {
        return img->queue;
    }
    BlockQueue *q = blk_queue_new(img, depth, errp);
    if (q && block_node_watch_fd) {
        block_node_watch_fd(blk_queue_fd(q), queue_ready, n);
    }
    return q;
}

/* ---- opening ---- */

static unsigned open_flags(const BlockNode *n)
{
    const BlockNode *p = proto_of(n);
    return (block_node_read_only(n) ? 0 : BLK_O_RDWR) | (p->direct ? BLK_O_NOCACHE : 0) |
           (p->aio != BLOCK_AIO_THREADS ? BLK_O_URING : 0) | (p->no_flush ? BLK_O_UNSAFE : 0) |
           (n->backing || n->backing_null ? BLK_O_NO_BACKING : 0);
}

/* Read locks on the image's backing files, as QEMU holds them. */
static bool lock_chain(BlockNode *n, Error **errp)
{
    if (!n->img || proto_of(n)->lock_fd < 0) {
        return true;
    }
    for (BlockImage *b = blk_backing(n->img); b; b = blk_backing(b)) {
        if (!strcmp(b->filename, "") || b->file.fd < 0) {
            continue;
        }
        int fd = vireo_open(b->filename, O_RDONLY, 0, errp);
        unsigned shared = BLK_PERM_ALL & ~(BLK_PERM_WRITE | BLK_PERM_RESIZE);
        if (fd >= 0 && !image_lock_check(fd, BLK_PERM_CONSISTENT_READ, shared, errp)) {
            error_append_hint(errp, "Is another process using the image [%s]?\n", b->filename);
            close(fd);
            fd = -1;
        }
        if (fd < 0 || !image_lock_apply(fd, BLK_PERM_CONSISTENT_READ, shared, errp)) {
            if (fd >= 0) {
                close(fd);
            }
            error_prepend(errp, "Could not open backing file: ");
            return false;
        }
        n->chain_lock_fds = realloc(n->chain_lock_fds,
                                    sizeof(int) * (size_t)(n->nr_chain_lock_fds + 1));
        n->chain_lock_fds[n->nr_chain_lock_fds++] = fd;
    }
    return true;
}

static char *auto_name(void);
static void node_register(BlockNode *n);

/*
 * The image's backing chain as nodes, as QEMU shows it: per backing image
 * a read-only file node and a format node over it, named in that order.
 * Their images belong to the image above; they go when it goes.
 */
static void make_chain_nodes(BlockNode *n)
{
    BlockNode *above = n;
    for (BlockImage *b = blk_backing(n->img); b; b = blk_backing(b)) {
        BlockNode *f = xzalloc(sizeof(*f)), *c = xzalloc(sizeof(*c));
        f->lock_fd = c->lock_fd = -1;
        f->name = auto_name();
        f->driver = xstrdup("file");
        f->filename = xstrdup(blk_filename(b));
        f->read_only = c->read_only = true;
        f->direct = proto_of(n)->direct;
        f->aio = proto_of(n)->aio;
        f->writeback = c->writeback = true;
        f->parent = c;
        c->name = auto_name();
        c->driver = xstrdup(blk_format(b));
        c->file = f;
        c->img = b;
        c->borrowed = true;
        c->parent = above;
        node_register(f);
        node_register(c);
        above->backing_chain = c;
        above = c;
    }
}

static void unlock_chain(BlockNode *n)
{
    for (int i = 0; i < n->nr_chain_lock_fds; i++) {
        close(n->chain_lock_fds[i]);
    }
    free(n->chain_lock_fds);
    n->chain_lock_fds = NULL;
    n->nr_chain_lock_fds = 0;
}

/* Open the format over a file node: a host file, or a filter node's own options. */
static BlockImage *open_over(const BlockNode *f, const char *fmt, const KeyValList *proto_opts,
                             unsigned flags, Error **errp)
{
    if (f->filter_opts.n) {
        return blk_open_filter_node(&f->filter_opts, f->filename, fmt, flags, errp);
    }
    return blk_open_opts(f->filename, fmt, proto_opts, flags, errp);
}

/*
 * Open a format node's image (the protocol node's file with the format on
 * top), after checking the claims its metadata makes on the file.
 * @proto_opts: -drive's protocol options (null-co), else NULL.
 */
static bool open_format(BlockNode *n, const KeyValList *proto_opts, Error **errp)
{
    const char *fmt = n->driver[0] ? n->driver : NULL;
    BlockNode *f = n->file;
    if (!node_refresh_tree(f, NULL, false, errp)) {
        return false;
    }
    unsigned flags = open_flags(n);
    Error *err = NULL;
    n->img = open_over(f, fmt, proto_opts, flags, &err);
    if (!n->img && n->auto_read_only && (flags & BLK_O_RDWR)) {
        error_free(err);
        err = NULL;
        n->read_only = true;
        n->img = open_over(f, fmt, proto_opts, flags & ~BLK_O_RDWR, &err);
    }
    if (!n->img) {
        error_propagate(errp, err);
        return false;
    }
    if (!fmt) {
        free(n->driver);
        n->driver = xstrdup(blk_format(n->img));
    }
    if (n->backing) {
        /* Borrowed: detached again before this image closes (node_free). */
        n->img->backing = n->backing->img;
    }
    if (!node_refresh_tree(f, NULL, true, errp) ||
        (n->backing && !node_refresh_tree(n->backing, NULL, true, errp))) {
        return false;
    }
    if (!n->backing && !lock_chain(n, errp)) {
        return false;
    }
    if (!n->backing) {
        make_chain_nodes(n);
    }
    /* A running VMM or daemon: stored bitmaps become live ones (in_use on disk). */
    return blk_dirty_bitmaps_load(n->img, errp) == 0;
}

BlockImage *block_node_image(BlockNode *n, Error **errp)
{
    if (n->img || n->file) {
        if (!n->img) {
            error_setg(errp, "Node '%s' has no open image", n->name);
        }
        return n->img;
    }
    if (!n->filename) {
        error_setg(errp, "Node '%s' has no file", n->name);
        return NULL;
    }
    n->img = open_over(n, "raw", NULL, open_flags(n), errp);
    return n->img;
}

/* ---- creating ---- */

static char *auto_name(void)
{
    /* QEMU's shape: "#block", a counter, two more digits. */
    unsigned id = auto_name_counter++;
    return xasprintf("#block%u%02u", id, (unsigned)(rand() % 100));
}

static bool name_ok(const char *name, Error **errp)
{
    size_t len = strlen(name);
    bool ok = len > 0 && len < 128 && ((name[0] >= 'a' && name[0] <= 'z') ||
                                       (name[0] >= 'A' && name[0] <= 'Z'));
    for (size_t i = 1; ok && i < len; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '.' || c == '_';
    }
    if (!ok) {
        error_setg(errp, "Invalid node-name: '%s'", name);
    }
    return ok;
}

static void node_unregister(BlockNode *n);

static void node_free(BlockNode *n)
{
    if (n->borrowed) {
        n->img = NULL;          /* closed with the image above */
        if (n->parent && n->parent->backing_chain == n) {
            n->parent->backing_chain = NULL;
        }
        if (n->file && n->file->parent == n) {
            n->file->parent = NULL;
        }
    }
    while (n->backing_chain) {
        BlockNode *c = n->backing_chain, *f = c->file;
        node_unregister(c);
        node_free(c);           /* clears n->backing_chain */
        if (f) {
            node_unregister(f);
            node_free(f);
        }
    }
    if (n->backing && n->backing->parent == n) {
        n->backing->parent = NULL;
    }
    if (n->img && n->backing && n->img->backing == n->backing->img) {
        n->img->backing = NULL;     /* the backing node's own */
    }
    if (n->img) {
        Error *err = NULL;
        if (n->img->queue && block_node_watch_fd) {
            block_node_watch_fd(blk_queue_fd(n->img->queue), NULL, NULL);
        }
        if (blk_close(n->img, &err) < 0) {
            error_report_err(err);
        }
    }
    unlock_chain(n);
    if (n->lock_fd >= 0) {
        close(n->lock_fd);
    }
    free(n->name);
    free(n->driver);
    free(n->device);
    free(n->filename);
    keyval_free(&n->filter_opts);
    free(n->werror);
    free(n->rerror);
    free(n);
}

static void node_register(BlockNode *n)
{
    BlockNode **p = &nodes;
    while (*p) {
        p = &(*p)->next;
    }
    *p = n;
}

static void node_unregister(BlockNode *n)
{
    for (BlockNode **p = &nodes; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            return;
        }
    }
}

/* Keys every driver takes, then the file protocol's, then the formats'. */
static const char *const common_keys[] = {
    "driver", "node-name", "discard", "cache.direct", "cache.no-flush", "read-only",
    "auto-read-only", "force-share", "detect-zeroes", NULL,
};
static const char *const file_keys[] = { "filename", "aio", "locking", "aio-max-batch", NULL };
static const char *const format_keys[] = { "file", "backing", NULL };

static bool key_in(const char *key, const char *const *list)
{
    for (; *list; list++) {
        if (!strcmp(key, *list)) {
            return true;
        }
    }
    return false;
}

static bool get_bool(const KeyValList *kv, const char *key, bool *out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    if (!v) {
        return true;
    }
    return parse_bool(key, v, out, errp);
}

static bool get_enum(const KeyValList *kv, const char *key, const char *const *values,
                     int *out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    if (!v) {
        return true;
    }
    for (int i = 0; values[i]; i++) {
        if (!strcmp(v, values[i])) {
            *out = i;
            return true;
        }
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'", key, v);
    return false;
}

/* The options under "PREFIX." as a list of their own (values borrowed). */
static void sub_options(const KeyValList *kv, const char *prefix, KeyValList *out)
{
    size_t len = strlen(prefix);
    out->n = 0;
    out->items = xzalloc(sizeof(*out->items) * (size_t)(kv->n + 1));
    for (int i = 0; i < kv->n; i++) {
        if (!strncmp(kv->items[i].key, prefix, len) && kv->items[i].key[len] == '.') {
            out->items[out->n++] = (KeyVal){ kv->items[i].key + len + 1, kv->items[i].value };
        }
    }
}

static bool common_options(BlockNode *n, const KeyValList *kv, Error **errp)
{
    static const char *const discard[] = { "ignore", "unmap", NULL };
    static const char *const dz[] = { "off", "on", "unmap", NULL };
    static const char *const aio[] = { "threads", "native", "io_uring", NULL };
    static const char *const locking[] = { "auto", "on", "off", NULL };
    int d = 0, z = 0, a = 0, l = 0;
    const char *discard_v = keyval_get(kv, "discard");
    if (discard_v && !strcmp(discard_v, "off")) {
        discard_v = NULL;       /* QEMU's alias of ignore */
    } else if (discard_v && !strcmp(discard_v, "on")) {
        d = 1;
        discard_v = NULL;
    }
    bool ok = get_bool(kv, "read-only", &n->read_only, errp) &&
              get_bool(kv, "auto-read-only", &n->auto_read_only, errp) &&
              get_bool(kv, "cache.direct", &n->direct, errp) &&
              get_bool(kv, "cache.no-flush", &n->no_flush, errp) &&
              (!discard_v || get_enum(kv, "discard", discard, &d, errp)) &&
              get_enum(kv, "detect-zeroes", dz, &z, errp) &&
              get_enum(kv, "aio", aio, &a, errp) &&
              get_enum(kv, "locking", locking, &l, errp);
    n->discard_unmap = d == 1;
    n->detect_zeroes = (BlockNodeDetectZeroes)z;
    n->aio = (BlockNodeAio)a;
    n->locking = (BlockNodeLocking)l;
    if (ok && n->detect_zeroes == BLOCK_DZ_UNMAP && !n->discard_unmap) {
        error_setg(errp, "setting detect-zeroes to unmap is not allowed "
                   "without setting discard operation to unmap");
        ok = false;
    }
    if (ok && n->aio == BLOCK_AIO_NATIVE && !n->direct) {
        error_setg(errp, "aio=native was specified, but it requires cache.direct=on, "
                   "which was not specified.");
        ok = false;
    }
    n->writeback = true;
    return ok;
}

static bool protocol_options(BlockNode *n, const KeyValList *kv, Error **errp)
{
    const char *filename = keyval_get(kv, "filename");
    if (!filename) {
        error_setg(errp, "Parameter 'filename' is missing");
        return false;
    }
    n->filename = xstrdup(filename);
    n->lock_fd = -1;
    int fd = vireo_open(filename, O_RDONLY, 0, errp);
    if (fd < 0) {
        return false;
    }
    if (n->locking == BLOCK_LOCK_OFF) {
        close(fd);
    } else {
        n->lock_fd = fd;
    }
    return true;
}

/*
 * A blkdebug or quorum node: its options (children included) are kept and
 * checked when the format above opens it; its files take no lock.
 */
static bool filter_options(BlockNode *n, const KeyValList *kv, Error **errp)
{
    n->lock_fd = -1;
    for (int i = 0; i < kv->n; i++) {
        const char *key = kv->items[i].key;
        if (!strcmp(key, "driver") || !key_in(key, common_keys)) {
            KeyValList *o = &n->filter_opts;
            o->items = xrealloc(o->items, sizeof(*o->items) * (size_t)(o->n + 1));
            o->items[o->n++] = (KeyVal){ xstrdup(key), xstrdup(kv->items[i].value) };
        }
    }
    n->filename = bfile_node_json_name(&n->filter_opts);
    return true;
}

static BlockNode *create_child(const KeyValList *kv, const char *key, BlockNode *parent,
                               Error **errp);

static bool format_options(BlockNode *n, const KeyValList *kv, Error **errp)
{
    n->file = create_child(kv, "file", n, errp);
    if (!n->file) {
        return false;
    }
    n->file->parent = n;
    if (n->file->file) {
        error_setg(errp, "Node '%s' is not a protocol node: formats over formats are "
                   "not supported", n->file->name);
        return false;
    }
    const char *backing = keyval_get(kv, "backing");
    if (!strcmp(n->driver, "raw") || !strcmp(n->driver, "parallels")) {
        if (backing) {
            error_setg(errp, "Parameter 'backing' is unexpected");
            return false;
        }
        return true;
    }
    if (backing && !strcmp(backing, "null")) {
        n->backing_null = true;
    } else if (backing || keyval_get(kv, "backing.driver")) {
        /* A node of its own below this one: the image's recorded chain is not opened. */
        n->backing = create_child(kv, "backing", n, errp);
        if (!n->backing) {
            return false;
        }
        n->backing->parent = n;
    }
    return true;
}

static BlockNode *create_node(const KeyValList *kv, Error **errp)
{
    const char *driver = keyval_get(kv, "driver");
    const char *name = keyval_get(kv, "node-name");
    if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
        return NULL;
    }
    bool filter = bfile_is_filter_driver(driver);
    bool proto = !strcmp(driver, "file") || filter;
    if (!proto && !node_is_format_driver(driver)) {
        error_setg(errp, "Parameter 'driver' does not accept value '%s'", driver);
        return NULL;
    }
    for (int i = 0; i < kv->n; i++) {
        const char *key = kv->items[i].key;
        bool sub = !proto && (!strncmp(key, "file.", 5) || !strncmp(key, "backing.", 8));
        if (!sub && !filter && !key_in(key, common_keys) &&
            !key_in(key, proto ? file_keys : format_keys)) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return NULL;
        }
    }
    if (name && !name_ok(name, errp)) {
        return NULL;
    }
    if (name && (block_node_find(name) || block_node_find_device(name))) {
        error_setg(errp, block_node_find(name) ? "Duplicate nodes with node-name='%s'"
                                               : "node-name=%s is conflicting with a device id",
                   name);
        return NULL;
    }
    BlockNode *n = xzalloc(sizeof(*n));
    n->lock_fd = -1;
    n->driver = xstrdup(driver);
    n->name = name ? xstrdup(name) : auto_name();
    bool ok = common_options(n, kv, errp) &&
              (filter ? filter_options(n, kv, errp)
               : proto ? protocol_options(n, kv, errp) : format_options(n, kv, errp));
    if (ok) {
        node_register(n);
        if (!proto && !open_format(n, NULL, errp)) {
            node_unregister(n);
            ok = false;
        }
    }
    if (!ok) {
        BlockNode *f = n->file, *b = n->backing;
        bool f_nested = f && f->parent == n && !f->monitor_owned && !f->from_drive;
        bool b_nested = b && b->parent == n && !b->monitor_owned;
        if (f && f->parent == n) {
            f->parent = NULL;
        }
        node_free(n);               /* lets go of its backing node too */
        if (f_nested) {
            node_unregister(f);     /* made nested for this node */
            node_free(f);
        }
        if (b_nested) {
            BlockNode *bf = b->file;
            node_unregister(b);
            node_free(b);
            if (bf && !bf->monitor_owned && !bf->users) {
                node_unregister(bf);
                node_free(bf);
            }
        }
        return NULL;
    }
    return n;
}

/* The node named by @key (a reference), or made from "KEY.*" options. */
static BlockNode *create_child(const KeyValList *kv, const char *key, BlockNode *parent,
                               Error **errp)
{
    const char *ref = keyval_get(kv, key);
    KeyValList sub;
    sub_options(kv, key, &sub);
    BlockNode *child = NULL;
    if (ref && sub.n) {
        error_setg(errp, "Cannot reference an existing block device with additional options "
                   "or a new filename");
    } else if (ref) {
        child = block_node_find(ref);
        if (!child) {
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'", ref, ref);
        } else if (child->parent && !strcmp(key, "file")) {
            node_second_parent_error(child, parent, errp);
            child = NULL;
        } else if (child->parent) {
            error_setg(errp, "Node '%s' is already in use by node '%s'", ref,
                       child->parent->name);
            child = NULL;
        } else if (!strcmp(key, "backing") && !child->file) {
            error_setg(errp, "Node '%s' is not a format node: a backing node is raw, "
                       "qcow2 or parallels", ref);
            child = NULL;
        } else if (!strcmp(key, "file") && (child->file || !child->filename)) {
            error_setg(errp, "Node '%s' is not a protocol node: formats over formats are "
                       "not supported", ref);
            child = NULL;
        }
    } else if (sub.n) {
        child = create_node(&sub, errp);
    } else {
        error_setg(errp, "Parameter '%s' is missing", key);
    }
    free(sub.items);
    return child;
}

BlockNode *block_node_create(const KeyValList *kv, Error **errp)
{
    BlockNode *n = create_node(kv, errp);
    if (n) {
        n->monitor_owned = true;
    }
    return n;
}

/* -drive: cache=writeback|writethrough|none|directsync|unsafe, aio=, readonly=. */
static void drive_flags(BlockNode *n, BlockNode *proto, const KeyValList *kv)
{
    const char *cache = keyval_get(kv, "cache");
    const char *aio = keyval_get(kv, "aio");
    n->read_only = keyval_get_bool(kv, "readonly", false) ||
                   keyval_get_bool(kv, "read-only", false);
    n->writeback = !cache || (strcmp(cache, "writethrough") && strcmp(cache, "directsync"));
    proto->direct = cache && (!strcmp(cache, "none") || !strcmp(cache, "directsync"));
    proto->no_flush = cache && !strcmp(cache, "unsafe");
    proto->aio = !aio || !strcmp(aio, "threads") ? BLOCK_AIO_THREADS
                 : !strcmp(aio, "native") ? BLOCK_AIO_NATIVE : BLOCK_AIO_IO_URING;
    const char *discard = keyval_get(kv, "discard");
    n->discard_unmap = discard && (!strcmp(discard, "unmap") || !strcmp(discard, "on"));
    const char *werror = keyval_get(kv, "werror"), *rerror = keyval_get(kv, "rerror");
    n->werror = werror ? xstrdup(werror) : NULL;
    n->rerror = rerror ? xstrdup(rerror) : NULL;
    const char *dz = keyval_get(kv, "detect-zeroes");
    n->detect_zeroes = !dz || !strcmp(dz, "off") ? BLOCK_DZ_OFF
                       : !strcmp(dz, "unmap") ? BLOCK_DZ_UNMAP : BLOCK_DZ_ON;
}

/* A -drive whose top driver is a protocol (null-co): one node, no file child. */
static bool open_drive_protocol(BlockNode *n, const char *file, const char *format,
                                const KeyValList *proto, Error **errp)
{
    n->filename = xstrdup(file ? file : "");
    n->img = blk_open_opts(file, format, proto, open_flags(n), errp);
    if (n->img) {
        free(n->driver);
        n->driver = xstrdup(blk_format(n->img));
    }
    return n->img != NULL;
}

BlockNode *block_node_create_drive(const char *drive_opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(drive_opts, NULL, NULL, &kv, errp)) {
        return NULL;
    }
    const char *id = keyval_get(&kv, "id");
    const char *file = keyval_get(&kv, "file");
    /* driver= names the top driver: a format, or a protocol such as null-co. */
    const char *format = keyval_get(&kv, "format");
    format = format ? format : keyval_get(&kv, "driver");
    if (!file && !format) {
        error_setg(errp, "-drive without file=");
        keyval_free(&kv);
        return NULL;
    }
    if (id && (block_node_find_device(id) || block_node_find(id))) {
        error_setg(errp, "Duplicate ID '%s' for drive", id);
        keyval_free(&kv);
        return NULL;
    }
    KeyValList proto;
    blk_drive_protocol_options(&kv, &proto);
    bool is_proto = (format && !node_is_format_driver(format)) || (file && strstr(file, "://"));
    BlockNode *n = xzalloc(sizeof(*n)), *f = NULL;
    n->lock_fd = -1;
    n->from_drive = true;
    n->device = id ? xstrdup(id) : NULL;
    n->driver = xstrdup(format ? format : "");
    if (!is_proto) {
        f = xzalloc(sizeof(*f));
        f->lock_fd = -1;
        f->from_drive = true;
        f->name = auto_name();      /* the file node is named first, as in QEMU */
        f->driver = xstrdup("file");
        f->filename = xstrdup(file);
        const char *flock = keyval_get(&proto, "locking");
        f->locking = flock && !strcmp(flock, "off") ? BLOCK_LOCK_OFF : BLOCK_LOCK_AUTO;
        n->file = f;
        f->parent = n;
    }
    const char *node_name = keyval_get(&kv, "node-name");
    if (node_name && (!name_ok(node_name, errp) || block_node_find(node_name) ||
                      block_node_find_device(node_name))) {
        if (block_node_find(node_name) || block_node_find_device(node_name)) {
            error_setg(errp, "Duplicate nodes with node-name='%s'", node_name);
        }
        free(proto.items);
        keyval_free(&kv);
        node_free(n);
        if (f) {
            node_free(f);
        }
        return NULL;
    }
    n->name = node_name ? xstrdup(node_name) : auto_name();
    drive_flags(n, f ? f : n, &kv);
    bool ok;
    if (f) {
        const char *path = !strncmp(file, "file:", 5) ? file + 5 : file;
        ok = f->locking == BLOCK_LOCK_OFF ||
             (f->lock_fd = vireo_open(path, O_RDONLY, 0, errp)) >= 0;
        if (ok) {
            node_register(f);
            node_register(n);
            ok = open_format(n, &proto, errp);
            if (!ok) {
                node_unregister(n);
                node_unregister(f);
            }
        }
    } else {
        ok = open_drive_protocol(n, file, format, &proto, errp);
        if (ok) {
            node_register(n);
        }
    }
    free(proto.items);
    keyval_free(&kv);
    if (!ok) {
        node_free(n);
        if (f) {
            node_free(f);
        }
        return NULL;
    }
    return n;
}

bool block_node_delete(const char *node_name, Error **errp)
{
    BlockNode *n = block_node_find(node_name);
    if (!n) {
        error_setg(errp, "Failed to find node with node-name='%s'", node_name);
        return false;
    }
    if (n->users) {
        error_setg(errp, "Node %s is in use", node_name);
        return false;
    }
    if (!n->monitor_owned) {
        error_setg(errp, "Node %s is not owned by the monitor", node_name);
        return false;
    }
    if (n->parent && n->parent->backing == n) {
        error_setg(errp, "Node '%s' is busy: node is used as backing hd of '%s'", node_name,
                   n->parent->name);
        return false;
    }
    if (n->parent) {
        error_setg(errp, "Block device %s is in use", node_name);
        return false;
    }
    node_unregister(n);
    BlockNode *f = n->file;
    if (f) {
        f->parent = NULL;
    }
    BlockNode *b = n->backing;
    node_free(n);
    if (f && !f->monitor_owned && !f->users) {
        node_unregister(f);     /* made nested for it */
        node_free(f);
    }
    if (b && !b->monitor_owned && !b->users && !b->parent) {
        BlockNode *bf = b->file;
        node_unregister(b);
        node_free(b);
        if (bf && !bf->monitor_owned && !bf->users) {
            node_unregister(bf);
            node_free(bf);
        }
    }
    return true;
}

void block_node_close_all(void)
{
    /* Newest first, so formats close before the protocol nodes below them. */
    while (nodes) {
        BlockNode *last = nodes, **p = &nodes;
        while (last->next) {
            p = &last->next;
            last = last->next;
        }
        *p = NULL;
        while (last->users) {
            BlockNodeUser *u = last->users;
            last->users = u->next;
            free(u->desc);
            free(u->qdev);
            free(u);
        }
        node_free(last);
    }
}
