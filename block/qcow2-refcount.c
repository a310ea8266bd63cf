/*
 * qcow2 host cluster management: refcounts of every width, allocation,
 * freeing, growing the refcount table.  The consistency check is in
 * qcow2-check.c, rebuilding the refcount structure in qcow2-rebuild.c.
 */
#include "block/qcow2.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* ---- refcount entries: 1, 2, 4 bits packed LSB first, or 8..64-bit big-endian ---- */

uint64_t qcow2_refcount_get_entry(BDRVQcow2 *s, const uint8_t *block, uint64_t i)
{
    switch (s->refcount_order) {
    case 0: return (block[i / 8] >> (i % 8)) & 0x1;
    case 1: return (block[i / 4] >> (2 * (i % 4))) & 0x3;
    case 2: return (block[i / 2] >> (4 * (i % 2))) & 0xf;
    case 3: return block[i];
    case 4: return ld_be16(block + 2 * i);
    case 5: return ld_be32(block + 4 * i);
    default: return ld_be64(block + 8 * i);
    }
}

void qcow2_refcount_set_entry(BDRVQcow2 *s, uint8_t *block, uint64_t i, uint64_t v)
{
    unsigned shift;
    switch (s->refcount_order) {
    case 0:
        shift = i % 8;
        block[i / 8] = (uint8_t)((block[i / 8] & ~(0x1u << shift)) | (v << shift));
        break;
    case 1:
        shift = 2 * (i % 4);
        block[i / 4] = (uint8_t)((block[i / 4] & ~(0x3u << shift)) | (v << shift));
        break;
    case 2:
        shift = 4 * (i % 2);
        block[i / 2] = (uint8_t)((block[i / 2] & ~(0xfu << shift)) | (v << shift));
        break;
    case 3: block[i] = (uint8_t)v; break;
    case 4: st_be16(block + 2 * i, (uint16_t)v); break;
    case 5: st_be32(block + 4 * i, (uint32_t)v); break;
    default: st_be64(block + 8 * i, v); break;
    }
}

int qcow2_refcount_init(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t bytes = (uint64_t)s->reftable_clusters * s->cluster_size;
    if (bytes == 0 || bytes > QCOW2_MAX_REFTABLE_BYTES) {
        error_setg(errp, "Reference count table too large or empty (%u clusters)",
                   s->reftable_clusters);
        return -1;
    }
    if ((s->reftable_offset & (s->cluster_size - 1)) ||
        !qcow2_offset_ok(img, s->reftable_offset, bytes)) {
        error_setg(errp, "Invalid reference count table offset 0x%" PRIx64,
                   s->reftable_offset);
        return -1;
    }
    s->reftable_entries = bytes / 8;
    s->reftable = xmalloc(bytes);
    if (bfile_pread(&img->file, s->reftable_offset, s->reftable, bytes, errp) < 0) {
        return -1;
    }
    for (uint64_t i = 0; i < s->reftable_entries; i++) {
        s->reftable[i] = ld_be64(&s->reftable[i]);
    }
    qcow2_reftable_note_used(s);
    return 0;
}

/*
 * The refcount block covering cluster @index, or 0 when it is not allocated.
 * The entry comes from the image: reserved bits, a misaligned offset or a
 * block past everything the file holds (reads would invent zero refcounts,
 * write-back would grow the file to wherever the entry points) mean
 * corruption, not a place to use.
 */
static int refblock_offset(BlockImage *img, uint64_t index, uint64_t *offset, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t r = index / s->rb_entries;
    *offset = 0;
    if (r >= s->reftable_entries) {
        return 0;
    }
    uint64_t e = s->reftable[r];
    uint64_t off = e & ~QCOW2_REFT_RESERVED;
    if (e & QCOW2_REFT_RESERVED) {
        qcow2_signal_corruption(img, errp, "refcount table entry %" PRIu64 " (0x%" PRIx64
                                ") has reserved bits set", r, e);
        return -1;
    }
    if (off & (s->cluster_size - 1)) {
        qcow2_signal_corruption(img, errp, "refcount block %" PRIu64
                                " at 0x%" PRIx64 " is not cluster aligned", r, off);
        return -1;
    }
    if (qcow2_beyond_end(s, off, s->cluster_size)) {
        qcow2_signal_corruption(img, errp, "refcount block %" PRIu64 " at 0x%" PRIx64
                                " is beyond the end of the image file", r, off);
        return -1;
    }
    *offset = off;
    return 0;
}

