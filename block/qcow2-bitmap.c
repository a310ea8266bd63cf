/*
 * qcow2 persistent dirty bitmaps (the bitmaps header extension).
 *
 * On a read/write open every usable bitmap is loaded and marked in_use on
 * disk; enabled ("auto") bitmaps record the writes made through vireo; on
 * close the bits are stored to fresh clusters and in_use is cleared.  The
 * autoclear bit tells us whether software unaware of bitmaps touched the
 * image since: without it the extension is stale and ignored.
 */
#include "block/qcow2.h"

#include "block/dirty-bitmap.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

#define BITMAP_DIR_MAX (64u << 20)
#define BME_HEADER_LEN 24
#define BITMAP_TABLE_MAX (1u << 23)   /* entries of an in_use (unloaded) bitmap's table */

void qcow2_free_bitmaps(BDRVQcow2 *s)
{
    for (int i = 0; s->bitmaps && i < s->nb_bitmaps; i++) {
        free(s->bitmaps[i].name);
        free(s->bitmaps[i].extra);
        free(s->bitmaps[i].bits);
    }
    free(s->bitmaps);
    s->bitmaps = NULL;
    s->nb_bitmaps = 0;
}

/* Bits and bytes of a bitmap over a disk of @size bytes. */
static uint64_t nbits_for(uint64_t size, uint8_t gran_bits)
{
    uint64_t gran = 1ull << gran_bits;
    return size / gran + (size % gran != 0);
}

static uint64_t bytes_for(uint64_t size, uint8_t gran_bits)
{
    return (nbits_for(size, gran_bits) + 7) / 8;
}

static uint64_t bitmap_nbits(BlockImage *img, uint8_t gran_bits)
{
    return nbits_for(img->size, gran_bits);
}

static uint64_t bitmap_bytes(BlockImage *img, uint8_t gran_bits)
{
    return bytes_for(img->size, gran_bits);
}

static uint64_t table_entries_needed(BlockImage *img, uint8_t gran_bits)
{
    BDRVQcow2 *s = img->opaque;
    return (bitmap_bytes(img, gran_bits) + s->cluster_size - 1) >> s->cluster_bits;
}

static int parse_entry(BlockImage *img, const uint8_t *p, size_t avail, Qcow2Bitmap *bm,
                       size_t *used, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (avail < BME_HEADER_LEN) {
        error_setg(errp, "bitmap directory entry runs past the directory");
        return -1;
    }
    bm->table_offset = ld_be64(p);
    bm->table_size = ld_be32(p + 8);
    bm->flags = ld_be32(p + 12);
    bm->type = p[16];
    bm->granularity_bits = p[17];
    uint16_t name_len = ld_be16(p + 18);
    bm->extra_size = ld_be32(p + 20);
    size_t len = BME_HEADER_LEN + (size_t)bm->extra_size + name_len;
    if (bm->extra_size > BITMAP_DIR_MAX || len > avail) {
        error_setg(errp, "bitmap directory entry runs past the directory");
        return -1;
    }
    if (name_len == 0 || name_len > QCOW2_MAX_BITMAP_NAME) {
        error_setg(errp, "bitmap name length %u is invalid", name_len);
        return -1;
    }
    bm->extra = xmalloc(bm->extra_size + 1);
    memcpy(bm->extra, p + BME_HEADER_LEN, bm->extra_size);
    bm->name = strndup((const char *)p + BME_HEADER_LEN + bm->extra_size, name_len);
    if (bm->flags & BME_RESERVED_FLAGS) {
        error_setg(errp, "bitmap '%s' has reserved flags set (0x%x)", bm->name, bm->flags);
        return -1;
    }
    if (bm->type != BME_TYPE_DIRTY) {
        error_setg(errp, "bitmap '%s' has unknown type %u", bm->name, bm->type);
        return -1;
    }
    if (bm->granularity_bits > 31 || bm->granularity_bits < 9) {
        error_setg(errp, "bitmap '%s' granularity 2^%u is not supported", bm->name,
                   bm->granularity_bits);
        return -1;
    }
    if ((bm->table_offset & (s->cluster_size - 1)) ||
        !qcow2_offset_ok(img, bm->table_offset, (uint64_t)bm->table_size * 8)) {
        error_setg(errp, "bitmap '%s' table offset 0x%" PRIx64 " is invalid", bm->name,
                   bm->table_offset);
        return -1;
    }
    /*
     * A bitmap flagged in_use is never loaded: its table may still have the
     * size of an earlier disk size (a resize interrupted before the bitmaps
     * were stored), as qemu tolerates.  Only bound it.
     */
    if (bm->flags & BME_FLAG_IN_USE) {
        if (bm->table_size > BITMAP_TABLE_MAX) {
            error_setg(errp, "bitmap '%s' table has %u entries, too many", bm->name,
                       bm->table_size);
            return -1;
        }
    } else if (bm->table_size != table_entries_needed(img, bm->granularity_bits)) {
        error_setg(errp, "bitmap '%s' table has %u entries, the disk size needs %" PRIu64,
                   bm->name, bm->table_size, table_entries_needed(img, bm->granularity_bits));
        return -1;
    }
    *used = ROUND_UP(len, 8);
    return 0;
}

