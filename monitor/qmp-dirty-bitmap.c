/*
 * QMP: dirty bitmaps on block nodes (qapi/dirty-bitmap.json), and the
 * `dirty-bitmaps` member of query-block / query-named-block-nodes.
 * Arguments, checks and error texts follow QEMU 7.2 in order.
 */
#include <stdlib.h>
#include <string.h>

#include "block/dirty-bitmap.h"
#include "block/node.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

/* The node's image, where its bitmaps live; NULL with errp set. */
static BlockImage *node_image(BlockNode *n, Error **errp)
{
    return block_node_image(n, errp);
}

/*
 * A bitmap by node (node name or device name) and name, with QEMU's
 * messages; *imgp receives the image it belongs to.
 */
static BdrvDirtyBitmap *lookup(const char *node, const char *name, BlockImage **imgp,
                               Error **errp)
{
    BlockNode *n = block_node_find_device(node);
    n = n ? n : block_node_find(node);
    if (!n) {
        error_setg(errp, "Node '%s' not found", node);
        return NULL;
    }
    BlockImage *img = node_image(n, errp);
    if (!img) {
        return NULL;
    }
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_find(img, name);
    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    if (imgp) {
        *imgp = img;
    }
    return bm;
}

void qmp_block_dirty_bitmap_add(const char *node, const char *name, bool has_granularity,
                                uint32_t granularity, bool has_persistent, bool persistent,
                                bool has_disabled, bool disabled, Error **errp)
{
    if (!name[0]) {
        error_setg(errp, "Bitmap name cannot be empty");
        return;
    }
    BlockNode *n = block_node_lookup(node, node, errp);
    BlockImage *img = n ? node_image(n, errp) : NULL;
    if (!img) {
        return;
    }
    if (!has_granularity) {
        granularity = bdrv_dirty_bitmap_default_granularity(img);
    } else if (granularity < 512 || (granularity & (granularity - 1))) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return;
    }
    persistent = has_persistent && persistent;
    if (persistent) {
        Error *err = NULL;
        int r = blk_dirty_bitmap_can_store(img, name, granularity, &err);
        if (r < 0) {
            const char *who = block_node_device(n) ? block_node_device(n)
                                                    : block_node_name(n);
            if (r == -2) {
                error_setg(errp, "Can't store persistent bitmaps to %s: %s", who,
                           error_get_pretty(err));
            } else {
                error_setg(errp, "Can't make bitmap '%s' persistent in '%s': %s", name,
                           who, error_get_pretty(err));
            }
            error_free(err);
            return;
        }
    }
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_create(img, name, granularity, errp);
    if (!bm) {
        return;
    }
    bdrv_dirty_bitmap_set_enabled(bm, !(has_disabled && disabled));
    bdrv_dirty_bitmap_set_persistent(bm, persistent);
}

void qmp_block_dirty_bitmap_remove(const char *node, const char *name, Error **errp)
{
    BlockImage *img;
    BdrvDirtyBitmap *bm = lookup(node, name, &img, errp);
    if (!bm || bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_BUSY | BDRV_BITMAP_RO, errp) < 0) {
        return;
    }
    if (bdrv_dirty_bitmap_persistent(bm) &&
        blk_dirty_bitmap_remove_stored(img, name, errp) < 0) {
        return;
    }
    bdrv_dirty_bitmap_release(img, bm);
}

void qmp_block_dirty_bitmap_clear(const char *node, const char *name, Error **errp)
{
    BdrvDirtyBitmap *bm = lookup(node, name, NULL, errp);
    if (bm && bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, errp) == 0) {
        bdrv_dirty_bitmap_clear(bm);
    }
}

void qmp_block_dirty_bitmap_enable(const char *node, const char *name, Error **errp)
{
    BdrvDirtyBitmap *bm = lookup(node, name, NULL, errp);
    if (bm && bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_ALLOW_RO, errp) == 0) {
        bdrv_dirty_bitmap_set_enabled(bm, true);
    }
}

void qmp_block_dirty_bitmap_disable(const char *node, const char *name, Error **errp)
{
    BdrvDirtyBitmap *bm = lookup(node, name, NULL, errp);
    if (bm && bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_ALLOW_RO, errp) == 0) {
        bdrv_dirty_bitmap_set_enabled(bm, false);
    }
}

/*
 * One element of merge's `bitmaps`: a name on the target's node or
 * {"node": .., "name": ..}.  The schema's alternate reaches C as plain
 * JSON, so its shape is checked here, with the argument checker's texts.
 */
