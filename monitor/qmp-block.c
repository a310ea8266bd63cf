/*
 * QMP on block nodes (qapi/block-core.json): blockdev-add, blockdev-del,
 * query-block, query-named-block-nodes, query-blockstats; and HMP's
 * info block / info blockstats on top of them.  Members, order and
 * texts follow QEMU 7.2.
 */
#include <json-c/json.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "block/block-stats.h"
#include "block/format-info-json.h"
#include "block/node.h"
#include "monitor/hmp-commands.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "util/keyval.h"
#include "util/osdep.h"

/* ---- images and nodes ---- */

/* An open image (a format node's, or one of its backing chain). */
static ImageInfo *image_of(BlockImage *img, const char *format, bool flat)
{
    ImageInfo *ii = xzalloc(sizeof(*ii));
    ii->filename = xstrdup(blk_filename(img));
    ii->format = xstrdup(format);
    ii->virtual_size = (int64_t)blk_size(img);
    int64_t actual = blk_allocated_bytes(img);
    ii->has_actual_size = actual >= 0;
    ii->actual_size = actual;
    ii->has_dirty_flag = true;
    BlockFormatInfo fi = { 0 };
    bool have_fi = blk_get_info(img, &fi, NULL) == 0;
    if (strcmp(format, "raw") && blk_cluster_size(img)) {
        ii->has_cluster_size = true;
        ii->cluster_size = blk_cluster_size(img);
    }
    if (have_fi) {
        ii->dirty_flag = fi.dirty;
        if (fi.type && !strcmp(fi.type, "qcow2")) {
            ii->has_format_specific = true;
            ii->format_specific = qcow2_format_specific_json(&fi);
        }
        if (fi.backing_file) {
            ii->has_backing_filename = true;
            ii->backing_filename = xstrdup(fi.backing_file);
        }
        if (fi.backing_fmt) {
            ii->has_backing_filename_format = true;
            ii->backing_filename_format = xstrdup(fi.backing_fmt);
        }
        blk_free_info(&fi);
    }
    BlockImage *b = blk_backing(img);
    if (b) {
        ii->has_full_backing_filename = true;
        ii->full_backing_filename = xstrdup(blk_filename(b));
        if (!flat) {
            ii->has_backing_image = true;
            ii->backing_image = image_of(b, blk_format(b), false);
        }
    }
    return ii;
}

/* A protocol node: its file as it is on the host. */
static ImageInfo *file_image(BlockNode *n)
{
    ImageInfo *ii = xzalloc(sizeof(*ii));
    ii->filename = xstrdup(block_node_filename(n));
    ii->format = xstrdup(block_node_driver(n));
    ii->has_dirty_flag = true;
    struct stat st;
    if (stat(ii->filename, &st) == 0) {
        ii->virtual_size = ROUND_UP((int64_t)st.st_size, 512);   /* whole sectors */
        ii->has_actual_size = true;
        ii->actual_size = (int64_t)st.st_blocks * 512;
    }
    return ii;
}

