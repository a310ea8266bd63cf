/*
 * qcow2 metadata overlap checks.
 *
 * A hostile or damaged image can make a refcount block claim that a cluster
 * holding metadata is free, or make an L2 entry point into a table.  Writing
 * there would silently destroy the image, so before any write to the image
 * file the target range is compared with every kind of metadata vireo keeps
 * in memory.  An overlap marks the image corrupt and fails the request
 * (EIO for the guest) before a byte reaches the file.
 *
 * Inactive L2 tables (those only snapshots reference) are not checked: that
 * would need every snapshot's L1 table read from disk on each write.
 */
#include "block/qcow2.h"

#include <inttypes.h>

#include "util/osdep.h"

static bool ranges_meet(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    /* Offsets are below 2^56 and lengths small: no sum wraps. */
    return alen && blen && a < b + blen && b < a + alen;
}

static bool hits_active_l2(const BDRVQcow2 *s, uint64_t off, uint64_t len)
{
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_OFFSET_MASK;
        if (l2 && ranges_meet(off, len, l2, s->cluster_size)) {
            return true;
        }
    }
    return false;
}

static bool hits_refblock(const BDRVQcow2 *s, uint64_t off, uint64_t len)
{
    for (uint64_t r = 0; r < s->reftable_used; r++) {
        uint64_t rb = s->reftable[r] & ~QCOW2_REFT_RESERVED;
        if (rb && ranges_meet(off, len, rb, s->cluster_size)) {
            return true;
        }
    }
    return false;
}

static bool hits_inactive_l1(const BDRVQcow2 *s, uint64_t off, uint64_t len)
{
    for (int i = 0; i < s->nb_snapshots; i++) {
        const Qcow2Snapshot *sn = &s->snapshots[i];
        if (ranges_meet(off, len, sn->l1_offset, (uint64_t)sn->l1_size * 8)) {
            return true;
        }
    }
    return false;
}

static bool hits_bitmap_table(const BDRVQcow2 *s, uint64_t off, uint64_t len)
{
    for (int i = 0; i < s->nb_bitmaps; i++) {
        const Qcow2Bitmap *bm = &s->bitmaps[i];
        if (bm->table_offset &&
            ranges_meet(off, len, bm->table_offset, (uint64_t)bm->table_size * 8)) {
            return true;
        }
    }
    return false;
}

/* The first kind of metadata (not in @ignore) that [off, off + len) overlaps, or 0. */
int qcow2_overlap_kind(BlockImage *img, int ignore, uint64_t off, uint64_t len)
{
    BDRVQcow2 *s = img->opaque;
    /* Cheap fixed ranges first, the per-table scans last. */
    if (!(ignore & QCOW2_OL_HEADER) && ranges_meet(off, len, 0, s->cluster_size)) {
        return QCOW2_OL_HEADER;
    }
    if (!(ignore & QCOW2_OL_ACTIVE_L1) &&
        ranges_meet(off, len, s->l1_offset, (uint64_t)s->l1_size * 8)) {
        return QCOW2_OL_ACTIVE_L1;
    }
    if (!(ignore & QCOW2_OL_REFCOUNT_TABLE) &&
        ranges_meet(off, len, s->reftable_offset,
                    (uint64_t)s->reftable_clusters << s->cluster_bits)) {
        return QCOW2_OL_REFCOUNT_TABLE;
    }
    if (!(ignore & QCOW2_OL_SNAPSHOT_TABLE) &&
        ranges_meet(off, len, s->snapshots_offset, s->snapshots_size)) {
        return QCOW2_OL_SNAPSHOT_TABLE;
    }
    if (!(ignore & QCOW2_OL_BITMAP_DIRECTORY) && s->bitmaps_ext &&
        ranges_meet(off, len, s->bitmap_dir_offset, s->bitmap_dir_size)) {
        return QCOW2_OL_BITMAP_DIRECTORY;
    }
    if (!(ignore & QCOW2_OL_INACTIVE_L1) && hits_inactive_l1(s, off, len)) {
        return QCOW2_OL_INACTIVE_L1;
    }
    if (!(ignore & QCOW2_OL_BITMAP_TABLE) && hits_bitmap_table(s, off, len)) {
        return QCOW2_OL_BITMAP_TABLE;
    }
    if (!(ignore & QCOW2_OL_ACTIVE_L2) && hits_active_l2(s, off, len)) {
        return QCOW2_OL_ACTIVE_L2;
    }
    if (!(ignore & QCOW2_OL_REFCOUNT_BLOCK) && hits_refblock(s, off, len)) {
        return QCOW2_OL_REFCOUNT_BLOCK;
    }
    return 0;
}

static const char *overlap_name(int kind)
{
    switch (kind) {
    case QCOW2_OL_HEADER: return "qcow2_header";
    case QCOW2_OL_ACTIVE_L1: return "active L1 table";
    case QCOW2_OL_ACTIVE_L2: return "active L2 table";
    case QCOW2_OL_REFCOUNT_TABLE: return "refcount table";
    case QCOW2_OL_REFCOUNT_BLOCK: return "refcount block";
    case QCOW2_OL_SNAPSHOT_TABLE: return "snapshot table";
    case QCOW2_OL_INACTIVE_L1: return "inactive L1 table";
    case QCOW2_OL_BITMAP_DIRECTORY: return "bitmap directory";
    default: return "bitmap table";
    }
}

int qcow2_overlap_check(BlockImage *img, int ignore, uint64_t off, uint64_t len,
                        Error **errp)
{
    int kind = qcow2_overlap_kind(img, ignore, off, len);
    if (!kind) {
        return 0;
    }
    qcow2_signal_corruption(img, errp, "Preventing invalid write on metadata (overlaps "
                            "with %s) at offset 0x%" PRIx64 ", %" PRIu64 " bytes",
                            overlap_name(kind), off, len);
    return -1;
}

bool qcow2_beyond_end(const BDRVQcow2 *s, uint64_t off, uint64_t len)
{
    return off + len > MAX(s->zeroed_from, (uint64_t)s->cluster_size);
}

int qcow2_data_write_check(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (s->data != &img->file) {
        return 0;   /* nothing but guest data lives in an external data file */
    }
    if (qcow2_beyond_end(s, off, len)) {
        qcow2_signal_corruption(img, errp, "data cluster at 0x%" PRIx64 " is beyond the "
                                "end of the image file", off);
        return -1;
    }
    return qcow2_overlap_check(img, 0, off, len, errp);
}

int qcow2_pwrite_checked(BlockImage *img, int ignore, uint64_t off, const void *buf,
                         size_t len, Error **errp)
{
    if (qcow2_overlap_check(img, ignore, off, len, errp) < 0) {
        return -1;
    }
    return bfile_pwrite(&img->file, off, buf, len, errp);
}

int qcow2_data_pwrite(BlockImage *img, uint64_t off, const void *buf, size_t len,
                      Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_data_write_check(img, off, len, errp) < 0) {
        return -1;
    }
    return bfile_pwrite(s->data, off, buf, len, errp);
}

void qcow2_reftable_note_used(BDRVQcow2 *s)
{
    uint64_t used = s->reftable_entries;
    while (used && !s->reftable[used - 1]) {
        used--;
    }
    s->reftable_used = used;
}