int qcow2_get_refcount(BlockImage *img, uint64_t index, uint64_t *refcount, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t rb;
    *refcount = 0;
    if (refblock_offset(img, index, &rb, errp) < 0) {
        return -1;
    }
    if (!rb) {
        return 0;
    }
    uint8_t *block = qcow2_cache_get(img, &s->rb_cache, rb, false, errp);
    if (!block) {
        return -1;
    }
    *refcount = qcow2_refcount_get_entry(s, block, index % s->rb_entries);
    qcow2_cache_put(&s->rb_cache, block);
    return 0;
}

int qcow2_update_refcount(BlockImage *img, uint64_t offset, uint64_t len, int64_t delta,
                          Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (len == 0) {
        return 0;
    }
    uint64_t first = offset >> s->cluster_bits;
    uint64_t last = (offset + len - 1) >> s->cluster_bits;
    for (uint64_t i = first; i <= last; i++) {
        uint64_t rb;
        if (refblock_offset(img, i, &rb, errp) < 0) {
            return -1;
        }
        if (!rb) {
            qcow2_signal_corruption(img, errp, "no refcount block for cluster %" PRIu64, i);
            return -1;
        }
        uint8_t *block = qcow2_cache_get(img, &s->rb_cache, rb, false, errp);
        if (!block) {
            return -1;
        }
        uint64_t old = qcow2_refcount_get_entry(s, block, i % s->rb_entries);
        uint64_t new = old + (uint64_t)delta;
        if ((delta < 0 && old < (uint64_t)-delta) ||
            (delta > 0 && (new > s->refcount_max || new < old))) {
            qcow2_cache_put(&s->rb_cache, block);
            error_setg(errp, "refcount of cluster %" PRIu64 " would %s (%" PRIu64
                       " %+" PRId64 ")", i, delta < 0 ? "drop below zero" : "overflow",
                       old, delta);
            return -1;
        }
        qcow2_refcount_set_entry(s, block, i % s->rb_entries, new);
        qcow2_cache_mark_dirty(&s->rb_cache, block);
        qcow2_cache_put(&s->rb_cache, block);
        if (new == 0 && i < s->free_hint) {
            s->free_hint = i;
        }
    }
    return 0;
}

/* Write the in-memory refcount table to @offset (big-endian). */
static int write_reftable(BlockImage *img, uint64_t offset, const uint64_t *table,
                          uint64_t entries, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t bytes = ROUND_UP(entries * 8, s->cluster_size);
    uint64_t *buf = blk_alloc_aligned(bytes);
    for (uint64_t i = 0; i < entries; i++) {
        st_be64(&buf[i], table[i]);
    }
    /* The new table goes where no other metadata may be. */
    int ret = qcow2_pwrite_checked(img, QCOW2_OL_REFCOUNT_TABLE, offset, buf, bytes, errp);
    free(buf);
    return ret;
}

/* Index one past the highest cluster anything could occupy. */
static uint64_t used_end(BlockImage *img)
{
    BDRVQcow2 *s = img->opaque;
    /* A file grown ahead of allocation holds nothing past zeroed_from. */
    int64_t len = s->prealloc_end ? 0 : bfile_length(&img->file, NULL);
    uint64_t end = len > 0 ? ROUND_UP((uint64_t)len, s->cluster_size) >> s->cluster_bits : 1;
    return MAX(end, s->zeroed_from >> s->cluster_bits);
}

/*
 * Grow the refcount table so it covers cluster @need.  The new table and the
 * refcount blocks for its own clusters go at the end of the file; every
 * refcount block it names is on disk before the header points to it.
 */
