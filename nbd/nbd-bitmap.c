/*
 * qemu:dirty-bitmap:NAME from the block layer's live dirty bitmaps: runs
 * of equal bits, read under the same lock as every other block call.
 */
#include <stdlib.h>

#include "block/dirty-bitmap.h"
#include "nbd/nbd.h"
#include "util/osdep.h"

static bool live_extent(void *opaque, uint64_t offset, uint64_t max, uint64_t *len,
                        bool *dirty)
{
    BdrvDirtyBitmap *bm = opaque;
    if (!bdrv_dirty_bitmap_next_extent(bm, offset, max, dirty, len)) {
        *dirty = false;         /* past the bitmap's end: nothing recorded there */
        *len = max;
    }
    return true;
}

static void live_release(void *opaque)
{
    bdrv_dirty_bitmap_set_busy(opaque, false);
}

bool nbd_bitmap_live(NbdBitmap *out, BlockImage *img, const char *name, bool writable,
                     Error **errp)
{
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_find(img, name);
    if (!bm) {
        error_setg(errp, "Bitmap '%s' is not found", name);
        return false;
    }
    if (bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_ALLOW_RO, errp) < 0) {
        return false;
    }
    if (!writable && blk_is_writable(img) && bdrv_dirty_bitmap_enabled(bm)) {
        error_setg(errp, "Enabled bitmap '%s' incompatible with readonly export", name);
        return false;
    }
    bdrv_dirty_bitmap_set_busy(bm, true);
    out->name = xstrdup(name);
    out->extent = live_extent;
    out->release = live_release;
    out->opaque = bm;
    return true;
}
