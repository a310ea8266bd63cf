/*
 * Live dirty bitmaps (see dirty-bitmap.h): one flat array of 64-bit words
 * per bitmap, bit n for the n-th granule of the disk, plus a running count
 * of set bits so queries need no scan.
 */
#include "block/dirty-bitmap.h"

#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>

#include "block/block-int.h"
#include "util/osdep.h"

struct BdrvDirtyBitmap {
    BdrvDirtyBitmap *next;      /* the image's list, newest first */
    char *name;
    uint8_t gran_bits;          /* log2 of the bytes one bit covers */
    uint64_t size;              /* disk bytes covered */
    uint64_t nbits;             /* granules: size / granularity rounded up */
    uint64_t *words;            /* nbits bits, LSB first; bits past nbits clear */
    uint64_t set;               /* bits set */
    bool disabled;              /* not recording writes */
    bool persistent;            /* stored in the image at close */
    bool busy;                  /* used by an export or job: QMP may not change it */
    bool inconsistent;          /* found in_use in the image: no valid bits */
    bool readonly;              /* on a read-only image */
};

static uint64_t words_for(uint64_t nbits)
{
    return (nbits + 63) / 64;
}

static uint64_t granules(uint64_t size, uint8_t gran_bits)
{
    return (size >> gran_bits) + ((size & ((1ull << gran_bits) - 1)) != 0);
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_find(BlockImage *img, const char *name)
{
    for (BdrvDirtyBitmap *bm = img->dirty_bitmaps; bm; bm = bm->next) {
        if (!strcmp(bm->name, name)) {
            return bm;
        }
    }
    return NULL;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_first(BlockImage *img) { return img->dirty_bitmaps; }
BdrvDirtyBitmap *bdrv_dirty_bitmap_next(const BdrvDirtyBitmap *bm) { return bm->next; }

BdrvDirtyBitmap *bdrv_dirty_bitmap_create(BlockImage *img, const char *name,
                                          uint32_t granularity, Error **errp)
{
    if (bdrv_dirty_bitmap_find(img, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return NULL;
    }
    if (strlen(name) > BDRV_BITMAP_MAX_NAME_SIZE) {
        error_setg(errp, "Bitmap name too long: %s", name);
        return NULL;
    }
    if (granularity < 512 || !is_power_of_2(granularity)) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return NULL;
    }
    BdrvDirtyBitmap *bm = xzalloc(sizeof(*bm));
    bm->name = xstrdup(name);
    bm->gran_bits = (uint8_t)__builtin_ctz(granularity);
    bm->size = img->size;
    bm->nbits = granules(img->size, bm->gran_bits);
    bm->words = xzalloc(words_for(bm->nbits) * 8 + 8);
    bm->next = img->dirty_bitmaps;
    img->dirty_bitmaps = bm;
    return bm;
}

static void free_bitmap(BdrvDirtyBitmap *bm)
{
    free(bm->name);
    free(bm->words);
    free(bm);
}

void bdrv_dirty_bitmap_release(BlockImage *img, BdrvDirtyBitmap *bm)
{
    for (BdrvDirtyBitmap **p = &img->dirty_bitmaps; *p; p = &(*p)->next) {
        if (*p == bm) {
            *p = bm->next;
            free_bitmap(bm);
            return;
        }
    }
}

void blk_dirty_bitmaps_free_all(BlockImage *img)
{
    while (img->dirty_bitmaps) {
        BdrvDirtyBitmap *bm = img->dirty_bitmaps;
        img->dirty_bitmaps = bm->next;
        free_bitmap(bm);
    }
}

uint32_t bdrv_dirty_bitmap_default_granularity(BlockImage *img)
{
    /* Formats with clusters: the cluster size, kept within 4 KiB..64 KiB. */
    const char *fmt = blk_format(img);
    if (!strcmp(fmt, "qcow2") || !strcmp(fmt, "parallels")) {
        return MIN(MAX(blk_cluster_size(img), 4096u), 65536u);
    }
    return 65536;
}

const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bm) { return bm->name; }
uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bm) { return 1u << bm->gran_bits; }
uint64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bm) { return bm->size; }
uint64_t bdrv_dirty_bitmap_count(const BdrvDirtyBitmap *bm) { return bm->set << bm->gran_bits; }
bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bm) { return !bm->disabled; }
bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bm) { return bm->busy; }
bool bdrv_dirty_bitmap_persistent(const BdrvDirtyBitmap *bm) { return bm->persistent; }
bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *bm) { return bm->inconsistent; }
bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *bm) { return bm->readonly; }

bool bdrv_dirty_bitmap_recording(const BdrvDirtyBitmap *bm)
{
    return !bm->disabled && !bm->inconsistent && !bm->readonly;
}

