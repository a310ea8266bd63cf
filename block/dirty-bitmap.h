/*
 * Live dirty bitmaps: in-memory bitmaps attached to an open image that
 * record which parts of the guest disk were written.
 *
 * Every write, write-zeroes and discard that goes through the block layer
 * (blk_pwrite, blk_write_zeroes, blk_discard, blk_pwrite_compressed and
 * blk_aio_pwritev: virtio-blk, the storage daemon and NBD exports all use
 * them) sets the bits of every enabled bitmap of that image.  One bit
 * covers `granularity` bytes; a bitmap's size is the disk size.
 *
 * Persistent bitmaps live in the image (qcow2's bitmaps extension):
 * blk_dirty_bitmaps_load() adopts the stored ones when a running VMM opens
 * the image (the format marks them in_use on disk), and
 * blk_dirty_bitmaps_store() hands them back before blk_close() writes them
 * with in_use cleared.  A bitmap found in_use at open was not stored by a
 * clean shutdown: it is listed as `inconsistent`, holds no bits, and can
 * only be removed.  vireo-img does not call load(): it edits the stored
 * bitmaps through blk_bitmap_*() in block.h instead.
 *
 * For users such as an NBD export (qemu:dirty-bitmap:NAME):
 *   bdrv_dirty_bitmap_find(img, name)       by name, NULL when none
 *   bdrv_dirty_bitmap_next_extent(bm, off, max, &dirty, &len)
 *                                            runs of equal bits
 *   bdrv_dirty_bitmap_set_busy(bm, true)    while exported: QMP then
 *                                            refuses to change it
 * All calls run under the big lock (main loop, monitors, device emulation).
 */
#ifndef VIREO_BLOCK_DIRTY_BITMAP_H
#define VIREO_BLOCK_DIRTY_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "util/error.h"

typedef struct BdrvDirtyBitmap BdrvDirtyBitmap;

#define BDRV_BITMAP_MAX_NAME_SIZE 1023

/* What an operation needs of a bitmap (bdrv_dirty_bitmap_check). */
enum {
    BDRV_BITMAP_BUSY = 1u << 0,          /* refuse a busy bitmap */
    BDRV_BITMAP_RO = 1u << 1,            /* refuse a read-only bitmap */
    BDRV_BITMAP_INCONSISTENT = 1u << 2,  /* refuse an inconsistent bitmap */
    BDRV_BITMAP_DEFAULT = BDRV_BITMAP_BUSY | BDRV_BITMAP_RO | BDRV_BITMAP_INCONSISTENT,
    BDRV_BITMAP_ALLOW_RO = BDRV_BITMAP_BUSY | BDRV_BITMAP_INCONSISTENT,
};

/* ---- Finding and listing ---- */

BdrvDirtyBitmap *bdrv_dirty_bitmap_find(BlockImage *img, const char *name);
/* Newest first, as QEMU lists them. */
BdrvDirtyBitmap *bdrv_dirty_bitmap_first(BlockImage *img);
BdrvDirtyBitmap *bdrv_dirty_bitmap_next(const BdrvDirtyBitmap *bm);

/* ---- Creating and dropping ---- */

/*
 * A new, enabled, empty, non-persistent bitmap over the whole disk.
 * Errors as QEMU's: "Bitmap already exists: NAME", "Bitmap name too long".
 */
BdrvDirtyBitmap *bdrv_dirty_bitmap_create(BlockImage *img, const char *name,
                                          uint32_t granularity, Error **errp);
void bdrv_dirty_bitmap_release(BlockImage *img, BdrvDirtyBitmap *bm);
/* The granularity QEMU picks when none is given (cluster size in 4k..64k). */
uint32_t bdrv_dirty_bitmap_default_granularity(BlockImage *img);

/* ---- State ---- */