int qcow2_read_bitmaps(BlockImage *img, const uint8_t *ext, uint32_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (len < 24) {
        error_setg(errp, "bitmaps extension is too short (%u bytes)", len);
        return -1;
    }
    uint32_t nb = ld_be32(ext);
    s->bitmap_dir_size = ld_be64(ext + 8);
    s->bitmap_dir_offset = ld_be64(ext + 16);
    if (!(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        /* Written by software that does not know bitmaps: the data is stale. */
        return 0;
    }
    if (nb == 0 || nb > QCOW2_MAX_BITMAPS || ld_be32(ext + 4) != 0) {
        error_setg(errp, "bitmaps extension: %u bitmaps or reserved field is invalid", nb);
        return -1;
    }
    if (s->bitmap_dir_size > BITMAP_DIR_MAX ||
        (s->bitmap_dir_offset & (s->cluster_size - 1)) ||
        !qcow2_offset_ok(img, s->bitmap_dir_offset, s->bitmap_dir_size)) {
        error_setg(errp, "bitmap directory (%" PRIu64 " bytes at 0x%" PRIx64 ") is invalid",
                   s->bitmap_dir_size, s->bitmap_dir_offset);
        return -1;
    }
    uint8_t *dir = xmalloc(s->bitmap_dir_size + 1);
    if (bfile_pread(&img->file, s->bitmap_dir_offset, dir, s->bitmap_dir_size, errp) < 0) {
        free(dir);
        return -1;
    }
    s->bitmaps = xzalloc(sizeof(Qcow2Bitmap) * nb);
    size_t pos = 0;
    int ret = 0;
    for (uint32_t i = 0; i < nb && ret == 0; i++) {
        size_t used;
        Qcow2Bitmap *bm = &s->bitmaps[i];
        s->nb_bitmaps++;
        ret = parse_entry(img, dir + pos, s->bitmap_dir_size - pos, bm, &used, errp);
        for (uint32_t j = 0; ret == 0 && j < i; j++) {
            if (strcmp(s->bitmaps[j].name, bm->name) == 0) {
                error_setg(errp, "bitmap name '%s' appears twice", bm->name);
                ret = -1;
            }
        }
        pos += ret == 0 ? used : 0;
    }
    free(dir);
    s->bitmaps_ext = ret == 0;
    return ret;
}

/* ---- bitmap data ---- */

static bool usable(const Qcow2Bitmap *bm)
{
    return !(bm->flags & BME_FLAG_IN_USE) &&
           (bm->extra_size == 0 || (bm->flags & BME_FLAG_EXTRA_COMPAT));
}

static int load_bits(BlockImage *img, Qcow2Bitmap *bm, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (bm->bits) {
        return 0;
    }
    uint64_t bytes = bitmap_bytes(img, bm->granularity_bits);
    uint64_t *table = xmalloc((size_t)bm->table_size * 8 + 1);
    uint8_t *bits = xzalloc((size_t)bm->table_size << s->cluster_bits);
    int ret = bfile_pread(&img->file, bm->table_offset, table, (size_t)bm->table_size * 8,
                          errp);
    for (uint32_t i = 0; ret == 0 && i < bm->table_size; i++) {
        uint64_t e = ld_be64(&table[i]);
        uint64_t off = e & QCOW2_OFFSET_MASK;
        uint8_t *dst = bits + ((size_t)i << s->cluster_bits);
        if ((e & BME_TABLE_RESERVED) || (off && (e & 1)) ||
            (off & (s->cluster_size - 1))) {
            error_setg(errp, "bitmap '%s' table entry %u (0x%" PRIx64 ") is invalid",
                       bm->name, i, e);
            ret = -1;
        } else if (off) {
            ret = bfile_pread(&img->file, off, dst, s->cluster_size, errp);
        } else if (e & 1) {
            memset(dst, 0xff, s->cluster_size);
        }
    }
    free(table);
    if (ret < 0) {
        free(bits);
        return -1;
    }
    /* Bits past the end of the disk must read as clear whatever the file holds. */
    uint64_t nbits = bitmap_nbits(img, bm->granularity_bits);
    for (uint64_t b = nbits; b < bytes * 8; b++) {
        bits[b / 8] &= (uint8_t)~(1u << (b % 8));
    }
    bm->bits = bits;
    bm->nbits = nbits;
    return 0;
}

/* Free the bitmap's table and data clusters (it is being rewritten or removed). */
static int free_stored(BlockImage *img, Qcow2Bitmap *bm, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (!bm->table_offset) {
        return 0;
    }
    uint64_t *table = xmalloc((size_t)bm->table_size * 8 + 1);
    int ret = bfile_pread(&img->file, bm->table_offset, table, (size_t)bm->table_size * 8,
                          errp);
    for (uint32_t i = 0; ret == 0 && i < bm->table_size; i++) {
        uint64_t off = ld_be64(&table[i]) & QCOW2_OFFSET_MASK;
        if (off) {
            ret = qcow2_free_clusters(img, off, s->cluster_size, errp);
        }
    }
    free(table);
    if (ret == 0 && bm->table_size) {
        ret = qcow2_free_clusters(img, bm->table_offset, (uint64_t)bm->table_size * 8, errp);
    }
    bm->table_offset = 0;
    return ret;
}

/*
 * Write the bits to new clusters; an all-zero cluster takes no space.  The
 * table is written as long as it is, not padded to its cluster: the layout
 * (and so the file's length when the table is last) is qemu-img's.
 */
static int store_bits(BlockImage *img, Qcow2Bitmap *bm, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint32_t n = (uint32_t)table_entries_needed(img, bm->granularity_bits);
    uint64_t table_bytes = ROUND_UP(MAX((uint64_t)n * 8, 8u), s->cluster_size);
    uint64_t *table = blk_alloc_aligned(table_bytes);
    uint8_t *chunk = blk_alloc_aligned(s->cluster_size);
    uint64_t bytes = bitmap_bytes(img, bm->granularity_bits);
    int ret = 0;
    for (uint32_t i = 0; ret == 0 && i < n; i++) {
        uint64_t start = (uint64_t)i << s->cluster_bits;
        size_t len = (size_t)MIN((uint64_t)s->cluster_size, bytes - start);
        memset(chunk, 0, s->cluster_size);
        memcpy(chunk, bm->bits + start, len);
        uint64_t e = 0;
        if (buffer_is_zero(chunk, s->cluster_size)) {
            e = 0;
        } else {
            int64_t off = qcow2_alloc_clusters(img, 1, errp);
            ret = off < 0 ? -1 : qcow2_pwrite_checked(img, 0, (uint64_t)off, chunk,
                                                      s->cluster_size, errp);
            e = off < 0 ? 0 : (uint64_t)off;
        }
        st_be64(&table[i], e);
    }
    int64_t toff = ret < 0 ? -1 : qcow2_alloc_clusters(img, table_bytes >> s->cluster_bits,
                                                        errp);
    if (toff >= 0) {
        ret = qcow2_pwrite_checked(img, QCOW2_OL_BITMAP_TABLE, (uint64_t)toff, table,
                                   (uint64_t)n * 8, errp);
        bm->table_offset = (uint64_t)toff;
        bm->table_size = n;
    } else {
        ret = -1;
    }
    free(table);
    free(chunk);
    return ret;
}

static size_t dir_entry_len(const Qcow2Bitmap *bm)
{
    return ROUND_UP(BME_HEADER_LEN + (size_t)bm->extra_size + strlen(bm->name), 8);
}

/* Write a new directory and point the header at it; free the old one. */
static int write_directory(BlockImage *img, bool in_place, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t size = 0;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        size += dir_entry_len(&s->bitmaps[i]);
    }
    size_t padded = ROUND_UP(MAX(size, (size_t)1), s->cluster_size);
    uint8_t *dir = blk_alloc_aligned(padded);
    size_t pos = 0;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        size_t name_len = strlen(bm->name);
        st_be64(dir + pos, bm->table_offset);
        st_be32(dir + pos + 8, bm->table_size);
        st_be32(dir + pos + 12, bm->flags);
        dir[pos + 16] = bm->type;
        dir[pos + 17] = bm->granularity_bits;
        st_be16(dir + pos + 18, (uint16_t)name_len);
        st_be32(dir + pos + 20, bm->extra_size);
        memcpy(dir + pos + BME_HEADER_LEN, bm->extra, bm->extra_size);
        memcpy(dir + pos + BME_HEADER_LEN + bm->extra_size, bm->name, name_len);
        pos += dir_entry_len(bm);
    }
    int ret;
    if (in_place) {
        ret = qcow2_pwrite_checked(img, QCOW2_OL_BITMAP_DIRECTORY, s->bitmap_dir_offset, dir,
                                   size, errp);
        free(dir);
        return ret;
    }
    uint64_t old_off = s->bitmap_dir_offset, old_size = s->bitmaps_ext ? s->bitmap_dir_size : 0;
    int64_t off = 0;
    ret = 0;
    if (s->nb_bitmaps) {
        off = qcow2_alloc_clusters(img, padded >> s->cluster_bits, errp);
        /* Only the directory's bytes: the file may end inside its cluster, as qemu-img's does. */
        ret = off < 0 ? -1 : qcow2_pwrite_checked(img, QCOW2_OL_BITMAP_DIRECTORY, (uint64_t)off,
                                                  dir, size, errp);
    }
    free(dir);
    if (ret < 0 || qcow2_flush_metadata(img, true, errp) < 0) {
        return -1;
    }
    s->bitmap_dir_offset = (uint64_t)off;
    s->bitmap_dir_size = size;
    s->bitmaps_ext = s->nb_bitmaps > 0;
    if (qcow2_write_header(img, errp) < 0 || bfile_flush(&img->file, errp) < 0) {
        return -1;
    }
    return old_size ? qcow2_free_clusters(img, old_off, old_size, errp) : 0;
}

