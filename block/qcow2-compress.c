/*
 * qcow2 compressed clusters: where one lies in the file, decompressing it
 * (deflate or zstd), and compressed writes, compressed on every CPU.
 */
#include "block/qcow2-map.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "util/osdep.h"
#include "util/seccomp-hook.h"

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
        int64_t off = qcow2_alloc_data(img, n, &fresh, errp);
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

/* A helper thread's entry; the calling thread compresses too, under its own list. */
static void *compress_thread(void *opaque)
{
    seccomp_thread_enter(SANDBOX_COMPRESS_WORKER);      /* once the sandbox is on */
    return compress_worker(opaque);
}

static unsigned compress_threads(unsigned clusters)
{
    /* The CPUs this thread may run on: a system call, where sysconf() would
     * open a file in /sys (which a confined thread may not). */
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    unsigned n = cpus > 0 ? (unsigned)cpus : 1;
    return MIN(MIN(n, (unsigned)COMPRESS_MAX_THREADS), clusters);
}

static void compress_all(CompressBatch *b)
{
    pthread_t tids[COMPRESS_MAX_THREADS];
    unsigned started = 0, want = compress_threads(b->nb);
    /* The caller is one of the workers; a thread that fails to start is just not there. */
    while (started + 1 < want && pthread_create(&tids[started], NULL, compress_thread, b) == 0) {
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
    return qcow2_set_l2_entry(img, off, entry, 0, errp);
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
