/*
 * qcow2 discard and write-zeroes (whole clusters by their L2 entries,
 * subclusters by their bitmaps), block status, and metadata preallocation.
 */
#include "block/qcow2-map.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* ---- discard and zeroes ---- */

/*
 * Replace whole clusters in [off, off+len) by @entry/@bm (unallocated, or
 * reading as zeros), then release what they referenced once the tables are
 * on disk.
 */
static int replace_clusters(BlockImage *img, uint64_t off, uint64_t len, uint64_t entry,
                            uint64_t bm, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t *released = NULL;
    size_t nb_released = 0, cap = 0;
    int ret = 0;
    for (uint64_t o = off; o < off + len; o += s->cluster_size) {
        uint64_t e, old_bm;
        if (qcow2_get_l2_entry(img, o, &e, &old_bm, errp) < 0) {
            ret = -1;
            break;
        }
        if (e == entry && old_bm == bm) {
            continue;
        }
        uint8_t *t = qcow2_l2_for_write(img, o, errp);
        if (!t) {
            ret = -1;
            break;
        }
        qcow2_l2_store(s, t, l2_index(s, o), entry, bm);
        qcow2_cache_mark_dirty(&s->l2_cache, t);
        qcow2_cache_put(&s->l2_cache, t);
        if ((e & QCOW2_OFLAG_COMPRESSED) || (e & QCOW2_OFFSET_MASK)) {
            if (nb_released == cap) {
                cap = cap ? cap * 2 : 64;
                released = xrealloc(released, cap * sizeof(*released));
            }
            released[nb_released++] = e;
        }
    }
    if (nb_released && qcow2_flush_tables_before_free(img, ret < 0 ? NULL : errp) < 0) {
        ret = -1;
        nb_released = 0;   /* tables not on disk: keep the clusters (a leak at worst) */
    }
    for (size_t i = 0; i < nb_released; i++) {
        if (qcow2_free_l2_entry(img, released[i], ret < 0 ? NULL : errp) < 0) {
            ret = -1;
        }
    }
    free(released);
    return ret;
}

/* Drop every cluster of the active table, so the backing file shows through again. */
int qcow2_make_empty(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_has_data_file(s)) {
        error_setg(errp, "Cannot empty an image with an external data file");
        return -1;
    }
    qcow2_bitmaps_mark_write(img, 0, img->size);
    return replace_clusters(img, 0, ROUND_UP(img->size, s->cluster_size), 0, 0, errp);
}

/*
 * Extended L2: make guest bytes [off, end) of one cluster read as zeros
 * (or, for a discard without a backing file, unallocated) by their
 * subcluster bits.  Bytes that do not fill a subcluster are written as
 * zeros, or left alone by a discard, which is only advisory.
 */
static int zero_subclusters(BlockImage *img, uint64_t off, uint64_t end, bool discard,
                            Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t scs = (uint64_t)1 << s->sc_bits;
    /* The image may end inside a subcluster: past the end nothing is visible. */
    uint64_t end_eff = end >= img->size ? ROUND_UP(end, scs) : end;
    uint64_t sa = ROUND_UP(off, scs), sb = end_eff & ~(scs - 1);
    if (sa >= sb) {
        return discard ? 0 : blk_write_zeroes_fallback(img, off, end - off, errp);
    }
    if (!discard && sa > off && blk_write_zeroes_fallback(img, off, sa - off, errp) < 0) {
        return -1;
    }
    if (!discard && sb < end && blk_write_zeroes_fallback(img, sb, end - sb, errp) < 0) {
        return -1;
    }
    uint64_t e, bm;
    if (qcow2_get_l2_entry(img, sa, &e, &bm, errp) < 0) {
        return -1;
    }
    uint64_t in_cluster = sa & (s->cluster_size - 1);
    unsigned first = (unsigned)(in_cluster >> s->sc_bits);
    unsigned last = (unsigned)((in_cluster + (sb - sa) - 1) >> s->sc_bits);
    uint64_t mask = sc_mask(first, last);
    if (e & QCOW2_OFLAG_COMPRESSED) {
        /* A compressed cluster has no bitmap: write the zeros (a discard skips it). */
        return discard ? 0 : blk_write_zeroes_fallback(img, sa, MIN(sb, img->size) - sa, errp);
    }
    bm &= ~mask;
    if (!discard || img->backing) {
        bm |= mask << 32;
    } else {
        bm &= ~(mask << 32);
    }
    return qcow2_set_l2_entry(img, sa, e, bm, errp);
}

/* Apply zero_subclusters() to the clusters [off, end) only partly covers. */
static int zero_partial_clusters(BlockImage *img, uint64_t off, uint64_t end,
                                 uint64_t *whole_start, uint64_t *whole_end, bool discard,
                                 Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t ws = ROUND_UP(off, cs);
    uint64_t we = end >= img->size ? ROUND_UP(end, cs) : end & ~(cs - 1);
    if (ws >= we) {
        /* Within one cluster, or across one boundary without a whole cluster. */
        uint64_t mid = MIN(end, ROUND_UP(off + 1, cs));
        if (zero_subclusters(img, off, mid, discard, errp) < 0) {
            return -1;
        }
        *whole_start = *whole_end = mid;
        return mid < end ? zero_subclusters(img, mid, end, discard, errp) : 0;
    }
    if (off < ws && zero_subclusters(img, off, ws, discard, errp) < 0) {
        return -1;
    }
    if (we < end && zero_subclusters(img, we, end, discard, errp) < 0) {
        return -1;
    }
    *whole_start = ws;
    *whole_end = we;
    return 0;
}