static bool merge_source_parse(json_object *v, int idx, const char *node,
                               const char **src_node, const char **src_name, Error **errp)
{
    if (json_object_is_type(v, json_type_string)) {
        *src_node = node;
        *src_name = json_object_get_string(v);
        return true;
    }
    if (!json_object_is_type(v, json_type_object)) {
        /* QEMU 7.2 names the element 'null' in this message. */
        error_setg(errp, "Invalid parameter type for 'null', expected: BlockDirtyBitmapOrStr");
        return false;
    }
    static const char *const keys[2] = { "node", "name" };
    const char *vals[2] = { NULL, NULL };
    json_object_object_foreach(v, key, val) {
        int k = !strcmp(key, "node") ? 0 : !strcmp(key, "name") ? 1 : -1;
        if (k < 0) {
            error_setg(errp, "Parameter 'bitmaps[%d].%s' is unexpected", idx, key);
            return false;
        }
        if (!json_object_is_type(val, json_type_string)) {
            error_setg(errp, "Invalid parameter type for 'bitmaps[%d].%s', expected: string",
                       idx, key);
            return false;
        }
        vals[k] = json_object_get_string(val);
    }
    for (int k = 0; k < 2; k++) {
        if (!vals[k]) {
            error_setg(errp, "Parameter 'bitmaps[%d].%s' is missing", idx, keys[k]);
            return false;
        }
    }
    *src_node = vals[0];
    *src_name = vals[1];
    return true;
}

void qmp_block_dirty_bitmap_merge(const char *node, const char *target,
                                  BlockDirtyBitmapOrStrList *bitmaps, Error **errp)
{
    const char *sn, *sname;
    int idx = 0;
    for (BlockDirtyBitmapOrStrList *l = bitmaps; l; l = l->next, idx++) {
        if (!merge_source_parse(l->value, idx, node, &sn, &sname, errp)) {
            return;
        }
    }
    BdrvDirtyBitmap *dst = lookup(node, target, NULL, errp);
    if (!dst || bdrv_dirty_bitmap_check(dst, BDRV_BITMAP_DEFAULT, errp) < 0) {
        return;
    }
    /* Every source is checked before any bit moves: an error leaves the target alone. */
    for (int pass = 0; pass < 2; pass++) {
        idx = 0;
        for (BlockDirtyBitmapOrStrList *l = bitmaps; l; l = l->next, idx++) {
            merge_source_parse(l->value, idx, node, &sn, &sname, NULL);
            BdrvDirtyBitmap *src = lookup(sn, sname, NULL, errp);
            if (!src || bdrv_dirty_bitmap_check(src, BDRV_BITMAP_INCONSISTENT, errp) < 0) {
                return;
            }
            if (pass == 0 && bdrv_dirty_bitmap_size(src) != bdrv_dirty_bitmap_size(dst)) {
                bdrv_dirty_bitmap_merge(dst, src, errp);    /* words the error */
                return;
            }
            if (pass == 1) {
                bdrv_dirty_bitmap_merge(dst, src, NULL);
            }
        }
    }
}

BlockDirtyBitmapSha256 *qmp_x_debug_block_dirty_bitmap_sha256(const char *node,
                                                               const char *name,
                                                               Error **errp)
{
    BdrvDirtyBitmap *bm = lookup(node, name, NULL, errp);
    if (!bm) {
        return NULL;
    }
    BlockDirtyBitmapSha256 *r = xzalloc(sizeof(*r));
    r->sha256 = xmalloc(65);
    bdrv_dirty_bitmap_sha256(bm, r->sha256);
    return r;
}

/* ---- query-block / query-named-block-nodes ---- */

/* The `dirty-bitmaps` member: newest first; NULL (member absent) when none. */
static BlockDirtyInfoList *node_dirty_bitmaps(BlockNode *n)
{
    BlockImage *img = block_node_image(n, NULL);
    BlockDirtyInfoList *head = NULL, **tail = &head;
    for (BdrvDirtyBitmap *bm = img ? bdrv_dirty_bitmap_first(img) : NULL; bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        BlockDirtyInfo *info = xzalloc(sizeof(*info));
        info->has_name = true;
        info->name = xstrdup(bdrv_dirty_bitmap_name(bm));
        info->count = (int64_t)bdrv_dirty_bitmap_count(bm);
        info->granularity = bdrv_dirty_bitmap_granularity(bm);
        info->recording = bdrv_dirty_bitmap_recording(bm);
        info->busy = bdrv_dirty_bitmap_busy(bm);
        info->persistent = bdrv_dirty_bitmap_persistent(bm);
        info->has_inconsistent = bdrv_dirty_bitmap_inconsistent(bm);
        info->inconsistent = info->has_inconsistent;
        BlockDirtyInfoList *el = xzalloc(sizeof(*el));
        el->value = info;
        *tail = el;
        tail = &el->next;
    }
    return head;
}

__attribute__((constructor)) static void dirty_bitmap_hook_init(void)
{
    block_node_dirty_bitmaps_hook = node_dirty_bitmaps;
}