static int grow_reftable(BlockImage *img, uint64_t need, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t start = MAX(used_end(img), need + 1);
    uint64_t entries = MAX(s->reftable_entries * 2, need / s->rb_entries + 1);
    uint64_t rt_clusters, k = 0;
    /* The area [start, start + rt_clusters + k) needs k new refcount blocks. */
    for (;;) {
        uint64_t area_end = start + ROUND_UP(entries * 8, s->cluster_size) / s->cluster_size + k;
        entries = MAX(entries, area_end / s->rb_entries + 1);
        rt_clusters = ROUND_UP(entries * 8, s->cluster_size) / s->cluster_size;
        area_end = start + rt_clusters + k;
        uint64_t missing = 0;
        for (uint64_t r = start / s->rb_entries; r <= (area_end - 1) / s->rb_entries; r++) {
            if (r >= s->reftable_entries || !s->reftable[r]) {
                missing++;
            }
        }
        if (missing == k) {
            break;
        }
        k = missing;
    }
    if (entries * 8 > QCOW2_MAX_REFTABLE_BYTES) {
        error_setg(errp, "refcount table would exceed %u bytes", QCOW2_MAX_REFTABLE_BYTES);
        return -1;
    }
    uint64_t *table = xzalloc(rt_clusters * s->cluster_size);
    memcpy(table, s->reftable, s->reftable_entries * 8);
    uint64_t rt_offset = start << s->cluster_bits;
    uint64_t next_rb = start + rt_clusters;
    uint64_t area_end = start + rt_clusters + k;
    for (uint64_t r = start / s->rb_entries; r <= (area_end - 1) / s->rb_entries; r++) {
        if (!table[r]) {
            table[r] = next_rb++ << s->cluster_bits;
            uint8_t *blk = qcow2_cache_get(img, &s->rb_cache, table[r], true, errp);
            if (!blk) {
                free(table);
                return -1;
            }
            qcow2_cache_mark_dirty(&s->rb_cache, blk);
            qcow2_cache_put(&s->rb_cache, blk);
        }
    }
    uint64_t *old = s->reftable;
    uint64_t old_entries = s->reftable_entries;
    uint64_t old_offset = s->reftable_offset;
    uint32_t old_clusters = s->reftable_clusters;
    s->reftable = table;
    s->reftable_entries = rt_clusters * s->cluster_size / 8;
    qcow2_reftable_note_used(s);
    /* The new blocks are ours now: refblock_offset must not take them for stray entries. */
    s->zeroed_from = MAX(s->zeroed_from, area_end << s->cluster_bits);
    /* Account for the area itself inside the (possibly new) blocks. */
    int ret = qcow2_update_refcount(img, rt_offset, (area_end - start) << s->cluster_bits,
                                    1, errp);
    if (ret == 0) {
        ret = qcow2_cache_flush(img, &s->rb_cache, errp);
    }
    if (ret == 0) {
        ret = write_reftable(img, rt_offset, table, s->reftable_entries, errp);
    }
    if (ret == 0) {
        ret = bfile_flush(&img->file, errp);
    }
    if (ret < 0) {
        s->reftable = old;
        s->reftable_entries = old_entries;
        qcow2_reftable_note_used(s);
        free(table);
        return -1;
    }
    s->reftable_offset = rt_offset;
    s->reftable_clusters = (uint32_t)rt_clusters;
    free(old);
    if (qcow2_write_header(img, errp) < 0) {
        return -1;
    }
    return qcow2_free_clusters(img, old_offset, (uint64_t)old_clusters << s->cluster_bits,
                               errp);
}

/* First run of @n clusters with refcount 0 at or after the hint. */
static int find_free_run(BlockImage *img, uint64_t n, uint64_t *start, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    /* Single clusters fill holes; runs go after the last run, not through every hole. */
    uint64_t i = MAX(n > 1 ? MAX(s->free_hint, s->run_hint) : s->free_hint, (uint64_t)1);
    uint64_t run = 0;
    for (;; i++) {
        uint64_t rc;
        if (qcow2_get_refcount(img, i, &rc, errp) < 0) {
            return -1;
        }
        if (rc) {
            run = 0;
            if (i == s->free_hint) {
                s->free_hint = i + 1;
            }
            continue;
        }
        if (++run == n) {
            *start = i + 1 - n;
            return 0;
        }
    }
}