int qcow2_bitmaps_open_rw(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (!s->bitmaps_ext || !s->nb_bitmaps) {
        if (s->bitmap_dir_offset && !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
            /* Drop the stale extension from the header. */
            s->header_dirty = true;
        }
        return 0;
    }
    bool any = false;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        if (!usable(bm)) {
            continue;
        }
        if (load_bits(img, bm, errp) < 0) {
            return -1;
        }
        bm->flags |= BME_FLAG_IN_USE;
        any = true;
    }
    if (!any) {
        return 0;
    }
    s->bitmaps_in_use_marked = true;
    if (write_directory(img, true, errp) < 0 || bfile_flush(&img->file, errp) < 0) {
        return -1;
    }
    return 0;
}

int qcow2_store_bitmaps(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    bool changed = s->bitmaps_in_use_marked;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        changed |= s->bitmaps[i].modified;
    }
    if (!changed) {
        return 0;
    }
    /*
     * New data first; the old tables stay valid until the new directory is
     * in place.  Every bitmap in use is rewritten, changed or not, in
     * directory order, and the old clusters are freed after the directory:
     * the clusters end up where qemu-img 7.2 puts them.
     */
    Qcow2Bitmap *old = xzalloc(sizeof(*old) * (size_t)(s->nb_bitmaps + 1));
    int nb_old = 0, ret = 0;
    for (int i = 0; ret == 0 && i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        if (!bm->bits) {
            continue;
        }
        old[nb_old].table_offset = bm->table_offset;
        old[nb_old++].table_size = bm->table_size;
        ret = store_bits(img, bm, errp);
        bm->modified = false;
    }
    for (int i = 0; i < s->nb_bitmaps; i++) {
        if (s->bitmaps[i].bits) {
            s->bitmaps[i].flags &= ~BME_FLAG_IN_USE;
        }
    }
    if (ret == 0) {
        s->bitmaps_in_use_marked = false;
        ret = write_directory(img, false, errp);
    }
    for (int i = 0; ret == 0 && i < nb_old; i++) {
        ret = free_stored(img, &old[i], errp);
    }
    free(old);
    return ret;
}

