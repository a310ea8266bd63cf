/*
 * qcow2 guest-to-host mapping: L1/L2 lookup, reads, and allocating writes
 * with copy-on-write.  Compressed clusters are in qcow2-compress.c, discard,
 * zeroes and block status in qcow2-discard.c, the asynchronous fast path in
 * qcow2-aio.c.
 */
#include "block/qcow2-map.h"

#include <fcntl.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* Validate an L2 entry (and its subcluster bitmap) from disk before anything trusts it. */
static int check_l2_entry(BlockImage *img, uint64_t e, uint64_t bm, uint64_t guest_off,
                          Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (e & QCOW2_OFLAG_COMPRESSED) {
        if (qcow2_has_data_file(s)) {
            qcow2_signal_corruption(img, errp, "compressed cluster for guest offset %"
                                    PRIu64 " in an image with an external data file",
                                    guest_off);
            return -1;
        }
        if (bm) {
            qcow2_signal_corruption(img, errp, "compressed cluster for guest offset %"
                                    PRIu64 " has a non-zero subcluster bitmap 0x%" PRIx64,
                                    guest_off, bm);
            return -1;
        }
        return 0;
    }
    if (s->ext_l2 && (bm & (bm >> 32) & QCOW2_SC_ALLOC_ALL)) {
        qcow2_signal_corruption(img, errp, "L2 entry for guest offset %" PRIu64 " marks "
                                "subclusters both allocated and zero (bitmap 0x%" PRIx64 ")",
                                guest_off, bm);
        return -1;
    }
    if (s->ext_l2 && !qcow2_entry_has_host(s, e) && (bm & QCOW2_SC_ALLOC_ALL)) {
        qcow2_signal_corruption(img, errp, "L2 entry for guest offset %" PRIu64 " has "
                                "allocated subclusters but no host cluster (bitmap 0x%"
                                PRIx64 ")", guest_off, bm);
        return -1;
    }
    if (e & QCOW2_L2E_RESERVED) {
        qcow2_signal_corruption(img, errp, "L2 entry 0x%" PRIx64 " for guest offset %"
                                PRIu64 " has reserved bits set", e, guest_off);
        return -1;
    }
    if ((e & QCOW2_OFFSET_MASK) & (s->cluster_size - 1)) {
        qcow2_signal_corruption(img, errp, "data cluster offset 0x%" PRIx64
                                " is not cluster aligned", e & QCOW2_OFFSET_MASK);
        return -1;
    }
    return 0;
}

static int l2_table_offset(BlockImage *img, uint64_t l1i, uint64_t *off, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t e = s->l1[l1i];
    *off = e & QCOW2_OFFSET_MASK;
    if ((e & QCOW2_L1E_RESERVED) || (*off & (s->cluster_size - 1))) {
        qcow2_signal_corruption(img, errp, "L1 entry %" PRIu64 " (0x%" PRIx64
                                ") is invalid", l1i, e);
        return -1;
    }
    if (*off == 0 && (e & ~QCOW2_OFLAG_COPIED)) {
        qcow2_signal_corruption(img, errp, "L1 entry %" PRIu64 " is invalid", l1i);
        return -1;
    }
    return 0;
}

int qcow2_get_l2_entry(BlockImage *img, uint64_t guest_off, uint64_t *l2e, uint64_t *bm,
                       Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t l1i = l1_index(s, guest_off), l2_off;
    *l2e = 0;
    *bm = 0;
    if (l1i >= s->l1_size) {
        return 0;
    }
    if (l2_table_offset(img, l1i, &l2_off, errp) < 0) {
        return -1;
    }
    if (!l2_off) {
        return 0;
    }
    uint8_t *t = qcow2_cache_get(img, &s->l2_cache, l2_off, false, errp);
    if (!t) {
        return -1;
    }
    qcow2_l2_load(s, t, l2_index(s, guest_off), l2e, bm);
    qcow2_cache_put(&s->l2_cache, t);
    return check_l2_entry(img, *l2e, *bm, guest_off, errp);
}