/* Does any refcount block covering clusters [start, end) lie outside the table or miss? */
static int coverage(BDRVQcow2 *s, uint64_t start, uint64_t end, uint64_t *missing)
{
    *missing = 0;
    for (uint64_t r = start / s->rb_entries; r <= (end - 1) / s->rb_entries; r++) {
        if (r >= s->reftable_entries) {
            return -1;
        }
        *missing += !s->reftable[r];
    }
    return 0;
}

/*
 * Clusters [start, start+n) are free but some of their refcount blocks do not
 * exist: put the new blocks right after them (the caller made sure that space
 * is free too) and hook them into the table once they are on disk.
 */
static int add_refblocks(BlockImage *img, uint64_t start, uint64_t n, uint64_t room,
                         Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t k = 0, missing;
    for (;;) {
        if (coverage(s, start, start + n + k, &missing) < 0 || missing > room) {
            error_setg(errp, "internal error placing refcount blocks");
            return -1;
        }
        if (missing == k) {
            break;
        }
        k = missing;
    }
    uint64_t next = start + n;
    for (uint64_t r = start / s->rb_entries; r <= (start + n + k - 1) / s->rb_entries; r++) {
        if (s->reftable[r]) {
            continue;
        }
        uint64_t off = next++ << s->cluster_bits;
        uint8_t *blk = qcow2_cache_get(img, &s->rb_cache, off, true, errp);
        if (!blk) {
            return -1;
        }
        qcow2_cache_mark_dirty(&s->rb_cache, blk);
        qcow2_cache_put(&s->rb_cache, blk);
        s->reftable[r] = off;
        s->reftable_used = MAX(s->reftable_used, r + 1);
    }
    uint64_t blocks_off = (start + n) << s->cluster_bits;
    s->zeroed_from = MAX(s->zeroed_from, (start + n + k) << s->cluster_bits);
    if (qcow2_update_refcount(img, blocks_off, k << s->cluster_bits, 1, errp) < 0 ||
        qcow2_cache_flush(img, &s->rb_cache, errp) < 0) {
        return -1;
    }
    /* The blocks are on disk: now the table may name them. */
    uint64_t first = start / s->rb_entries, last = (start + n + k - 1) / s->rb_entries;
    size_t bytes = (size_t)(last - first + 1) * 8;
    uint64_t *buf = xmalloc(bytes);
    for (uint64_t r = first; r <= last; r++) {
        st_be64(&buf[r - first], s->reftable[r]);
    }
    int ret = qcow2_pwrite_checked(img, QCOW2_OL_REFCOUNT_TABLE, s->reftable_offset + first * 8,
                                   buf, bytes, errp);
    free(buf);
    return ret;
}

int64_t qcow2_alloc_clusters(BlockImage *img, uint64_t n, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t start, missing;
    /* Room for the refcount blocks the run may need, should they be missing. */
    uint64_t extra = (n + s->rb_entries - 1) / s->rb_entries * 2 + 4;
    if (find_free_run(img, n, &start, errp) < 0) {
        return -1;
    }
    if (coverage(s, start, start + n, &missing) < 0 || missing) {
        for (;;) {
            if (find_free_run(img, n + extra, &start, errp) < 0) {
                return -1;
            }
            if ((start + n + extra) > ((uint64_t)INT64_MAX >> s->cluster_bits)) {
                error_setg(errp, "image file would grow beyond the maximum size");
                return -1;
            }
            if (coverage(s, start, start + n + extra, &missing) == 0) {
                break;
            }
            if (grow_reftable(img, start + n + extra, errp) < 0) {
                return -1;
            }
        }
        if (add_refblocks(img, start, n, extra, errp) < 0) {
            return -1;
        }
    }
    uint64_t offset = start << s->cluster_bits;
    /* Free by its refcounts yet holding metadata: the refcounts lie. */
    if (qcow2_overlap_check(img, 0, offset, n << s->cluster_bits, errp) < 0 ||
        qcow2_update_refcount(img, offset, n << s->cluster_bits, 1, errp) < 0) {
        return -1;
    }
    if (start == s->free_hint) {
        s->free_hint = start + n;
    }
    /* Tables are looked up against the file's plausible end: keep it past them. */
    s->zeroed_from = MAX(s->zeroed_from, offset + (n << s->cluster_bits));
    s->run_hint = MAX(s->run_hint, start + n);
    return (int64_t)offset;
}