void qcow2_bitmaps_mark_write(BlockImage *img, uint64_t off, uint64_t len)
{
    BDRVQcow2 *s = img->opaque;
    if (!len || s->bitmaps_quiet || img->bitmaps_live) {
        return;
    }
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        if (!bm->bits || !(bm->flags & BME_FLAG_AUTO)) {
            continue;
        }
        uint64_t first = off >> bm->granularity_bits;
        uint64_t last = MIN((off + len - 1) >> bm->granularity_bits, bm->nbits - 1);
        for (uint64_t b = first; b <= last; b++) {
            bm->bits[b / 8] |= (uint8_t)(1u << (b % 8));
        }
        bm->modified = true;
    }
}

/* ---- resize ---- */

/*
 * Before the disk changes size: every bitmap must be loadable (qemu refuses
 * to resize an image with an inconsistent bitmap, and so do we), its bits
 * must be in memory, and it must be flagged in_use on disk so that a crash
 * between the new header and the new bitmap tables leaves bitmaps known to
 * be stale rather than tables that no longer fit the disk.  Changes nothing
 * when it fails on a bitmap.
 */
int qcow2_bitmaps_resize_prepare(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        if (bm->bits) {
            continue;
        }
        if (bm->flags & BME_FLAG_IN_USE) {
            error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used", bm->name);
            return -1;
        }
        if (!usable(bm)) {
            error_setg(errp, "Bitmap '%s' has extra data that is not understood; "
                       "cannot resize", bm->name);
            return -1;
        }
    }
    bool mark = false;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        if (load_bits(img, bm, errp) < 0) {
            return -1;
        }
        if (!(bm->flags & BME_FLAG_IN_USE)) {
            bm->flags |= BME_FLAG_IN_USE;
            mark = true;
        }
    }
    if (!mark) {
        return 0;
    }
    s->bitmaps_in_use_marked = true;
    if (write_directory(img, true, errp) < 0 || bfile_flush(&img->file, errp) < 0) {
        return -1;
    }
    return 0;
}