void bdrv_dirty_bitmap_set_enabled(BdrvDirtyBitmap *bm, bool enabled) { bm->disabled = !enabled; }
void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bm, bool busy) { bm->busy = busy; }
void bdrv_dirty_bitmap_set_persistent(BdrvDirtyBitmap *bm, bool p) { bm->persistent = p; }
void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *bm, bool ro) { bm->readonly = ro; }

void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *bm)
{
    bm->inconsistent = true;
    bm->disabled = true;
    bm->persistent = true;
}

int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bm, unsigned flags, Error **errp)
{
    if ((flags & BDRV_BITMAP_BUSY) && bm->busy) {
        error_setg(errp, "Bitmap '%s' is currently in use by another operation and "
                   "cannot be used", bm->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_RO) && bm->readonly) {
        error_setg(errp, "Bitmap '%s' is readonly and cannot be modified", bm->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_INCONSISTENT) && bm->inconsistent) {
        error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used", bm->name);
        return -1;
    }
    return 0;
}

/* ---- bits ---- */

bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bm, uint64_t offset)
{
    uint64_t b = offset >> bm->gran_bits;
    return b < bm->nbits && (bm->words[b / 64] >> (b % 64) & 1);
}

/* Set (or clear) bits [first, last]; keeps the count. */
static void change_bits(BdrvDirtyBitmap *bm, uint64_t first, uint64_t last, bool set)
{
    uint64_t w0 = first / 64, w1 = last / 64;
    for (uint64_t w = w0; w <= w1; w++) {
        uint64_t mask = ~0ull;
        if (w == w0) {
            mask &= ~0ull << (first % 64);
        }
        if (w == w1 && last % 64 != 63) {
            mask &= (1ull << (last % 64 + 1)) - 1;
        }
        uint64_t old = bm->words[w];
        if (set) {
            bm->set += (uint64_t)__builtin_popcountll(mask & ~old);
            bm->words[w] = old | mask;
        } else {
            bm->set -= (uint64_t)__builtin_popcountll(mask & old);
            bm->words[w] = old & ~mask;
        }
    }
}

static void change_range(BdrvDirtyBitmap *bm, uint64_t offset, uint64_t len, bool set)
{
    if (!len || !bm->nbits || offset >= bm->size) {
        return;
    }
    uint64_t end = offset + MIN(len, bm->size - offset);   /* exclusive, <= size */
    change_bits(bm, offset >> bm->gran_bits, (end - 1) >> bm->gran_bits, set);
}

void bdrv_dirty_bitmap_set_dirty(BdrvDirtyBitmap *bm, uint64_t offset, uint64_t len)
{
    change_range(bm, offset, len, true);
}

void bdrv_dirty_bitmap_reset_dirty(BdrvDirtyBitmap *bm, uint64_t offset, uint64_t len)
{
    change_range(bm, offset, len, false);
}

void bdrv_dirty_bitmap_clear(BdrvDirtyBitmap *bm)
{
    memset(bm->words, 0, words_for(bm->nbits) * 8);
    bm->set = 0;
}

int bdrv_dirty_bitmap_merge(BdrvDirtyBitmap *dst, const BdrvDirtyBitmap *src, Error **errp)
{
    if (dst->size != src->size) {
        error_setg(errp, "Bitmaps are of different sizes (destination size is %llu, "
                   "source size is %llu) and can't be merged",
                   (unsigned long long)dst->size, (unsigned long long)src->size);
        return -1;
    }
    if (dst == src) {
        return 0;
    }
    if (dst->gran_bits == src->gran_bits) {
        uint64_t n = words_for(dst->nbits), set = 0;
        for (uint64_t w = 0; w < n; w++) {
            dst->words[w] |= src->words[w];
            set += (uint64_t)__builtin_popcountll(dst->words[w]);
        }
        dst->set = set;
        return 0;
    }
    /* Different granularities: every dirty source granule dirties what it covers. */
    uint64_t off = 0, len;
    bool dirty;
    while (bdrv_dirty_bitmap_next_extent(src, off, UINT64_MAX, &dirty, &len)) {
        if (dirty) {
            bdrv_dirty_bitmap_set_dirty(dst, off, len);
        }
        off += len;
    }
    return 0;
}

/* Index of the first bit at or after @b whose value is @value; nbits when none. */
static uint64_t find_bit(const BdrvDirtyBitmap *bm, uint64_t b, bool value)
{
    while (b < bm->nbits) {
        uint64_t w = bm->words[b / 64];
        if (!value) {
            w = ~w;
        }
        w &= ~0ull << (b % 64);
        if (w) {
            return MIN(b / 64 * 64 + (uint64_t)__builtin_ctzll(w), bm->nbits);
        }
        b = b / 64 * 64 + 64;
    }
    return bm->nbits;
}