int qcow2_free_clusters(BlockImage *img, uint64_t offset, uint64_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_update_refcount(img, offset, len, -1, errp) < 0) {
        return -1;
    }
    for (uint64_t o = offset & ~(uint64_t)(s->cluster_size - 1); o < offset + len;
         o += s->cluster_size) {
        uint64_t rc;
        if (qcow2_get_refcount(img, o >> s->cluster_bits, &rc, NULL) == 0 && rc == 0) {
            qcow2_cache_forget(&s->l2_cache, o);
        }
    }
    return 0;
}

/* Host range a compressed L2 entry refers to, as refcounts account for it. */
void qcow2_compressed_range(BDRVQcow2 *s, uint64_t l2e, uint64_t *off, uint64_t *len)
{
    int x = 62 - (s->cluster_bits - 8);
    uint64_t coff = l2e & ((1ull << x) - 1);
    uint64_t sectors = ((l2e & ~QCOW2_OFLAG_COPIED & ~QCOW2_OFLAG_COMPRESSED) >> x) + 1;
    *off = coff;
    *len = sectors * BDRV_SECTOR_SIZE - (coff & (BDRV_SECTOR_SIZE - 1));
}

int qcow2_free_l2_entry(BlockImage *img, uint64_t l2e, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (l2e & QCOW2_OFLAG_COMPRESSED) {
        uint64_t off, len;
        qcow2_compressed_range(s, l2e, &off, &len);
        return qcow2_free_clusters(img, off, len, errp);
    }
    uint64_t off = l2e & QCOW2_OFFSET_MASK;
    if (qcow2_has_data_file(s)) {
        return 0;   /* data file clusters carry no refcount */
    }
    return off ? qcow2_free_clusters(img, off, s->cluster_size, errp) : 0;
}

/* Add @delta to everything an L1 table references (L2 tables and their clusters). */
int qcow2_update_l1_refcounts(BlockImage *img, uint64_t l1_offset, uint32_t l1_size,
                              int delta, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t *l1 = blk_alloc_aligned((size_t)l1_size * 8);
    uint64_t *l2 = blk_alloc_aligned(s->cluster_size);
    int ret = bfile_pread(&img->file, l1_offset, l1, (size_t)l1_size * 8, errp);
    for (uint32_t i = 0; ret == 0 && i < l1_size; i++) {
        uint64_t l2_off = ld_be64(&l1[i]) & QCOW2_OFFSET_MASK;
        if (!l2_off) {
            continue;
        }
        uint8_t *t = qcow2_cache_get(img, &s->l2_cache, l2_off, false, errp);
        if (!t) {
            ret = -1;
            break;
        }
        memcpy(l2, t, s->cluster_size);
        qcow2_cache_put(&s->l2_cache, t);
        for (uint64_t j = 0; ret == 0 && j < s->l2_entries; j++) {
            uint64_t e = ld_be64((uint8_t *)l2 + j * s->l2_entry_size);
            if (e & QCOW2_OFLAG_COMPRESSED) {
                uint64_t off, len;
                qcow2_compressed_range(s, e, &off, &len);
                ret = delta < 0 ? qcow2_free_clusters(img, off, len, errp)
                                : qcow2_update_refcount(img, off, len, delta, errp);
            } else if ((e & QCOW2_OFFSET_MASK) && !qcow2_has_data_file(s)) {
                ret = delta < 0
                    ? qcow2_free_clusters(img, e & QCOW2_OFFSET_MASK, s->cluster_size, errp)
                    : qcow2_update_refcount(img, e & QCOW2_OFFSET_MASK, s->cluster_size,
                                            delta, errp);
            }
        }
        if (ret == 0) {
            ret = delta < 0 ? qcow2_free_clusters(img, l2_off, s->cluster_size, errp)
                            : qcow2_update_refcount(img, l2_off, s->cluster_size, delta, errp);
        }
    }
    free(l1);
    free(l2);
    return ret;
}