/*
 * The disk now has @new_size bytes (img->size is still the old size): cut or
 * extend every bitmap.  Bits past a smaller end are dropped; a larger disk's
 * new area starts clean.  The new tables are written when the bitmaps are
 * stored (on close), which also frees the old ones.
 */
void qcow2_bitmaps_resize(BlockImage *img, uint64_t new_size)
{
    BDRVQcow2 *s = img->opaque;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        uint64_t old_bytes = bitmap_bytes(img, bm->granularity_bits);
        uint64_t new_bytes = bytes_for(new_size, bm->granularity_bits);
        uint64_t nbits = nbits_for(new_size, bm->granularity_bits);
        /* Whole clusters, as store_bits() reads them (plus one byte for size 0). */
        uint8_t *bits = xzalloc(ROUND_UP(new_bytes + 1, s->cluster_size));
        memcpy(bits, bm->bits, MIN(old_bytes, new_bytes));
        if (nbits % 8) {
            bits[nbits / 8] &= (uint8_t)((1u << (nbits % 8)) - 1);
        }
        free(bm->bits);
        bm->bits = bits;
        bm->nbits = nbits;
        bm->modified = true;
    }
}

/* ---- management ---- */

static Qcow2Bitmap *find_bitmap(BDRVQcow2 *s, const char *name)
{
    for (int i = 0; i < s->nb_bitmaps; i++) {
        if (strcmp(s->bitmaps[i].name, name) == 0) {
            return &s->bitmaps[i];
        }
    }
    return NULL;
}