bool bdrv_dirty_bitmap_next_extent(const BdrvDirtyBitmap *bm, uint64_t offset,
                                   uint64_t max_len, bool *dirty, uint64_t *len)
{
    if (offset >= bm->size || max_len == 0) {
        return false;
    }
    uint64_t b = offset >> bm->gran_bits;
    *dirty = bm->words[b / 64] >> (b % 64) & 1;
    uint64_t stop = find_bit(bm, b + 1, !*dirty);
    uint64_t end = stop >= bm->nbits ? bm->size : stop << bm->gran_bits;
    *len = MIN(end - offset, max_len);
    return true;
}

void bdrv_dirty_bitmap_sha256(const BdrvDirtyBitmap *bm, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    uint64_t n = words_for(bm->nbits);
    uint8_t le[8];
    sha256_init(&ctx);
    for (uint64_t w = 0; w < n; w++) {
        st_le64(le, bm->words[w]);
        sha256_update(&ctx, sizeof(le), le);
    }
    sha256_digest(&ctx, sizeof(digest), digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        static const char digits[] = "0123456789abcdef";
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

uint64_t bdrv_dirty_bitmap_serialized_size(const BdrvDirtyBitmap *bm)
{
    return (bm->nbits + 7) / 8;
}

void bdrv_dirty_bitmap_export_bits(const BdrvDirtyBitmap *bm, uint8_t *out)
{
    uint64_t bytes = bdrv_dirty_bitmap_serialized_size(bm);
    for (uint64_t i = 0; i < bytes; i++) {
        out[i] = (uint8_t)(bm->words[i / 8] >> (8 * (i % 8)));
    }
}

void bdrv_dirty_bitmap_import_bits(BdrvDirtyBitmap *bm, const uint8_t *in)
{
    uint64_t bytes = bdrv_dirty_bitmap_serialized_size(bm);
    memset(bm->words, 0, words_for(bm->nbits) * 8);
    for (uint64_t i = 0; i < bytes; i++) {
        bm->words[i / 8] |= (uint64_t)in[i] << (8 * (i % 8));
    }
    if (bm->nbits % 64) {
        bm->words[bm->nbits / 64] &= (1ull << (bm->nbits % 64)) - 1;
    }
    bm->set = 0;
    for (uint64_t w = 0; w < words_for(bm->nbits); w++) {
        bm->set += (uint64_t)__builtin_popcountll(bm->words[w]);
    }
}

/* ---- the block layer's side ---- */

void blk_dirty_bitmaps_mark(BlockImage *img, uint64_t offset, uint64_t len)
{
    for (BdrvDirtyBitmap *bm = img->dirty_bitmaps; bm; bm = bm->next) {
        if (bdrv_dirty_bitmap_recording(bm)) {
            change_range(bm, offset, len, true);
        }
    }
}

void blk_dirty_bitmaps_truncate(BlockImage *img, uint64_t size)
{
    for (BdrvDirtyBitmap *bm = img->dirty_bitmaps; bm; bm = bm->next) {
        uint64_t nbits = granules(size, bm->gran_bits);
        uint64_t *words = xzalloc(words_for(nbits) * 8 + 8);
        memcpy(words, bm->words, MIN(words_for(nbits), words_for(bm->nbits)) * 8);
        if (nbits % 64) {
            words[nbits / 64] &= (1ull << (nbits % 64)) - 1;
        }
        free(bm->words);
        bm->words = words;
        bm->nbits = nbits;
        bm->size = size;
        bm->set = 0;
        for (uint64_t w = 0; w < words_for(nbits); w++) {
            bm->set += (uint64_t)__builtin_popcountll(words[w]);
        }
    }
}

int blk_dirty_bitmaps_load(BlockImage *img, Error **errp)
{
    if (img->bitmaps_live) {
        return 0;
    }
    img->bitmaps_live = true;
    return img->drv->bitmaps_load_live ? img->drv->bitmaps_load_live(img, errp) : 0;
}

int blk_dirty_bitmaps_store(BlockImage *img, Error **errp)
{
    if (!img->bitmaps_live || !img->drv->bitmaps_store_live || !(img->flags & BLK_O_RDWR)) {
        return 0;
    }
    blk_aio_quiesce(img);
    return img->drv->bitmaps_store_live(img, errp);
}

int blk_dirty_bitmap_can_store(BlockImage *img, const char *name, uint32_t granularity,
                               Error **errp)
{
    if (!img->drv->bitmap_can_store) {
        error_setg(errp, "Operation not supported");
        return -2;
    }
    if (!(img->flags & BLK_O_RDWR)) {
        error_setg(errp, "Operation not permitted");
        return -2;
    }
    return img->drv->bitmap_can_store(img, name, granularity, errp);
}

int blk_dirty_bitmap_remove_stored(BlockImage *img, const char *name, Error **errp)
{
    if (!img->drv->bitmap_remove || !(img->flags & BLK_O_RDWR) ||
        !img->drv->bitmap_is_stored || !img->drv->bitmap_is_stored(img, name)) {
        return 0;
    }
    blk_aio_quiesce(img);
    return img->drv->bitmap_remove(img, name, errp);
}