const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bm);
uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bm);
uint64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bm);     /* disk bytes */
/* Bytes covered by set bits (set bits times granularity), as QEMU counts. */
uint64_t bdrv_dirty_bitmap_count(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bm);
/* Recording: enabled and neither inconsistent nor read-only. */
bool bdrv_dirty_bitmap_recording(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_persistent(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *bm);
bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *bm);
void bdrv_dirty_bitmap_set_enabled(BdrvDirtyBitmap *bm, bool enabled);
void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bm, bool busy);
void bdrv_dirty_bitmap_set_persistent(BdrvDirtyBitmap *bm, bool persistent);
/* Loaded from an image where it was in_use: no bits, disabled, removable only. */
void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *bm);
void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *bm, bool readonly);
/*
 * 0 when the bitmap allows an operation needing @flags, else -1 with
 * QEMU's message ("Bitmap 'X' is currently in use by another operation
 * and cannot be used", "... is readonly and cannot be modified", "... is
 * inconsistent and cannot be used").
 */
int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bm, unsigned flags, Error **errp);

/* ---- Bits ---- */

bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bm, uint64_t offset);
/* Set or clear the bits covering the bytes [offset, offset + len). */
void bdrv_dirty_bitmap_set_dirty(BdrvDirtyBitmap *bm, uint64_t offset, uint64_t len);
void bdrv_dirty_bitmap_reset_dirty(BdrvDirtyBitmap *bm, uint64_t offset, uint64_t len);
void bdrv_dirty_bitmap_clear(BdrvDirtyBitmap *bm);
/* dst |= src; both must cover the same disk size (QEMU's message otherwise). */
int bdrv_dirty_bitmap_merge(BdrvDirtyBitmap *dst, const BdrvDirtyBitmap *src,
                            Error **errp);
/*
 * From byte @offset (below the size), the run of bytes whose bits all equal
 * the one at @offset, at most @max_len long and never past the disk end:
 * *dirty says which, *len how long (> 0).  False when @offset is at or past
 * the end.
 */
bool bdrv_dirty_bitmap_next_extent(const BdrvDirtyBitmap *bm, uint64_t offset,
                                   uint64_t max_len, bool *dirty, uint64_t *len);
/*
 * The bits as QEMU serialises them for x-debug-block-dirty-bitmap-sha256:
 * bit n covers bytes [n * granularity, (n + 1) * granularity), least
 * significant bit first, whole 64-bit words.  Lowercase hex, 65 bytes.
 */
void bdrv_dirty_bitmap_sha256(const BdrvDirtyBitmap *bm, char hex[65]);
/*
 * Copy out / in as the qcow2 format stores them (LSB first, byte per 8
 * bits).  @bytes is (nbits + 7) / 8; import ignores bits past the end.
 */
uint64_t bdrv_dirty_bitmap_serialized_size(const BdrvDirtyBitmap *bm);
void bdrv_dirty_bitmap_export_bits(const BdrvDirtyBitmap *bm, uint8_t *out);
void bdrv_dirty_bitmap_import_bits(BdrvDirtyBitmap *bm, const uint8_t *in);

/* ---- The block layer's side ---- */

/* A write, write-zeroes or discard of [offset, offset + len) on @img. */
void blk_dirty_bitmaps_mark(BlockImage *img, uint64_t offset, uint64_t len);
/* The disk now has @size bytes: cut or extend every bitmap (new area clean). */
void blk_dirty_bitmaps_truncate(BlockImage *img, uint64_t size);
/* Drop every bitmap (the image closes). */
void blk_dirty_bitmaps_free_all(BlockImage *img);
/*
 * Live mode, for a running VMM: adopt the image's stored bitmaps as
 * persistent live bitmaps (in_use ones as inconsistent) and let the live
 * bitmaps, not the format, record writes from now on.  Formats without
 * persistent bitmaps have nothing to load.
 */
int blk_dirty_bitmaps_load(BlockImage *img, Error **errp);
/* Hand the persistent live bitmaps to the format; blk_close() writes them. */
int blk_dirty_bitmaps_store(BlockImage *img, Error **errp);
/*
 * May a new persistent bitmap @name be stored in @img?  Else -1 with the
 * reason (the caller adds QEMU's "Can't make bitmap ... persistent" or
 * "Can't store persistent bitmaps to ..." prefix: the return says which,
 * -2 when the format cannot store bitmaps at all).
 */
int blk_dirty_bitmap_can_store(BlockImage *img, const char *name, uint32_t granularity,
                               Error **errp);
/* Drop the stored copy of persistent bitmap @name (absent: nothing to do). */
int blk_dirty_bitmap_remove_stored(BlockImage *img, const char *name, Error **errp);

#endif