static Qcow2Bitmap *find_usable(BlockImage *img, const char *name, Error **errp)
{
    Qcow2Bitmap *bm = find_bitmap(img->opaque, name);
    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    if (!bm->bits && (!usable(bm) || load_bits(img, bm, errp) < 0)) {
        if (!usable(bm)) {
            error_setg(errp, "Bitmap '%s' is inconsistent (in use) and cannot be used",
                       name);
        }
        return NULL;
    }
    return bm;
}

int qcow2_bitmap_add(BlockImage *img, const char *name, uint32_t granularity,
                     bool disabled, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (s->version < 3) {
        error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
        return -1;
    }
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > QCOW2_MAX_BITMAP_NAME) {
        error_setg(errp, "Bitmap name must be 1 to %d bytes long", QCOW2_MAX_BITMAP_NAME);
        return -1;
    }
    if (find_bitmap(s, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return -1;
    }
    if (!granularity) {
        /* qemu-img's default: the cluster size, kept within 4 KiB .. 64 KiB. */
        granularity = MIN(MAX(s->cluster_size, 4096u), 65536u);
    }
    if (!is_power_of_2(granularity) || granularity < 512 || granularity > (1u << 31)) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return -1;
    }
    if (s->nb_bitmaps >= QCOW2_MAX_BITMAPS) {
        error_setg(errp, "too many bitmaps");
        return -1;
    }
    s->bitmaps = xrealloc(s->bitmaps, sizeof(Qcow2Bitmap) * (size_t)(s->nb_bitmaps + 1));
    Qcow2Bitmap *bm = &s->bitmaps[s->nb_bitmaps++];
    uint8_t gbits = (uint8_t)__builtin_ctz(granularity);
    *bm = (Qcow2Bitmap) {
        .name = xstrdup(name), .type = BME_TYPE_DIRTY, .granularity_bits = gbits,
        .flags = (disabled ? 0 : BME_FLAG_AUTO) | BME_FLAG_IN_USE,
        .extra = xzalloc(1), .modified = true,
        .nbits = bitmap_nbits(img, gbits),
    };
    bm->bits = xzalloc(ROUND_UP(bitmap_bytes(img, gbits) + 1, s->cluster_size));
    s->bitmaps_in_use_marked = true;
    return 0;
}