/* ---- L1 ---- */

int qcow2_write_l1(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t bytes = (size_t)s->l1_size * 8;
    uint64_t *buf = blk_alloc_aligned(bytes);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        st_be64(&buf[i], s->l1[i]);
    }
    int ret = bytes ? qcow2_pwrite_checked(img, QCOW2_OL_ACTIVE_L1, s->l1_offset, buf, bytes,
                                           errp) : 0;
    free(buf);
    if (ret == 0) {
        s->l1_dirty = false;
    }
    return ret;
}

int qcow2_grow_l1(BlockImage *img, uint64_t min_size, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (min_size <= s->l1_size) {
        return 0;
    }
    if (min_size * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "L1 table would need %" PRIu64 " entries, more than allowed",
                   min_size);
        return -1;
    }
    uint64_t bytes = ROUND_UP(min_size * 8, s->cluster_size);
    int64_t off = qcow2_alloc_clusters(img, bytes >> s->cluster_bits, errp);
    if (off < 0) {
        return -1;
    }
    uint64_t *l1 = blk_alloc_aligned(bytes);
    memcpy(l1, s->l1, (size_t)s->l1_size * 8);
    uint64_t old_off = s->l1_offset;
    uint64_t old_bytes = ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);
    uint32_t old_size = s->l1_size;
    uint64_t *old = s->l1;
    s->l1 = l1;
    s->l1_size = (uint32_t)min_size;
    s->l1_offset = (uint64_t)off;
    /* New table and the refcounts for it first, then the header switches over. */
    if (qcow2_flush_metadata(img, false, errp) < 0 || qcow2_write_l1(img, errp) < 0 ||
        bfile_flush(&img->file, errp) < 0 || qcow2_write_header(img, errp) < 0) {
        s->l1 = old;
        s->l1_size = old_size;
        s->l1_offset = old_off;
        free(l1);
        return -1;
    }
    free(old);
    if (old_size) {
        return qcow2_free_clusters(img, old_off, old_bytes, errp);
    }
    return 0;
}

/* ---- reads ---- */

static SubKind sub_kind(BDRVQcow2 *s, uint64_t e, uint64_t bm, unsigned sc)
{
    if (e & QCOW2_OFLAG_COMPRESSED) {
        return SC_COMPRESSED;
    }
    if (s->ext_l2) {
        /* Bit 0 of the descriptor is not a zero flag here: the bitmap says it all. */
        if (bm & ((uint64_t)1 << (32 + sc))) {
            return SC_ZERO;
        }
        return (bm & ((uint64_t)1 << sc)) ? SC_DATA : SC_UNALLOC;
    }
    switch (cluster_kind(s, e)) {
    case CLUSTER_UNALLOCATED: return SC_UNALLOC;
    case CLUSTER_NORMAL: return SC_DATA;
    default: return SC_ZERO;
    }
}

/* Map guest @off: the run of subclusters of one kind it starts, up to @max bytes. */
int qcow2_lookup(BlockImage *img, uint64_t off, uint64_t max, Mapping *m, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_get_l2_entry(img, off, &m->e, &m->bm, errp) < 0) {
        return -1;
    }
    uint64_t in_cluster = off & (s->cluster_size - 1);
    unsigned sc = (unsigned)(in_cluster >> s->sc_bits);
    m->kind = sub_kind(s, m->e, m->bm, sc);
    m->has_host = qcow2_entry_has_host(s, m->e);
    m->host = (m->e & QCOW2_OFFSET_MASK) + in_cluster;
    unsigned last = sc + 1;
    if (s->ext_l2 && m->kind != SC_COMPRESSED) {
        while (last < QCOW2_SUBCLUSTERS && sub_kind(s, m->e, m->bm, last) == m->kind) {
            last++;
        }
    } else {
        last = s->ext_l2 ? QCOW2_SUBCLUSTERS : 1;
    }
    m->len = MIN(max, ((uint64_t)last << s->sc_bits) - in_cluster);
    return 0;
}

