/*
 * qcow2 guest-to-host mapping: L1/L2 lookup, reads, allocating writes with
 * copy-on-write, zero clusters, discard, compressed clusters, and the
 * asynchronous fast path.
 */
#include "block/qcow2.h"

#include <fcntl.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "util/osdep.h"

typedef enum ClusterKind {
    CLUSTER_UNALLOCATED,
    CLUSTER_ZERO_PLAIN,     /* zero flag, no host cluster */
    CLUSTER_ZERO_ALLOC,     /* zero flag, host cluster kept for later writes */
    CLUSTER_NORMAL,
    CLUSTER_COMPRESSED,
} ClusterKind;

static ClusterKind cluster_kind(const BDRVQcow2 *s, uint64_t e)
{
    if (e & QCOW2_OFLAG_COMPRESSED) {
        return CLUSTER_COMPRESSED;
    }
    if (e & QCOW2_OFLAG_ZERO) {
        return qcow2_entry_has_host(s, e) ? CLUSTER_ZERO_ALLOC : CLUSTER_ZERO_PLAIN;
    }
    return qcow2_entry_has_host(s, e) ? CLUSTER_NORMAL : CLUSTER_UNALLOCATED;
}

static uint64_t l1_index(BDRVQcow2 *s, uint64_t off)
{
    return off >> (s->cluster_bits + s->l2_bits);
}

static uint64_t l2_index(BDRVQcow2 *s, uint64_t off)
{
    return (off >> s->cluster_bits) & (s->l2_entries - 1);
}

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

/* ---- compressed clusters ---- */

static void compressed_location(BDRVQcow2 *s, uint64_t e, uint64_t *off, size_t *len)
{
    int x = 62 - (s->cluster_bits - 8);
    uint64_t coff = e & ((1ull << x) - 1);
    uint64_t sectors = ((e & ~(QCOW2_OFLAG_COPIED | QCOW2_OFLAG_COMPRESSED)) >> x) + 1;
    *off = coff;
    *len = (size_t)(sectors * BDRV_SECTOR_SIZE - (coff & (BDRV_SECTOR_SIZE - 1)));
}