int qcow2_bitmap_remove(BlockImage *img, const char *name, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    Qcow2Bitmap *bm = find_bitmap(s, name);
    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return -1;
    }
    Qcow2Bitmap gone = *bm;
    int idx = (int)(bm - s->bitmaps);
    memmove(bm, bm + 1, sizeof(*bm) * (size_t)(s->nb_bitmaps - idx - 1));
    s->nb_bitmaps--;
    int ret = write_directory(img, false, errp);
    if (ret == 0) {
        ret = free_stored(img, &gone, errp);
    }
    free(gone.name);
    free(gone.extra);
    free(gone.bits);
    return ret;
}

int qcow2_bitmap_clear(BlockImage *img, const char *name, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    Qcow2Bitmap *bm = find_usable(img, name, errp);
    if (!bm) {
        return -1;
    }
    memset(bm->bits, 0, bitmap_bytes(img, bm->granularity_bits));
    bm->modified = true;
    (void)s;
    return 0;
}

int qcow2_bitmap_enable(BlockImage *img, const char *name, bool enable, Error **errp)
{
    Qcow2Bitmap *bm = find_usable(img, name, errp);
    if (!bm) {
        return -1;
    }
    bm->flags = enable ? bm->flags | BME_FLAG_AUTO : bm->flags & ~BME_FLAG_AUTO;
    bm->modified = true;
    return 0;
}

int qcow2_bitmap_or(BlockImage *img, const char *dst, const uint8_t *bits,
                    uint64_t nbits, uint32_t granularity, Error **errp)
{
    Qcow2Bitmap *bm = find_usable(img, dst, errp);
    if (!bm) {
        return -1;
    }
    /* Each set source bit covers [b*granularity, (b+1)*granularity) of the disk. */
    for (uint64_t b = 0; b < nbits; b++) {
        if (!(bits[b / 8] & (1u << (b % 8)))) {
            continue;
        }
        uint64_t start = b * granularity;
        if (start >= img->size) {
            break;
        }
        uint64_t end = MIN(start + granularity, img->size) - 1;
        for (uint64_t d = start >> bm->granularity_bits; d <= end >> bm->granularity_bits;
             d++) {
            bm->bits[d / 8] |= (uint8_t)(1u << (d % 8));
        }
    }
    bm->modified = true;
    return 0;
}

int qcow2_bitmap_get(BlockImage *img, const char *name, uint8_t **bits,
                     uint64_t *nbits, uint32_t *granularity, Error **errp)
{
    Qcow2Bitmap *bm = find_usable(img, name, errp);
    if (!bm) {
        return -1;
    }
    size_t bytes = (size_t)bitmap_bytes(img, bm->granularity_bits);
    *bits = xmalloc(bytes + 1);
    memcpy(*bits, bm->bits, bytes);
    *nbits = bm->nbits;
    *granularity = 1u << bm->granularity_bits;
    return 0;
}

int qcow2_bitmaps_for_each_ref(BlockImage *img, Qcow2RefFn *fn, void *opaque)
{
    BDRVQcow2 *s = img->opaque;
    if (!s->bitmaps_ext) {
        return 0;
    }
    fn(opaque, s->bitmap_dir_offset, s->bitmap_dir_size);
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        if (!bm->table_offset) {
            continue;
        }
        fn(opaque, bm->table_offset, (uint64_t)bm->table_size * 8);
        uint64_t *table = xmalloc((size_t)bm->table_size * 8 + 1);
        if (bfile_pread(&img->file, bm->table_offset, table, (size_t)bm->table_size * 8,
                        NULL) == 0) {
            for (uint32_t j = 0; j < bm->table_size; j++) {
                uint64_t off = ld_be64(&table[j]) & QCOW2_OFFSET_MASK;
                if (off) {
                    fn(opaque, off, s->cluster_size);
                }
            }
        }
        free(table);
    }
    return 0;
}

/* ---- live bitmaps (block/dirty-bitmap.h) ---- */