static int read_mapped(BlockImage *img, const Mapping *m, uint64_t off, uint8_t *buf,
                       size_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    switch (m->kind) {
    case SC_UNALLOC:
        return blk_read_backing(img, off, buf, len, errp);
    case SC_ZERO:
        memset(buf, 0, len);
        return 0;
    case SC_COMPRESSED: {
        uint8_t *tmp = xmalloc(s->cluster_size);
        int ret = qcow2_decompress(img, m->e, tmp, errp);
        if (ret == 0) {
            memcpy(buf, tmp + (off & (s->cluster_size - 1)), len);
        }
        free(tmp);
        return ret;
    }
    default:
        return bfile_pread(s->data, m->host, buf, len, errp);
    }
}

int qcow2_read(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *p = buf;
    while (len) {
        Mapping m;
        if (qcow2_lookup(img, off, len, &m, errp) < 0) {
            return -1;
        }
        size_t n = (size_t)m.len;
        /* Merge data that continues contiguously on the host into one read. */
        while (m.kind == SC_DATA && n < len && n < (8u << 20) &&
               ((off + n) & (s->cluster_size - 1)) == 0) {
            Mapping m2;
            if (qcow2_lookup(img, off + n, len - n, &m2, errp) < 0) {
                return -1;
            }
            if (m2.kind != SC_DATA || m2.host != m.host + n) {
                break;
            }
            n += (size_t)m2.len;
        }
        if (read_mapped(img, &m, off, p, n, errp) < 0) {
            return -1;
        }
        off += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* ---- L2 tables for writing ---- */

/* Make L2 changes durable before a reference they dropped is released. */
int qcow2_flush_tables_before_free(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_cache_flush(img, &s->l2_cache, errp) < 0) {
        return -1;
    }
    return s->l1_dirty ? qcow2_write_l1(img, errp) : 0;
}

/*
 * The L2 table for @off, if any, must be one a write may update: beyond the
 * file's end it reads as zeros, but written back it would grow the file to
 * wherever the entry points.  Checked before any data cluster is placed.
 */
static int check_l2_placement(BlockImage *img, uint64_t off, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t l1i = l1_index(s, off), l2_off;
    if (l1i >= s->l1_size) {
        return 0;
    }
    if (l2_table_offset(img, l1i, &l2_off, errp) < 0) {
        return -1;
    }
    if (l2_off && qcow2_beyond_end(s, l2_off, s->cluster_size)) {
        qcow2_signal_corruption(img, errp, "L2 table at 0x%" PRIx64 " (L1 entry %" PRIu64
                                ") is beyond the end of the image file", l2_off, l1i);
        return -1;
    }
    return 0;
}

/*
 * Get the L2 table for @off ready for modification: allocate it if missing,
 * copy it if it is shared with a snapshot.  The table is pinned.
 */
uint8_t *qcow2_l2_for_write(BlockImage *img, uint64_t off, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t l1i = l1_index(s, off), l2_off;
    if (l1i >= s->l1_size && qcow2_grow_l1(img, l1i + 1, errp) < 0) {
        return NULL;
    }
    if (check_l2_placement(img, off, errp) < 0 || l2_table_offset(img, l1i, &l2_off, errp) < 0) {
        return NULL;
    }
    if (l2_off && (s->l1[l1i] & QCOW2_OFLAG_COPIED)) {
        return qcow2_cache_get(img, &s->l2_cache, l2_off, false, errp);
    }
    int64_t new_off = qcow2_alloc_clusters(img, 1, errp);
    if (new_off < 0) {
        return NULL;
    }
    uint8_t *t = qcow2_cache_get(img, &s->l2_cache, (uint64_t)new_off, true, errp);
    if (!t) {
        return NULL;
    }
    if (l2_off) {
        uint8_t *old = qcow2_cache_get(img, &s->l2_cache, l2_off, false, errp);
        if (!old) {
            qcow2_cache_put(&s->l2_cache, t);
            return NULL;
        }
        memcpy(t, old, s->cluster_size);
        qcow2_cache_put(&s->l2_cache, old);
    }
    qcow2_cache_mark_dirty(&s->l2_cache, t);
    s->l1[l1i] = (uint64_t)new_off | QCOW2_OFLAG_COPIED;
    s->l1_dirty = true;
    if (l2_off && (qcow2_flush_tables_before_free(img, errp) < 0 ||
                   qcow2_free_clusters(img, l2_off, s->cluster_size, errp) < 0)) {
        qcow2_cache_put(&s->l2_cache, t);
        return NULL;
    }
    return t;
}

/* Set one L2 entry (and bitmap), releasing what the old entry referenced. */
int qcow2_set_l2_entry(BlockImage *img, uint64_t off, uint64_t entry, uint64_t bm,
                       Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *t = qcow2_l2_for_write(img, off, errp);
    if (!t) {
        return -1;
    }
    uint64_t i = l2_index(s, off);
    uint64_t old, old_bm;
    qcow2_l2_load(s, t, i, &old, &old_bm);
    qcow2_l2_store(s, t, i, entry, bm);
    qcow2_cache_mark_dirty(&s->l2_cache, t);
    qcow2_cache_put(&s->l2_cache, t);
    bool releases = (old & QCOW2_OFLAG_COMPRESSED) || (old & QCOW2_OFFSET_MASK);
    if (!releases || ((old ^ entry) & (QCOW2_OFFSET_MASK | QCOW2_OFLAG_COMPRESSED)) == 0) {
        return 0;
    }
    if (qcow2_flush_tables_before_free(img, errp) < 0) {
        return -1;
    }
    return qcow2_free_l2_entry(img, old, errp);
}

/*
 * Keep the image file longer than what is allocated in it.  A data write
 * past the end of the file must grow it, and on ext4 and xfs an O_DIRECT
 * write that grows the file takes the inode lock exclusively and waits for
 * the journal: allocating writes would go one at a time.  Growing the file
 * with fallocate() ahead of need (unwritten extents, which read as zeros)
 * lets those writes land inside the file and run side by side.  The step
 * starts at 1 MiB and doubles up to 64 MiB, so a small image grows little
 * past its data; qcow2_prealloc_trim() gives the unused tail back at close,
 * and after a crash it is free space that refcounts do not name.
 */
#define PREALLOC_FIRST (1ull << 20)
#define PREALLOC_MAX (64ull << 20)

void qcow2_prealloc_ahead(BlockImage *img, uint64_t end)
{
    BDRVQcow2 *s = img->opaque;
    if (s->prealloc_off || (img->flags & BLK_O_UNSAFE) || end <= s->prealloc_end) {
        return;
    }
    int64_t len = s->prealloc_end ? (int64_t)s->prealloc_end : bfile_length(&img->file, NULL);
    if (len < 0) {
        return;
    }
    uint64_t from = (uint64_t)len;
    uint64_t step = MAX(s->prealloc_chunk, PREALLOC_FIRST);
    uint64_t target = ROUND_UP(MAX(end, from) + step, PREALLOC_FIRST);
    if (target > from && fallocate(img->file.fd, 0, (off_t)from, (off_t)(target - from)) < 0) {
        s->prealloc_off = true;     /* tmpfs before 3.x, NFS v3...: writes extend it */
        return;
    }
    s->prealloc_end = target;
    s->prealloc_chunk = MIN(step * 2, PREALLOC_MAX);
}

int qcow2_prealloc_trim(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (!s->prealloc_end || s->prealloc_end <= s->zeroed_from) {
        return 0;
    }
    /* Everything allocated lies below zeroed_from (as did the file at open). */
    int64_t len = bfile_length(&img->file, errp);
    if (len < 0) {
        return -1;
    }
    s->prealloc_end = 0;
    return (uint64_t)len > s->zeroed_from ? bfile_truncate(&img->file, s->zeroed_from, errp)
                                          : 0;
}

/* Allocate @n contiguous clusters in the image file; *fresh says whether they read as zeros. */
int64_t qcow2_alloc_data(BlockImage *img, uint64_t n, bool *fresh, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t before = s->zeroed_from;
    int64_t off = qcow2_alloc_clusters(img, n, errp);
    if (off < 0) {
        return -1;
    }
    uint64_t end = (uint64_t)off + (n << s->cluster_bits);
    *fresh = (uint64_t)off >= before;
    s->zeroed_from = MAX(s->zeroed_from, end);
    if (s->data == &img->file) {
        qcow2_prealloc_ahead(img, end);
    }
    return off;
}

/*
 * Host clusters for the @n guest clusters from @guest_off on.  In an
 * external data file the place is fixed (host offset = guest offset) and
 * not refcounted; what is there already is unknown, so never "fresh".
 */
int64_t qcow2_alloc_host(BlockImage *img, uint64_t guest_off, uint64_t n, bool *fresh,
                         Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_has_data_file(s)) {
        *fresh = false;
        return (int64_t)(guest_off & ~(uint64_t)(s->cluster_size - 1));
    }
    return qcow2_alloc_data(img, n, fresh, errp);
}

