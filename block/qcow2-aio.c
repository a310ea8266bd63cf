/*
 * qcow2 asynchronous fast path: requests that need no metadata change go
 * straight to the host file; allocating writes to a fresh cluster go there
 * too and set their L2 entry once the data is on disk.
 */
#include "block/qcow2-map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

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
        qcow2_set_l2_entry(img, a->guest_cluster << s->cluster_bits,
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
    if (qcow2_needs_cow_data(img, e) || cluster_kind(s, e) == CLUSTER_ZERO_ALLOC) {
        return BLK_PLAN_SYNC;
    }
    /* Make sure the L2 table exists and is ours before the data goes out. */
    uint8_t *t = qcow2_l2_for_write(img, req->offset, &err);
    if (!t) {
        error_free(err);
        return BLK_PLAN_SYNC;
    }
    qcow2_cache_put(&s->l2_cache, t);
    bool fresh;
    int64_t host = qcow2_alloc_data(img, 1, &fresh, &err);
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
    if (qcow2_lookup(img, req->offset, req->len, &m, &err) < 0) {
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