/*
 * A running VMM takes the stored bitmaps over: those loaded at open become
 * persistent live bitmaps with their bits and enabled state, those found
 * in_use become inconsistent ones.  From now on the live bitmaps record the
 * writes; qcow2_bitmaps_mark_write() stays quiet.
 */
int qcow2_bitmaps_load_live(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    bool rw = img->flags & BLK_O_RDWR;
    /* QEMU lists the newest first: creating in directory order gives that. */
    for (int i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = &s->bitmaps[i];
        bool stale = !bm->bits && (bm->flags & BME_FLAG_IN_USE);
        if (!stale && !bm->bits && (!usable(bm) || load_bits(img, bm, errp) < 0)) {
            if (!usable(bm)) {
                continue;       /* extra data we cannot interpret: left alone */
            }
            return -1;
        }
        BdrvDirtyBitmap *live = bdrv_dirty_bitmap_create(img, bm->name,
                                                         1u << bm->granularity_bits, errp);
        if (!live) {
            return -1;
        }
        bdrv_dirty_bitmap_set_persistent(live, true);
        if (stale) {
            bdrv_dirty_bitmap_set_inconsistent(live);
            continue;
        }
        bdrv_dirty_bitmap_import_bits(live, bm->bits);
        bdrv_dirty_bitmap_set_enabled(live, bm->flags & BME_FLAG_AUTO);
        bdrv_dirty_bitmap_set_readonly(live, !rw);
    }
    return 0;
}

/* Before close: copy every consistent persistent live bitmap into the directory. */
int qcow2_bitmaps_store_live(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    for (BdrvDirtyBitmap *live = bdrv_dirty_bitmap_first(img); live;
         live = bdrv_dirty_bitmap_next(live)) {
        if (!bdrv_dirty_bitmap_persistent(live) || bdrv_dirty_bitmap_inconsistent(live)) {
            continue;
        }
        const char *name = bdrv_dirty_bitmap_name(live);
        Qcow2Bitmap *bm = find_bitmap(s, name);
        uint8_t gbits = (uint8_t)__builtin_ctz(bdrv_dirty_bitmap_granularity(live));
        if (bm && bm->granularity_bits != gbits) {
            error_setg(errp, "bitmap '%s' is stored with another granularity", name);
            return -1;
        }
        if (!bm) {
            if (qcow2_bitmap_add(img, name, bdrv_dirty_bitmap_granularity(live),
                                 !bdrv_dirty_bitmap_enabled(live), errp) < 0) {
                return -1;
            }
            bm = find_bitmap(s, name);
        }
        free(bm->bits);
        bm->bits = xzalloc(ROUND_UP(bitmap_bytes(img, gbits) + 1, s->cluster_size));
        bm->nbits = bitmap_nbits(img, gbits);
        bdrv_dirty_bitmap_export_bits(live, bm->bits);
        bm->flags = bdrv_dirty_bitmap_enabled(live) ? bm->flags | BME_FLAG_AUTO
                                                    : bm->flags & ~BME_FLAG_AUTO;
        bm->modified = true;
    }
    return 0;
}

/* QEMU's checks before a bitmap is made persistent (it is written at close). */
int qcow2_bitmap_can_store(BlockImage *img, const char *name, uint32_t granularity,
                           Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (s->version < 3) {
        error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
        return -1;
    }
    if (s->nb_bitmaps >= QCOW2_MAX_BITMAPS) {
        error_setg(errp, "Maximum number of persistent bitmaps is already reached");
        return -1;
    }
    if (strlen(name) > QCOW2_MAX_BITMAP_NAME) {
        error_setg(errp, "Bitmap name is too long");
        return -1;
    }
    (void)granularity;      /* 512 .. 2^31, already checked */
    return 0;
}

bool qcow2_bitmap_is_stored(BlockImage *img, const char *name)
{
    return find_bitmap(img->opaque, name) != NULL;
}