static void free_host(BlockImage *img, uint64_t host, uint64_t bytes)
{
    if (!qcow2_has_data_file((BDRVQcow2 *)img->opaque)) {
        qcow2_free_clusters(img, host, bytes, NULL);
    }
}

/* What the guest currently sees in the cluster at @cluster_start, for copy-on-write. */
static int old_cluster_contents(BlockImage *img, uint64_t cluster_start, uint8_t *buf,
                                Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t len = (size_t)MIN((uint64_t)s->cluster_size, img->size - cluster_start);
    memset(buf + len, 0, s->cluster_size - len);
    return qcow2_read(img, cluster_start, buf, len, errp);
}

/* Does writing part of a cluster with entry @e need its old contents? */
bool qcow2_needs_cow_data(BlockImage *img, uint64_t e)
{
    BDRVQcow2 *s = img->opaque;
    switch (cluster_kind(s, e)) {
    case CLUSTER_UNALLOCATED:
        return img->backing != NULL;
    case CLUSTER_ZERO_PLAIN:
    case CLUSTER_ZERO_ALLOC:
        return false;
    default:
        return true;
    }
}

static int write_one_cluster(BlockImage *img, uint64_t off, const uint8_t *buf, size_t n,
                             uint64_t e, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t in_cluster = off & (s->cluster_size - 1);
    uint64_t cluster_start = off - in_cluster;
    if (cluster_kind(s, e) == CLUSTER_NORMAL && (e & QCOW2_OFLAG_COPIED)) {
        return qcow2_data_pwrite(img, (e & QCOW2_OFFSET_MASK) + in_cluster, buf, n, errp);
    }
    bool fresh;
    int64_t host = qcow2_alloc_host(img, off, 1, &fresh, errp);
    if (host < 0) {
        return -1;
    }
    int ret;
    if (n == s->cluster_size) {
        ret = qcow2_data_pwrite(img, (uint64_t)host, buf, n, errp);
    } else if (!qcow2_needs_cow_data(img, e) && fresh) {
        ret = qcow2_data_pwrite(img, (uint64_t)host + in_cluster, buf, n, errp);
    } else {
        uint8_t *full = blk_alloc_aligned(s->cluster_size);
        ret = qcow2_needs_cow_data(img, e) ? old_cluster_contents(img, cluster_start, full, errp)
                                     : 0;
        if (ret == 0) {
            memcpy(full + in_cluster, buf, n);
            ret = qcow2_data_pwrite(img, (uint64_t)host, full, s->cluster_size, errp);
        }
        free(full);
    }
    if (ret == 0) {
        ret = qcow2_set_l2_entry(img, off, (uint64_t)host | QCOW2_OFLAG_COPIED, 0, errp);
    }
    if (ret < 0) {
        free_host(img, (uint64_t)host, s->cluster_size);
    }
    return ret;
}