static int inflate_zlib(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    z_stream z = { 0 };
    if (inflateInit2(&z, -12) != Z_OK) {
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    int r = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    return ((r == Z_STREAM_END || r == Z_BUF_ERROR) && z.avail_out == 0) ? 0 : -1;
}

static int inflate_zstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_inBuffer ib = { in, in_len, 0 };
    ZSTD_outBuffer ob = { out, out_len, 0 };
    int ret = 0;
    if (!d) {
        return -1;
    }
    while (ob.pos < ob.size) {
        size_t before_in = ib.pos, before_out = ob.pos;
        size_t r = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(r) || (ib.pos == before_in && ob.pos == before_out)) {
            ret = -1;   /* bad data, or no progress: the stream ended too early */
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return ret;
}

int qcow2_decompress(BlockImage *img, uint64_t e, uint8_t *out, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t coff;
    size_t clen;
    compressed_location(s, e, &coff, &clen);
    if (!qcow2_offset_ok(img, coff, clen)) {
        qcow2_signal_corruption(img, errp, "compressed cluster at 0x%" PRIx64
                                " is out of range", coff);
        return -1;
    }
    uint8_t *in = xmalloc(clen);
    int ret = bfile_pread(&img->file, coff, in, clen, errp);
    if (ret == 0) {
        ret = s->compression_type == QCOW2_COMPRESSION_ZSTD
              ? inflate_zstd(in, clen, out, s->cluster_size)
              : inflate_zlib(in, clen, out, s->cluster_size);
        if (ret < 0) {
            error_setg(errp, "compressed cluster at 0x%" PRIx64 " does not decompress "
                       "to a full cluster", coff);
        }
    }
    free(in);
    return ret;
}

/*
 * One compressor's state, kept across clusters: setting up a deflate stream
 * allocates and clears a few hundred KiB, which costs more than resetting it.
 */
typedef struct Compressor {
    z_stream z;
    bool z_ready;
    ZSTD_CCtx *zstd;
} Compressor;

static void compressor_free(Compressor *c)
{
    if (c->z_ready) {
        deflateEnd(&c->z);
    }
    ZSTD_freeCCtx(c->zstd);
}

static ssize_t compress_cluster(BDRVQcow2 *s, Compressor *c, const uint8_t *in,
                                uint8_t *out, size_t cap)
{
    if (s->compression_type == QCOW2_COMPRESSION_ZSTD) {
        if (!c->zstd && !(c->zstd = ZSTD_createCCtx())) {
            return -1;
        }
        size_t r = ZSTD_compressCCtx(c->zstd, out, cap, in, s->cluster_size, 1);
        return ZSTD_isError(r) ? -1 : (ssize_t)r;
    }
    if (!c->z_ready) {
        if (deflateInit2(&c->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            return -1;
        }
        c->z_ready = true;
    } else if (deflateReset(&c->z) != Z_OK) {
        return -1;
    }
    c->z.next_in = (Bytef *)in;
    c->z.avail_in = s->cluster_size;
    c->z.next_out = out;
    c->z.avail_out = (uInt)cap;
    int r = deflate(&c->z, Z_FINISH);
    return r == Z_STREAM_END ? (ssize_t)(cap - c->z.avail_out) : -1;
}

/* ---- reads ---- */

/*
 * What guest bytes read as, at subcluster granularity: without extended L2
 * entries a subcluster is the whole cluster.
 */
typedef enum SubKind {
    SC_UNALLOC,     /* backing file, or zeros */
    SC_ZERO,
    SC_DATA,        /* at host offset in s->data */
    SC_COMPRESSED,
} SubKind;

typedef struct Mapping {
    uint64_t e, bm;     /* the L2 entry and its subcluster bitmap */
    SubKind kind;
    bool has_host;      /* a host cluster backs it (always for SC_DATA) */
    uint64_t host;      /* host offset of the queried byte, when has_host */
    uint64_t len;       /* bytes from there, within the cluster, of the same kind */
} Mapping;

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
static int lookup(BlockImage *img, uint64_t off, uint64_t max, Mapping *m, Error **errp)
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
        if (lookup(img, off, len, &m, errp) < 0) {
            return -1;
        }
        size_t n = (size_t)m.len;
        /* Merge data that continues contiguously on the host into one read. */
        while (m.kind == SC_DATA && n < len && n < (8u << 20) &&
               ((off + n) & (s->cluster_size - 1)) == 0) {
            Mapping m2;
            if (lookup(img, off + n, len - n, &m2, errp) < 0) {
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
static int flush_tables_before_free(BlockImage *img, Error **errp)
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
static uint8_t *l2_for_write(BlockImage *img, uint64_t off, Error **errp)
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
    if (l2_off && (flush_tables_before_free(img, errp) < 0 ||
                   qcow2_free_clusters(img, l2_off, s->cluster_size, errp) < 0)) {
        qcow2_cache_put(&s->l2_cache, t);
        return NULL;
    }
    return t;
}

/* Set one L2 entry (and bitmap), releasing what the old entry referenced. */
static int set_l2_entry(BlockImage *img, uint64_t off, uint64_t entry, uint64_t bm,
                        Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *t = l2_for_write(img, off, errp);
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
    if (flush_tables_before_free(img, errp) < 0) {
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
static int64_t alloc_data(BlockImage *img, uint64_t n, bool *fresh, Error **errp)
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
static int64_t alloc_host(BlockImage *img, uint64_t guest_off, uint64_t n, bool *fresh,
                          Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_has_data_file(s)) {
        *fresh = false;
        return (int64_t)(guest_off & ~(uint64_t)(s->cluster_size - 1));
    }
    return alloc_data(img, n, fresh, errp);
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
static bool needs_cow_data(BlockImage *img, uint64_t e)
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
    int64_t host = alloc_host(img, off, 1, &fresh, errp);
    if (host < 0) {
        return -1;
    }
    int ret;
    if (n == s->cluster_size) {
        ret = qcow2_data_pwrite(img, (uint64_t)host, buf, n, errp);
    } else if (!needs_cow_data(img, e) && fresh) {
        ret = qcow2_data_pwrite(img, (uint64_t)host + in_cluster, buf, n, errp);
    } else {
        uint8_t *full = blk_alloc_aligned(s->cluster_size);
        ret = needs_cow_data(img, e) ? old_cluster_contents(img, cluster_start, full, errp)
                                     : 0;
        if (ret == 0) {
            memcpy(full + in_cluster, buf, n);
            ret = qcow2_data_pwrite(img, (uint64_t)host, full, s->cluster_size, errp);
        }
        free(full);
    }
    if (ret == 0) {
        ret = set_l2_entry(img, off, (uint64_t)host | QCOW2_OFLAG_COPIED, 0, errp);
    }
    if (ret < 0) {
        free_host(img, (uint64_t)host, s->cluster_size);
    }
    return ret;
}

/* Bits of subclusters [first, last] in the allocation half of a bitmap. */
static uint64_t sc_mask(unsigned first, unsigned last)
{
    return (((uint64_t)2 << last) - 1) & ~(((uint64_t)1 << first) - 1);
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
        fresh_host = alloc_host(img, cluster_start, 1, &fresh, errp);
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
        ret = set_l2_entry(img, off, host | QCOW2_OFLAG_COPIED, bm, errp);
    }
    if (ret < 0 && fresh_host >= 0) {
        free_host(img, host, cs);
    }
    return ret;
}

/* Point n consecutive guest clusters at host clusters host, host + cs, ... (one L2 table). */
static int map_host_run(BlockImage *img, uint64_t off, uint64_t n, uint64_t host,
                        uint64_t bitmap, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *t = l2_for_write(img, off, errp);
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
    int64_t host = alloc_host(img, off, n, &fresh, errp);
    if (host < 0) {
        return -1;
    }
    size_t bytes = (size_t)(n << s->cluster_bits);
    if (qcow2_data_pwrite(img, (uint64_t)host, buf, bytes, errp) < 0) {
        free_host(img, (uint64_t)host, bytes);
        return -1;
    }
    if (map_host_run(img, off, n, (uint64_t)host, QCOW2_SC_ALLOC_ALL, errp) < 0) {
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

/* ---- compressed writes ---- */

/* Reserve @len bytes (sector aligned start) for compressed data. */
static int64_t alloc_compressed(BlockImage *img, size_t len, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t start = s->comp_next;
    if (start && start + len <= s->comp_end) {
        /* Shares the current cluster: one more reference to it. */
        if (qcow2_update_refcount(img, start, len, 1, errp) < 0) {
            return -1;
        }
    } else {
        uint64_t n = (len + s->cluster_size - 1) >> s->cluster_bits;
        bool fresh;
        int64_t off = alloc_data(img, n, &fresh, errp);
        if (off < 0) {
            return -1;
        }
        start = (uint64_t)off;
        s->comp_end = start + (n << s->cluster_bits);
    }
    s->comp_next = ROUND_UP(start + len, BDRV_SECTOR_SIZE);
    if (s->comp_next >= s->comp_end) {
        s->comp_next = 0;
    }
    return (int64_t)start;
}

/*
 * Compressing is the whole cost of a compressed write (deflate runs at tens
 * of MB/s), so a write of several clusters compresses them on every CPU at
 * once; allocation and the writes then go in guest order, so the image
 * comes out byte for byte as a one-cluster-at-a-time writer would make it.
 */
#define COMPRESS_MAX_THREADS 8

typedef struct CompressBatch {
    BDRVQcow2 *s;
    const uint8_t *in;          /* nb whole clusters (the last one zero-padded) */
    uint8_t *out;               /* nb clusters of room */
    ssize_t *clen;              /* compressed length or -1, per cluster */
    unsigned nb;
    unsigned next;              /* next cluster to take, shared by the workers */
} CompressBatch;

static void *compress_worker(void *opaque)
{
    CompressBatch *b = opaque;
    size_t cs = b->s->cluster_size;
    Compressor c = { 0 };
    for (;;) {
        unsigned i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
        if (i >= b->nb) {
            break;
        }
        b->clen[i] = compress_cluster(b->s, &c, b->in + i * cs, b->out + i * cs, cs);
    }
    compressor_free(&c);
    return NULL;
}

static unsigned compress_threads(unsigned clusters)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus > 0 ? (unsigned)cpus : 1;
    return MIN(MIN(n, (unsigned)COMPRESS_MAX_THREADS), clusters);
}

static void compress_all(CompressBatch *b)
{
    pthread_t tids[COMPRESS_MAX_THREADS];
    unsigned started = 0, want = compress_threads(b->nb);
    /* The caller is one of the workers; a thread that fails to start is just not there. */
    while (started + 1 < want && pthread_create(&tids[started], NULL, compress_worker, b) == 0) {
        started++;
    }
    compress_worker(b);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
}

/* Store one compressed cluster at guest @off, or the plain data when it does not shrink. */
static int store_compressed(BlockImage *img, uint64_t off, const uint8_t *plain, size_t len,
                            const uint8_t *comp, ssize_t clen, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    /* Incompressible data, or more than a cluster's worth of sectors: store plain. */
    if (clen < 0 || (size_t)clen > s->cluster_size - BDRV_SECTOR_SIZE) {
        return qcow2_write(img, off, plain, len, errp);
    }
    qcow2_bitmaps_mark_write(img, off, len);
    size_t padded = ROUND_UP((size_t)clen, BDRV_SECTOR_SIZE);
    int64_t host = alloc_compressed(img, padded, errp);
    if (host < 0 || qcow2_pwrite_checked(img, 0, (uint64_t)host, comp, padded, errp) < 0) {
        return -1;
    }
    int x = 62 - (s->cluster_bits - 8);
    uint64_t sectors = padded / BDRV_SECTOR_SIZE;
    uint64_t entry = QCOW2_OFLAG_COMPRESSED | ((sectors - 1) << x) | (uint64_t)host;
    return set_l2_entry(img, off, entry, 0, errp);
}

int qcow2_write_compressed(BlockImage *img, uint64_t off, const void *buf, size_t len,
                           Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t cs = s->cluster_size;
    if (qcow2_has_data_file(s)) {
        /* The spec allows no compressed clusters with an external data file. */
        error_setg(errp, "compression is not supported with an external data file");
        return -1;
    }
    if ((off & (cs - 1)) || !len || ((len & (cs - 1)) && off + len != img->size)) {
        error_setg(errp, "compressed writes must cover whole clusters");
        return -1;
    }
    unsigned nb = (unsigned)((len + cs - 1) / cs);
    const uint8_t *in = buf;
    uint8_t *tail = NULL;
    if (len & (cs - 1)) {
        /* The image ends inside the last cluster: compress it padded with zeros. */
        tail = blk_alloc_aligned(nb * cs);
        memcpy(tail, buf, len);
        in = tail;
    }
    CompressBatch b = {
        .s = s, .in = in, .nb = nb,
        .out = blk_alloc_aligned(nb * cs),
        .clen = xmalloc(sizeof(ssize_t) * nb),
    };
    compress_all(&b);
    int ret = 0;
    for (unsigned i = 0; i < nb && ret == 0; i++) {
        size_t l = MIN(cs, len - (size_t)i * cs);
        ret = store_compressed(img, off + (uint64_t)i * cs, (const uint8_t *)buf + (size_t)i * cs,
                               l, b.out + (size_t)i * cs, b.clen[i], errp);
    }
    free(b.out);
    free(b.clen);
    free(tail);
    return ret;
}

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
        uint8_t *t = l2_for_write(img, o, errp);
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
    if (nb_released && flush_tables_before_free(img, ret < 0 ? NULL : errp) < 0) {
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
    return set_l2_entry(img, sa, e, bm, errp);
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
    if (lookup(img, off, len, &m, errp) < 0) {
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
        if (lookup(img, off + n, len - n, &m2, errp) < 0) {
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
        int64_t host = alloc_host(img, off, n, &fresh, errp);
        if (host < 0) {
            return -1;
        }
        if (map_host_run(img, off, n, (uint64_t)host, bm, errp) < 0) {
            return -1;
        }
        off += n * cs;
    }
    return 0;
}

/* ---- asynchronous fast path ---- */

static Qcow2InflightAlloc *find_inflight(BDRVQcow2 *s, uint64_t guest_cluster)
{
    for (Qcow2InflightAlloc *a = s->inflight; a; a = a->next) {
        if (a->guest_cluster == guest_cluster) {
            return a;
        }
    }
    return NULL;
}

/* The data of an allocating write is on disk: now the L2 entry may point to it. */
static void commit_alloc(BlockImage *img, BlockAioReq *req)
{
    BDRVQcow2 *s = img->opaque;
    Qcow2InflightAlloc *a = req->commit_data;
    Error *err = NULL;
    if (req->ret == 0 &&
        set_l2_entry(img, a->guest_cluster << s->cluster_bits,
                     a->host_offset | QCOW2_OFLAG_COPIED, 0, &err) < 0) {
        req->ret = -EIO;
    }
    if (req->ret < 0) {
        qcow2_free_clusters(img, a->host_offset, s->cluster_size, NULL);
    }
    error_free(err);
    for (Qcow2InflightAlloc **pp = &s->inflight; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    }
    BlockAioReq *w = a->waiters;
    free(a);
    while (w) {
        BlockAioReq *next = w->next;
        blk_aio_replan(w);
        w = next;
    }
}

static BlockAioPlan plan_alloc(BlockImage *img, BlockAioReq *req, uint64_t e)
{
    BDRVQcow2 *s = img->opaque;
    Error *err = NULL;
    if (needs_cow_data(img, e) || cluster_kind(s, e) == CLUSTER_ZERO_ALLOC) {
        return BLK_PLAN_SYNC;
    }
    /* Make sure the L2 table exists and is ours before the data goes out. */
    uint8_t *t = l2_for_write(img, req->offset, &err);
    if (!t) {
        error_free(err);
        return BLK_PLAN_SYNC;
    }
    qcow2_cache_put(&s->l2_cache, t);
    bool fresh;
    int64_t host = alloc_data(img, 1, &fresh, &err);
    if (host < 0 || (!fresh && bfile_zero_range(&img->file, (uint64_t)host,
                                                s->cluster_size, &err) < 0)) {
        error_free(err);
        req->ret = -EIO;
        return BLK_PLAN_DONE;
    }
    Qcow2InflightAlloc *a = xzalloc(sizeof(*a));
    a->guest_cluster = req->offset >> s->cluster_bits;
    a->host_offset = (uint64_t)host;
    a->next = s->inflight;
    s->inflight = a;
    req->commit = commit_alloc;
    req->commit_data = a;
    req->host_offset = (uint64_t)host + (req->offset & (s->cluster_size - 1));
    return BLK_PLAN_DIRECT;
}

/*
 * A write straight to the cluster an L2 entry names: the entry came from
 * the image, so the place must not hold metadata.
 */
static BlockAioPlan plan_overwrite(BlockImage *img, BlockAioReq *req)
{
    Error *err = NULL;
    if (qcow2_data_write_check(img, req->host_offset, req->len, &err) < 0) {
        error_free(err);
        req->ret = -EIO;
        return BLK_PLAN_DONE;
    }
    return BLK_PLAN_DIRECT;
}

static void zero_iov(BlockAioReq *req)
{
    for (int i = 0; i < req->iovcnt; i++) {
        memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
    }
}

/*
 * Extended L2 entries or an external data file: requests that need no
 * metadata change go the fast way (to the data file when there is one); the
 * rest take the synchronous path, which knows subclusters and allocation.
 */
static BlockAioPlan plan_special(BlockImage *img, BlockAioReq *req)
{
    BDRVQcow2 *s = img->opaque;
    Mapping m;
    Error *err = NULL;
    if (lookup(img, req->offset, req->len, &m, &err) < 0) {
        error_free(err);
        req->ret = -EIO;
        return BLK_PLAN_DONE;
    }
    bool whole = m.len >= req->len;
    bool direct_ok = whole && m.kind == SC_DATA;
    req->host_file = s->data;
    if (req->type == BLK_AIO_READ) {
        if (direct_ok) {
            req->host_offset = m.host;
            return BLK_PLAN_DIRECT;
        }
        if (whole && (m.kind == SC_ZERO || (m.kind == SC_UNALLOC && !img->backing))) {
            zero_iov(req);
            req->ret = 0;
            return BLK_PLAN_DONE;
        }
        return BLK_PLAN_SYNC;
    }
    if (direct_ok && (m.e & QCOW2_OFLAG_COPIED) && !s->inflight) {
        qcow2_bitmaps_mark_write(img, req->offset, req->len);
        req->host_offset = m.host;
        return plan_overwrite(img, req);
    }
    return BLK_PLAN_SYNC;
}

/*
 * A request over several clusters goes straight to the file when every
 * cluster is allocated data (for a write: and owned, COPIED) and they lie
 * back to back in the file, as a sequentially written image has them: one
 * host request instead of the synchronous path, which would stop the queue
 * and copy through a bounce buffer. Anything else takes that path.
 */
static BlockAioPlan plan_multi_cluster(BlockImage *img, BlockAioReq *req)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t first = req->offset >> s->cluster_bits;
    uint64_t last = (req->offset + req->len - 1) >> s->cluster_bits;
    uint64_t host0 = 0;
    bool write = req->type == BLK_AIO_WRITE;
    if (s->ext_l2 || qcow2_has_data_file(s) || (write && s->inflight && img->backing)) {
        return BLK_PLAN_SYNC;
    }
    for (uint64_t c = first; c <= last; c++) {
        uint64_t e, bm;
        Error *err = NULL;
        if ((write && find_inflight(s, c)) ||
            qcow2_get_l2_entry(img, c << s->cluster_bits, &e, &bm, &err) < 0) {
            error_free(err);
            return BLK_PLAN_SYNC;
        }
        uint64_t host = e & QCOW2_OFFSET_MASK;
        if (cluster_kind(s, e) != CLUSTER_NORMAL || (write && !(e & QCOW2_OFLAG_COPIED)) ||
            (c > first && host != host0 + ((c - first) << s->cluster_bits))) {
            return BLK_PLAN_SYNC;
        }
        if (c == first) {
            host0 = host;
        }
    }
    req->host_offset = host0 + (req->offset & (s->cluster_size - 1));
    if (!write) {
        return BLK_PLAN_DIRECT;
    }
    qcow2_bitmaps_mark_write(img, req->offset, req->len);
    return plan_overwrite(img, req);
}

BlockAioPlan qcow2_aio_plan(BlockImage *img, BlockAioReq *req)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t in_cluster = req->offset & (s->cluster_size - 1);
    if (in_cluster + req->len > s->cluster_size) {
        return req->type == BLK_AIO_FLUSH ? BLK_PLAN_SYNC : plan_multi_cluster(img, req);
    }
    if (s->ext_l2 || qcow2_has_data_file(s)) {
        return plan_special(img, req);
    }
    if (req->type == BLK_AIO_WRITE) {
        Qcow2InflightAlloc *a = find_inflight(s, req->offset >> s->cluster_bits);
        if (a) {
            req->next = a->waiters;
            a->waiters = req;
            return BLK_PLAN_WAIT;
        }
    }
    uint64_t e, bm;
    Error *err = NULL;
    if (qcow2_get_l2_entry(img, req->offset, &e, &bm, &err) < 0) {
        error_free(err);
        req->ret = -EIO;
        return BLK_PLAN_DONE;
    }
    ClusterKind k = cluster_kind(s, e);
    if (req->type == BLK_AIO_READ) {
        if (k == CLUSTER_NORMAL) {
            req->host_offset = (e & QCOW2_OFFSET_MASK) + in_cluster;
            return BLK_PLAN_DIRECT;
        }
        if (k == CLUSTER_ZERO_PLAIN || k == CLUSTER_ZERO_ALLOC ||
            (k == CLUSTER_UNALLOCATED && !img->backing)) {
            for (int i = 0; i < req->iovcnt; i++) {
                memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
            }
            req->ret = 0;
            return BLK_PLAN_DONE;
        }
        return BLK_PLAN_SYNC;
    }
    if (s->inflight && img->backing) {
        return BLK_PLAN_SYNC;
    }
    qcow2_bitmaps_mark_write(img, req->offset, req->len);
    if (k == CLUSTER_NORMAL && (e & QCOW2_OFLAG_COPIED)) {
        req->host_offset = (e & QCOW2_OFFSET_MASK) + in_cluster;
        return plan_overwrite(img, req);
    }
    return plan_alloc(img, req, e);
}