/* A node's open options as QEMU writes them in a json: file name (keys sorted). */
static char *node_json(BlockNode *n)
{
    json_object *name = json_object_new_string(block_node_filename(n));
    char *out;
    BlockNode *f = block_node_file(n);
    if (!f) {
        out = xasprintf("{\"driver\": \"%s\", \"filename\": %s}", block_node_driver(n),
                        json_object_to_json_string_ext(name, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
        char *file = node_json(f);
        char *backing = block_node_backing_explicit(n) ? node_json(block_node_backing(n)) : NULL;
        out = xasprintf("{%s%s%s\"driver\": \"%s\", \"file\": %s}", backing ? "\"backing\": " : "",
                        backing ? backing : "", backing ? ", " : "", block_node_driver(n), file);
        free(file);
        free(backing);
    }
    json_object_put(name);
    return out;
}

/*
 * The file name QEMU shows for a node: the file's, unless a backing node
 * was named explicitly and is not the file the image records (@recorded,
 * as written in the image), which a plain name cannot say: then json:{...}.
 */
static char *display_filename(BlockNode *n, const char *plain, const char *recorded)
{
    if (!block_node_backing_explicit(n) ||
        (recorded && !strcmp(recorded, block_node_filename(block_node_backing(n))))) {
        return xstrdup(plain);
    }
    char *j = node_json(n);
    char *out = xasprintf("json:%s", j);
    free(j);
    return out;
}

static int chain_depth(BlockImage *img)
{
    int depth = 0;
    for (BlockImage *b = img ? blk_backing(img) : NULL; b; b = blk_backing(b)) {
        depth++;
    }
    return depth;
}

/* @backend: as a block device's `inserted` (its cache mode), else as a node. */
static BlockDeviceInfo *node_info(BlockNode *n, bool flat, bool backend)
{
    BlockDeviceInfo *d = xzalloc(sizeof(*d));
    BlockImage *img = block_node_is_format(n) || !block_node_file(n)
                      ? block_node_image(n, NULL) : NULL;
    bool proto = !block_node_is_format(n) && !strcmp(block_node_driver(n), "file");
    if (proto || !img) {
        d->image = file_image(n);
    } else {
        d->image = image_of(img, block_node_driver(n), flat);
        char *shown = display_filename(n, d->image->filename,
                                       d->image->has_backing_filename
                                       ? d->image->backing_filename : NULL);
        free(d->image->filename);
        d->image->filename = shown;
    }
    d->file = xstrdup(d->image->filename);
    d->has_node_name = true;
    d->node_name = xstrdup(block_node_name(n));
    d->ro = block_node_read_only(n);
    d->drv = xstrdup(block_node_driver(n));
    if (!proto && img && blk_backing(img)) {
        d->has_backing_file = true;
        d->backing_file = xstrdup(blk_filename(blk_backing(img)));
        d->backing_file_depth = flat ? 0 : chain_depth(img);   /* QEMU counts what it lists */
    }
    d->detect_zeroes = (BlockdevDetectZeroesOptions)block_node_detect_zeroes(n);
    d->write_threshold = (int64_t)block_node_write_threshold(n);
    d->cache = xzalloc(sizeof(*d->cache));
    d->cache->writeback = !backend || block_node_writeback(n);
    d->cache->direct = block_node_cache_direct(n);
    d->cache->no_flush = block_node_cache_no_flush(n);
    if (block_node_dirty_bitmaps_hook) {
        d->dirty_bitmaps = block_node_dirty_bitmaps_hook(n);
        d->has_dirty_bitmaps = d->dirty_bitmaps != NULL;
    }
    return d;
}

BlockDeviceInfoList *qmp_query_named_block_nodes(bool has_flat, bool flat, Error **errp)
{
    /* Newest first, as QEMU lists them. */
    BlockDeviceInfoList *list = NULL;
    for (BlockNode *n = block_node_first(); n; n = block_node_next(n)) {
        QAPI_LIST_PREPEND(list, node_info(n, has_flat && flat, false));
    }
    return list;
}

/* ---- block devices: -drive back-ends, then devices' anonymous ones ---- */

typedef struct Backend {
    BlockNode *node;
    const char *device;         /* "" for a device's own */
    const char *qdev;           /* NULL when no device uses it */
    uint64_t seq;               /* when the device attached */
    BlockNodeUser *user;        /* the device's claim, or NULL */
} Backend;

static BlockNodeUser *first_device_user(const BlockNode *n)
{
    BlockNodeUser *best = NULL;
    for (BlockNodeUser *u = block_node_user_first(n); u; u = block_node_user_next(u)) {
        if (block_node_user_qdev(u) && (!best || block_node_user_seq(u) < block_node_user_seq(best))) {
            best = u;
        }
    }
    return best;
}

static int collect_backends(Backend **out)
{
    int count = 0, cap = 8;
    Backend *b = xzalloc(sizeof(*b) * (size_t)cap);
    for (BlockNode *n = block_node_first(); n; n = block_node_next(n)) {
        if (!block_node_device(n)) {
            continue;
        }
        BlockNodeUser *u = first_device_user(n);
        if (count == cap) {
            cap *= 2;
            b = realloc(b, sizeof(*b) * (size_t)cap);
        }
        b[count++] = (Backend){ n, block_node_device(n), u ? block_node_user_qdev(u) : NULL,
                                u ? block_node_user_seq(u) : 0, u };
    }
    int drives = count;
    for (BlockNode *n = block_node_first(); n; n = block_node_next(n)) {
        if (block_node_device(n)) {
            continue;
        }
        for (BlockNodeUser *u = block_node_user_first(n); u; u = block_node_user_next(u)) {
            if (!block_node_user_qdev(u)) {
                continue;
            }
            if (count == cap) {
                cap *= 2;
                b = realloc(b, sizeof(*b) * (size_t)cap);
            }
            b[count] = (Backend){ n, "", block_node_user_qdev(u), block_node_user_seq(u), u };
            /* In the order the devices attached (insertion sort by seq). */
            int i = count++;
            while (i > drives && b[i - 1].seq > b[i].seq) {
                Backend t = b[i - 1];
                b[i - 1] = b[i];
                b[i] = t;
                i--;
            }
        }
    }
    *out = b;
    return count;
}

BlockInfoList *qmp_query_block(Error **errp)
{
    Backend *b;
    int n = collect_backends(&b);
    BlockInfoList *list = NULL, **tail = &list;
    for (int i = 0; i < n; i++) {
        BlockInfo *info = xzalloc(sizeof(*info));
        info->device = xstrdup(b[i].device);
        info->has_qdev = b[i].qdev != NULL;
        info->qdev = b[i].qdev ? xstrdup(b[i].qdev) : NULL;
        info->type = xstrdup("unknown");
        info->has_inserted = true;
        info->inserted = node_info(b[i].node, false, true);
        /* Without a device the medium counts as removable, as in QEMU. */
        info->removable = b[i].qdev == NULL;
        info->has_io_status = b[i].qdev != NULL;
        info->io_status = b[i].user ? (BlockDeviceIoStatus)block_node_user_io_status(b[i].user)
                                    : BLOCK_DEVICE_IO_STATUS_OK;
        QAPI_LIST_APPEND(tail, info);
    }
    free(b);
    return list;
}

/* ---- statistics ---- */

static BlockDeviceStats *stats_of(BlockNode *n, bool backend)
{
    const BlockNodeStats *s = block_node_stats(n);
    BlockDeviceStats *d = xzalloc(sizeof(*d));
    d->wr_highest_offset = (int64_t)s->wr_highest_offset;
    if (!block_node_is_format(n)) {
        /* A protocol node: the writes its host file took, whoever made them. */
        d->wr_highest_offset = (int64_t)MAX(s->wr_highest_offset,
                                            block_stats_protocol_node_highest(n));
    }
    if (!backend) {
        return d;       /* a node's own level: only the highest write, as in QEMU */
    }
    d->rd_bytes = s->bytes[BLOCK_STATS_READ];
    d->wr_bytes = s->bytes[BLOCK_STATS_WRITE];
    d->unmap_bytes = s->bytes[BLOCK_STATS_UNMAP];
    d->rd_operations = s->ops[BLOCK_STATS_READ];
    d->wr_operations = s->ops[BLOCK_STATS_WRITE];
    d->flush_operations = s->ops[BLOCK_STATS_FLUSH];
    d->unmap_operations = s->ops[BLOCK_STATS_UNMAP];
    d->rd_total_time_ns = s->total_time_ns[BLOCK_STATS_READ];
    d->wr_total_time_ns = s->total_time_ns[BLOCK_STATS_WRITE];
    d->flush_total_time_ns = s->total_time_ns[BLOCK_STATS_FLUSH];
    d->unmap_total_time_ns = s->total_time_ns[BLOCK_STATS_UNMAP];
    d->rd_merged = s->merged[BLOCK_STATS_READ];
    d->wr_merged = s->merged[BLOCK_STATS_WRITE];
    d->unmap_merged = s->merged[BLOCK_STATS_UNMAP];
    d->failed_rd_operations = s->failed_ops[BLOCK_STATS_READ];
    d->failed_wr_operations = s->failed_ops[BLOCK_STATS_WRITE];
    d->failed_flush_operations = s->failed_ops[BLOCK_STATS_FLUSH];
    d->failed_unmap_operations = s->failed_ops[BLOCK_STATS_UNMAP];
    d->invalid_rd_operations = s->invalid_ops[BLOCK_STATS_READ];
    d->invalid_wr_operations = s->invalid_ops[BLOCK_STATS_WRITE];
    d->invalid_flush_operations = s->invalid_ops[BLOCK_STATS_FLUSH];
    d->invalid_unmap_operations = s->invalid_ops[BLOCK_STATS_UNMAP];
    d->account_invalid = d->account_failed = true;
    if (s->last_access_ns) {
        d->has_idle_time_ns = true;
        d->idle_time_ns = block_stats_now_ns() - s->last_access_ns;
    }
    return d;
}

/* The file protocol's own counters: discards that reached the file. */
static json_object *file_specific(BlockNode *proto, BlockNode *top)
{
    json_object *o = json_object_new_object();
    uint64_t ok = 0, bytes = 0, failed = 0;
    if (top && !strcmp(block_node_driver(top), "raw")) {
        const BlockNodeStats *s = block_node_stats(top);
        ok = s->ops[BLOCK_STATS_UNMAP];
        bytes = s->bytes[BLOCK_STATS_UNMAP];
        failed = s->failed_ops[BLOCK_STATS_UNMAP];
    }
    json_object_object_add(o, "driver", json_object_new_string(block_node_driver(proto)));
    json_object_object_add(o, "discard-nb-ok", json_object_new_int64((int64_t)ok));
    json_object_object_add(o, "discard-nb-failed", json_object_new_int64((int64_t)failed));
    json_object_object_add(o, "discard-bytes-ok", json_object_new_int64((int64_t)bytes));
    return o;
}

/*
 * @backend: a block device's counters (else the node's own level); the
 * backing chain follows only there, as in QEMU.
 */
static BlockStats *node_stats(BlockNode *n, bool backend, bool chain)
{
    BlockStats *bs = xzalloc(sizeof(*bs));
    bs->has_node_name = true;
    bs->node_name = xstrdup(block_node_name(n));
    bs->stats = stats_of(n, backend);
    BlockNode *f = block_node_file(n);
    if (f) {
        bs->has_parent = true;
        bs->parent = node_stats(f, false, false);
        /* A raw node writes where the guest does (also over a filter, which
         * keeps no table of its own): the file has taken at least that. */
        if (!strcmp(block_node_driver(n), "raw")) {
            bs->parent->stats->wr_highest_offset =
                MAX(bs->parent->stats->wr_highest_offset,
                    (int64_t)block_node_stats(n)->wr_highest_offset);
        }
        if (bs->parent->has_driver_specific) {
            json_object_put(bs->parent->driver_specific);
            bs->parent->driver_specific = file_specific(f, n);
        }
    } else if (!strcmp(block_node_driver(n), "file")) {
        bs->has_driver_specific = true;
        bs->driver_specific = file_specific(n, NULL);
    }
    BlockNode *b = chain ? block_node_backing(n) : NULL;
    if (b) {
        bs->has_backing = true;
        bs->backing = node_stats(b, false, true);
    }
    return bs;
}

BlockStatsList *qmp_query_blockstats(bool has_query_nodes, bool query_nodes, Error **errp)
{
    BlockStatsList *list = NULL, **tail = &list;
    if (has_query_nodes && query_nodes) {
        for (BlockNode *n = block_node_first(); n; n = block_node_next(n)) {
            QAPI_LIST_APPEND(tail, node_stats(n, false, false));
        }
        return list;
    }
    Backend *b;
    int count = collect_backends(&b);
    for (int i = 0; i < count; i++) {
        BlockStats *bs = node_stats(b[i].node, true, true);
        bs->has_device = true;
        bs->device = xstrdup(b[i].device);
        bs->has_qdev = b[i].qdev != NULL;
        bs->qdev = b[i].qdev ? xstrdup(b[i].qdev) : NULL;
        QAPI_LIST_APPEND(tail, bs);
    }
    free(b);
    return list;
}

/* ---- adding and deleting nodes ---- */

json_object *qmp_blockdev_add(json_object *args, Error **errp)
{
    KeyValList kv;
    bool ok = false;
    if (!keyval_from_json(args, &kv, errp)) {
        return NULL;
    }
    if (!keyval_get(&kv, "node-name")) {
        error_setg(errp, "'node-name' must be specified for the root node");
    } else {
        ok = block_node_create(&kv, errp) != NULL;
    }
    keyval_free(&kv);
    return ok ? json_object_new_object() : NULL;
}

void qmp_blockdev_del(const char *node_name, Error **errp)
{
    block_node_delete(node_name, errp);
}

/* ---- write threshold ---- */

static void threshold_reached(BlockNode *n, uint64_t exceeded, uint64_t threshold)
{
    qapi_event_send_block_write_threshold(block_node_name(n), exceeded, threshold);
}

void qmp_block_set_write_threshold(const char *node_name, uint64_t threshold, Error **errp)
{
    BlockNode *n = block_node_find(node_name);
    if (!n) {
        error_setg(errp, "Device '%s' not found", node_name);
        return;
    }
    block_node_threshold_hook = threshold_reached;
    block_node_set_write_threshold(n, threshold);
}

/* ---- HMP ---- */

static void print_block(StrBuf *out, const BlockInfo *info, const BlockDeviceInfo *d)
{
    if (info && *info->device) {
        strbuf_printf(out, "%s (%s)", info->device, d->node_name);
    } else {
        strbuf_puts(out, d->node_name);
    }
    strbuf_printf(out, ": %s (%s%s)\n", d->file, d->drv, d->ro ? ", read-only" : "");
    if (info && info->has_qdev) {
        strbuf_printf(out, "    Attached to:      %s\n", info->qdev);
    }
    if (info && info->removable) {
        strbuf_printf(out, "    Removable device: %slocked, tray %s\n", info->locked ? "" : "not ",
                      info->tray_open ? "open" : "closed");
    }
    strbuf_printf(out, "    Cache mode:       %s%s%s\n",
                  d->cache->writeback ? "writeback" : "writethrough",
                  d->cache->direct ? ", direct" : "",
                  d->cache->no_flush ? ", ignore flushes" : "");
    if (d->has_backing_file) {
        strbuf_printf(out, "    Backing file:     %s (chain depth: %" PRId64 ")\n",
                      d->backing_file, d->backing_file_depth);
    }
    if (d->detect_zeroes != BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF) {
        strbuf_printf(out, "    Detect zeroes:    %s\n",
                      d->detect_zeroes == BLOCKDEV_DETECT_ZEROES_OPTIONS_ON ? "on" : "unmap");
    }
}

/* info block [-n] [device] */
void hmp_info_block(StrBuf *out, int argc, char **argv, Error **errp)
{
    bool nodes = false;
    const char *device = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n")) {
            nodes = true;
        } else if (!strcmp(argv[i], "-v")) {
            continue;
        } else {
            device = argv[i];
        }
    }
    bool printed = false;
    if (!nodes) {
        BlockInfoList *list = qmp_query_block(NULL);
        for (BlockInfoList *l = list; l; l = l->next) {
            if (device && strcmp(device, l->value->device)) {
                continue;
            }
            if (l != list) {
                strbuf_puts(out, "\n");
            }
            print_block(out, l->value, l->value->inserted);
            printed = true;
        }
        qapi_free_BlockInfoList(list);
        if ((!device && !nodes) || printed) {
            return;
        }
    }
    BlockDeviceInfoList *list = qmp_query_named_block_nodes(false, false, NULL);
    for (BlockDeviceInfoList *l = list; l; l = l->next) {
        if (device && strcmp(device, l->value->node_name)) {
            continue;
        }
        if (l != list) {
            strbuf_puts(out, "\n");
        }
        print_block(out, NULL, l->value);
    }
    qapi_free_BlockDeviceInfoList(list);
}

void hmp_info_blockstats(StrBuf *out, int argc, char **argv, Error **errp)
{
    BlockStatsList *list = qmp_query_blockstats(false, false, NULL);
    for (BlockStatsList *l = list; l; l = l->next) {
        const BlockDeviceStats *s = l->value->stats;
        if (!l->value->has_device) {
            continue;
        }
        strbuf_printf(out, "%s: rd_bytes=%" PRId64 " wr_bytes=%" PRId64 " rd_operations=%" PRId64
                      " wr_operations=%" PRId64 " flush_operations=%" PRId64
                      " wr_total_time_ns=%" PRId64 " rd_total_time_ns=%" PRId64
                      " flush_total_time_ns=%" PRId64 " rd_merged=%" PRId64
                      " wr_merged=%" PRId64 " idle_time_ns=%" PRId64 "\n",
                      l->value->device, s->rd_bytes, s->wr_bytes, s->rd_operations,
                      s->wr_operations, s->flush_operations, s->wr_total_time_ns,
                      s->rd_total_time_ns, s->flush_total_time_ns, s->rd_merged, s->wr_merged,
                      s->idle_time_ns);
    }
    qapi_free_BlockStatsList(list);
}