int qcow2_discard(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (s->data_raw) {
        /* The data file must stay the raw image: discarded data reads as zeros there too. */
        return qcow2_write_zeroes(img, off, len, errp);
    }
    if (s->ext_l2) {
        uint64_t ws, we;
        qcow2_bitmaps_mark_write(img, off, len);
        if (zero_partial_clusters(img, off, off + len, &ws, &we, true, errp) < 0) {
            return -1;
        }
        return ws < we ? replace_clusters(img, ws, we - ws, 0,
                                          img->backing ? QCOW2_SC_ZERO_ALL : 0, errp) : 0;
    }
    uint64_t start = ROUND_UP(off, s->cluster_size);
    uint64_t end = off + len == img->size ? ROUND_UP(img->size, s->cluster_size)
                                          : (off + len) & ~(uint64_t)(s->cluster_size - 1);
    if (start >= end) {
        return 0;
    }
    qcow2_bitmaps_mark_write(img, start, MIN(end, img->size) - start);
    /* With a backing file, plain deallocation would expose its data again. */
    uint64_t entry = img->backing && s->version >= 3 ? QCOW2_OFLAG_ZERO : 0;
    if (img->backing && s->version < 3) {
        return 0;
    }
    return replace_clusters(img, start, end - start, entry, 0, errp);
}

int qcow2_write_zeroes(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t end = off + len;
    if (s->data_raw) {
        /* Zero the raw view first; the metadata below then agrees with it. */
        int64_t flen = bfile_length(s->data, errp);
        if (flen < 0) {
            return -1;
        }
        if (off < (uint64_t)flen &&
            bfile_zero_range(s->data, off, MIN(end, (uint64_t)flen) - off, errp) < 0) {
            return -1;
        }
    }
    if (s->ext_l2) {
        uint64_t ws, we;
        qcow2_bitmaps_mark_write(img, off, len);
        if (zero_partial_clusters(img, off, end, &ws, &we, false, errp) < 0) {
            return -1;
        }
        return ws < we ? replace_clusters(img, ws, we - ws, 0, QCOW2_SC_ZERO_ALL, errp) : 0;
    }
    uint64_t head_end = MIN(end, ROUND_UP(off, s->cluster_size));
    uint64_t tail_start = end == img->size ? ROUND_UP(end, s->cluster_size)
                                           : end & ~(uint64_t)(s->cluster_size - 1);
    if (s->version < 3 || tail_start <= head_end) {
        return blk_write_zeroes_fallback(img, off, len, errp);
    }
    if (head_end > off && blk_write_zeroes_fallback(img, off, head_end - off, errp) < 0) {
        return -1;
    }
    qcow2_bitmaps_mark_write(img, head_end, MIN(tail_start, img->size) - head_end);
    if (replace_clusters(img, head_end, tail_start - head_end, QCOW2_OFLAG_ZERO, 0,
                         errp) < 0) {
        return -1;
    }
    if (tail_start < end) {
        return blk_write_zeroes_fallback(img, tail_start, end - tail_start, errp);
    }
    return 0;
}

/* ---- block status ---- */

int qcow2_block_status(BlockImage *img, uint64_t off, uint64_t len, BlockStatus *st,
                       Error **errp)
{
    Mapping m;
    if (qcow2_lookup(img, off, len, &m, errp) < 0) {
        return -1;
    }
    BDRVQcow2 *s = img->opaque;
    uint64_t n = m.len;
    /*
     * Extend over following clusters that start with the same kind (data:
     * contiguous on the host).  A run that ended inside a cluster ended for good.
     */
    while (n < len && ((off + n) & (s->cluster_size - 1)) == 0) {
        Mapping m2;
        if (qcow2_lookup(img, off + n, len - n, &m2, errp) < 0) {
            return -1;
        }
        if (m2.kind != m.kind || m2.has_host != m.has_host ||
            (m.has_host && m2.host != m.host + n)) {
            break;
        }
        n += m2.len;
    }
    st->len = n;
    st->host_offset = m.host;
    st->offset_valid = m.has_host;
    switch (m.kind) {
    case SC_UNALLOC: st->kind = BLK_STATUS_UNALLOCATED; break;
    case SC_DATA: st->kind = BLK_STATUS_DATA; break;
    case SC_COMPRESSED: st->kind = BLK_STATUS_COMPRESSED; break;
    default: st->kind = BLK_STATUS_ZERO; break;
    }
    return 0;
}

/*
 * Map every cluster that has no host cluster yet (preallocation): at its
 * guest offset with an external data file, else in the image file, with
 * the subcluster bitmap @bm.
 */
int qcow2_prealloc_map(BlockImage *img, uint64_t bm, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t cs = s->cluster_size;
    for (uint64_t off = 0; off < img->size;) {
        uint64_t n = MIN(s->l2_entries - l2_index(s, off), ROUND_UP(img->size - off, cs) / cs);
        bool fresh;
        int64_t host = qcow2_alloc_host(img, off, n, &fresh, errp);
        if (host < 0) {
            return -1;
        }
        if (qcow2_map_host_run(img, off, n, (uint64_t)host, bm, errp) < 0) {
            return -1;
        }
        off += n * cs;
    }
    return 0;
}