/*
 * Write within one cluster of an image with extended L2 entries.  Only the
 * subclusters written become allocated; a subcluster written in part gets
 * its other bytes from what the guest saw there (backing file or zeros),
 * and the rest of the cluster keeps reading as before.
 */
static int write_subclusters(BlockImage *img, uint64_t off, const uint8_t *buf, size_t n,
                             Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t cs = s->cluster_size, scs = (uint64_t)1 << s->sc_bits;
    uint64_t in_cluster = off & (cs - 1), cluster_start = off - in_cluster;
    uint64_t e, bm;
    if (qcow2_get_l2_entry(img, off, &e, &bm, errp) < 0) {
        return -1;
    }
    bool compressed = e & QCOW2_OFLAG_COMPRESSED;
    bool has_host = qcow2_entry_has_host(s, e);
    uint64_t host;
    int64_t fresh_host = -1;
    int ret = 0;
    if (has_host && ((e & QCOW2_OFLAG_COPIED) || qcow2_has_data_file(s))) {
        host = e & QCOW2_OFFSET_MASK;
    } else {
        bool fresh;
        fresh_host = qcow2_alloc_host(img, cluster_start, 1, &fresh, errp);
        if (fresh_host < 0) {
            return -1;
        }
        host = (uint64_t)fresh_host;
        if (compressed || has_host) {
            /*
             * The old cluster is compressed or shared with a snapshot: the new
             * one takes over its contents (a compressed cluster is allocated
             * all through).
             */
            uint8_t *tmp = blk_alloc_aligned(cs);
            ret = compressed ? qcow2_decompress(img, e, tmp, errp)
                             : bfile_pread(s->data, e & QCOW2_OFFSET_MASK, tmp, cs, errp);
            if (ret == 0) {
                ret = qcow2_data_pwrite(img, host, tmp, cs, errp);
            }
            free(tmp);
            if (compressed) {
                bm = QCOW2_SC_ALLOC_ALL;
            }
        }
    }
    unsigned first = (unsigned)(in_cluster >> s->sc_bits);
    unsigned last = (unsigned)((in_cluster + n - 1) >> s->sc_bits);
    uint64_t span_start = (uint64_t)first * scs, span_end = (uint64_t)(last + 1) * scs;
    bool head_ok = in_cluster == span_start || sub_kind(s, e, bm, first) == SC_DATA;
    bool tail_ok = in_cluster + n == span_end || sub_kind(s, e, bm, last) == SC_DATA;
    if (ret == 0 && compressed) {
        head_ok = tail_ok = true;   /* just copied in full */
    }
    if (ret == 0 && head_ok && tail_ok) {
        ret = qcow2_data_pwrite(img, host + in_cluster, buf, n, errp);
    } else if (ret == 0) {
        /* Fill the partly written subclusters from what the guest sees now. */
        size_t span = (size_t)(span_end - span_start);
        uint8_t *tmp = blk_alloc_aligned(span);
        uint64_t visible = img->size - (cluster_start + span_start);
        if (in_cluster > span_start) {
            ret = qcow2_read(img, cluster_start + span_start, tmp,
                             (size_t)(in_cluster - span_start), errp);
        }
        uint64_t tail = in_cluster + n;
        if (ret == 0 && tail < span_end && tail - span_start < visible) {
            ret = qcow2_read(img, cluster_start + tail, tmp + (tail - span_start),
                             (size_t)(MIN(span_end - span_start, visible) -
                                      (tail - span_start)), errp);
        }
        if (ret == 0) {
            memcpy(tmp + (in_cluster - span_start), buf, n);
            ret = qcow2_data_pwrite(img, host + span_start, tmp, span, errp);
        }
        free(tmp);
    }
    if (ret == 0) {
        uint64_t mask = sc_mask(first, last);
        bm = (bm | mask) & ~(mask << 32);
        ret = qcow2_set_l2_entry(img, off, host | QCOW2_OFLAG_COPIED, bm, errp);
    }
    if (ret < 0 && fresh_host >= 0) {
        free_host(img, host, cs);
    }
    return ret;
}

/* Point n consecutive guest clusters at host clusters host, host + cs, ... (one L2 table). */
int qcow2_map_host_run(BlockImage *img, uint64_t off, uint64_t n, uint64_t host,
                       uint64_t bitmap, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *t = qcow2_l2_for_write(img, off, errp);
    if (!t) {
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        qcow2_l2_store(s, t, l2_index(s, off) + i,
                       (host + (i << s->cluster_bits)) | QCOW2_OFLAG_COPIED, bitmap);
    }
    qcow2_cache_mark_dirty(&s->l2_cache, t);
    qcow2_cache_put(&s->l2_cache, t);
    return 0;
}

/*
 * Whole clusters that need a new host cluster and no old data: allocate them
 * as one contiguous run and write them with one system call.
 */
static int write_run(BlockImage *img, uint64_t off, const uint8_t *buf, size_t len,
                     size_t *done, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t n = 0;
    uint64_t max = MIN(len >> s->cluster_bits, (uint64_t)(8u << 20) >> s->cluster_bits);
    uint64_t l2_left = s->l2_entries - l2_index(s, off);
    max = MIN(max, l2_left);
    while (n < max) {
        uint64_t e, bm;
        if (qcow2_get_l2_entry(img, off + (n << s->cluster_bits), &e, &bm, errp) < 0) {
            return -1;
        }
        /* With extended L2 entries the bitmap is overwritten whole, zero bits or not. */
        bool free_slot = s->ext_l2 ? !(e & QCOW2_OFLAG_COMPRESSED) && !qcow2_entry_has_host(s, e)
                                   : (cluster_kind(s, e) == CLUSTER_UNALLOCATED ||
                                      cluster_kind(s, e) == CLUSTER_ZERO_PLAIN);
        if (!free_slot) {
            break;
        }
        n++;
    }
    *done = 0;
    if (n < 2) {
        return 0;
    }
    bool fresh;
    int64_t host = qcow2_alloc_host(img, off, n, &fresh, errp);
    if (host < 0) {
        return -1;
    }
    size_t bytes = (size_t)(n << s->cluster_bits);
    if (qcow2_data_pwrite(img, (uint64_t)host, buf, bytes, errp) < 0) {
        free_host(img, (uint64_t)host, bytes);
        return -1;
    }
    if (qcow2_map_host_run(img, off, n, (uint64_t)host, QCOW2_SC_ALLOC_ALL, errp) < 0) {
        return -1;
    }
    *done = bytes;
    return 0;
}

int qcow2_write(BlockImage *img, uint64_t off, const void *buf, size_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    const uint8_t *p = buf;
    qcow2_bitmaps_mark_write(img, off, len);
    while (len) {
        size_t n = MIN(len, (size_t)(s->cluster_size - (off & (s->cluster_size - 1))));
        if (check_l2_placement(img, off, errp) < 0) {
            return -1;
        }
        if (n == s->cluster_size && len >= 2 * (size_t)s->cluster_size) {
            size_t done;
            if (write_run(img, off, p, len, &done, errp) < 0) {
                return -1;
            }
            if (done) {
                off += done;
                p += done;
                len -= done;
                continue;
            }
        }
        if (s->ext_l2) {
            if (write_subclusters(img, off, p, n, errp) < 0) {
                return -1;
            }
        } else {
            uint64_t e, bm;
            if (qcow2_get_l2_entry(img, off, &e, &bm, errp) < 0 ||
                write_one_cluster(img, off, p, n, e, errp) < 0) {
                return -1;
            }
        }
        off += n;
        p += n;
        len -= n;
    }
    return 0;
}
