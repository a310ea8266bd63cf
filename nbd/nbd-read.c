/*
 * NBD_CMD_READ, the transmission phase's hot path.
 *
 * When the export has an asynchronous queue (NbdExportConfig.queue or
 * queue_depth), a connection keeps several reads in flight. Each read is
 * laid out at once as one buffer holding its whole reply (the simple reply
 * header and the data, or the structured chunks: data chunks with room for
 * their bytes, hole chunks complete), and its data pieces are read into
 * that buffer through the block layer's queue. When the last piece lands
 * the buffer joins the connection's send list as it is. Replies thus leave
 * in completion order, which NBD allows for replies to different requests,
 * and each reply leaves in one piece, never interleaved with another's
 * chunks; the last chunk of a structured read is the one flagged DONE.
 *
 * Only reads overlap one another. A write, trim, write-zeroes, flush or
 * disconnect waits (its header left unread) until the connection's reads
 * have finished, so nothing passes a read sent before it and a flush or
 * disconnect finds every earlier request answered. Block status and cache
 * requests do not wait: they change nothing.
 *
 * The data lands page-aligned in the reply buffer, so images opened with
 * O_DIRECT are read in place; a read whose data is not in page-aligned
 * units, or that has more than one data chunk (holes between data), runs
 * synchronously into the byte queue, as every read does without a queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd-engine.h"
#include "nbd/nbd-proto.h"
#include "util/osdep.h"

#define MAX_READS       16              /* in flight per connection */
#define MAX_READ_BYTES  (16u << 20)     /* their data, unless a single read is larger */
#define MAX_PIECES      16              /* extents of one background read (one of data) */
#define SPARE_MAX_CAP   (4u << 20)      /* larger reply buffers are not kept */
#define SPARE_BYTES     (8u << 20)      /* sent reply buffers kept per connection */
#define DATA_ALIGN      4096            /* O_DIRECT needs buffer, offset, length so */

typedef struct Extent {
    uint64_t off, len;
    bool zero;
} Extent;

typedef struct NbdRead {
    NbdConn *c;
    NbdExp *e;
    NbdSeg *seg;
    uint64_t cookie;
    uint32_t len;
    bool structured;
    unsigned pending;           /* pieces not yet landed (+1 while submitting) */
    int ret;                    /* first error, -errno */
    struct iovec iov[MAX_PIECES];
} NbdRead;

/*
 * The next extent of [off, end) for a read reply: with @sparse, runs of
 * zeros and of data as the export reports them (neighbours of the same
 * kind merged); otherwise, or when the status is unknown, data.
 */
static void next_extent(NbdExp *e, uint64_t off, uint64_t end, bool sparse, Extent *x)
{
    uint64_t n = end - off;
    uint32_t flags = 0, depth;
    if (sparse && !nbd_exp_status(e, off, n, &n, &flags, &depth)) {
        n = end - off, flags = 0;
    }
    while (sparse && off + n < end) {
        uint64_t m;
        uint32_t f2;
        if (!nbd_exp_status(e, off + n, end - off - n, &m, &f2, &depth) ||
            (f2 & NBD_STATE_ZERO) != (flags & NBD_STATE_ZERO)) {
            break;
        }
        n += m;
    }
    x->off = off;
    x->len = n;
    x->zero = flags & NBD_STATE_ZERO;
}

/* ---- synchronous ---- */

static void read_sync(NbdConn *c)
{
    Request *r = &c->req;
    NbdExp *e = c->exp;
    size_t mark = nbd_out_backlog(c);       /* relative: compaction moves out_pos */
    Error *err = NULL;
    if (!c->structured) {
        nbd_simple_reply(c, 0);
        uint8_t *data = nbd_out_reserve(c, r->len);
        int ret = r->len ? blk_pread(e->img, r->offset, data, r->len, &err) : 0;
        if (ret < 0) {
            c->out_len = c->out_pos + mark;
            nbd_error_reply(c, NBD_EIO, error_get_pretty(err));
            error_free(err);
        }
        return;
    }
    if (r->len == 0) {
        nbd_chunk(c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
        return;
    }
    /* Zero ranges go as hole chunks unless the client wants one piece (DF). */
    bool sparse = !(r->flags & NBD_CMD_FLAG_DF);
    uint64_t off = r->offset, end = r->offset + r->len;
    int ret = 0;
    while (off < end && ret == 0) {
        Extent x;
        next_extent(e, off, end, sparse, &x);
        uint16_t done = x.off + x.len == end ? NBD_REPLY_FLAG_DONE : 0;
        if (x.zero) {
            uint8_t *p = nbd_chunk(c, done, NBD_REPLY_TYPE_OFFSET_HOLE, 12);
            p = put64(p, x.off);
            put32(p, (uint32_t)x.len);
        } else {
            uint8_t *p = nbd_chunk(c, done, NBD_REPLY_TYPE_OFFSET_DATA, 8 + x.len);
            p = put64(p, x.off);
            ret = blk_pread(e->img, x.off, p, x.len, &err);
        }
        off += x.len;
    }
    if (ret < 0) {
        c->out_len = c->out_pos + mark;
        nbd_error_reply(c, NBD_EIO, error_get_pretty(err));
        error_free(err);
    }
}

/* ---- in the background ---- */

static NbdSeg *seg_new(size_t len)
{
    NbdSeg *s = xzalloc(sizeof(*s));
    s->buf = s->data = xmalloc(MAX(len, 1u));
    s->len = s->cap = len;
    return s;
}

static void seg_free(NbdSeg *s)
{
    free(s->buf);
    free(s);
}

/*
 * A reply buffer of @len bytes whose byte @lead sits on a page boundary
 * (where the data goes, so O_DIRECT reads can land there), a sent one
 * again when one is large enough: a fresh large allocation costs a page
 * fault and a zeroed page per 4 KiB, as much as the copy of the data.
 */
static NbdSeg *seg_get(NbdConn *c, size_t lead, size_t len)
{
    size_t pad = (DATA_ALIGN - lead % DATA_ALIGN) % DATA_ALIGN;
    NbdSeg *s = NULL;
    for (NbdSeg **pp = &c->spare; *pp; pp = &(*pp)->next) {
        if ((*pp)->cap >= pad + len) {
            s = *pp;
            *pp = s->next;
            c->spare_bytes -= s->cap;
            break;
        }
    }
    if (!s) {
        s = xzalloc(sizeof(*s));
        s->cap = pad + len;
        if (posix_memalign((void **)&s->buf, DATA_ALIGN, s->cap)) {
            free(s);
            return NULL;
        }
        s->aligned = true;
    }
    s->next = NULL;
    s->data = s->buf + pad;
    s->len = len;
    s->pos = 0;
    return s;
}

void nbd_read_seg_sent(NbdConn *c, NbdSeg *s)
{
    if (!s->aligned || s->cap > SPARE_MAX_CAP || c->spare_bytes + s->cap > SPARE_BYTES) {
        seg_free(s);
        return;
    }
    s->next = c->spare;
    c->spare = s;
    c->spare_bytes += s->cap;
}

static uint8_t *chunk_header(uint8_t *p, uint64_t cookie, uint16_t flags, uint16_t type,
                             uint32_t len)
{
    p = put32(p, NBD_STRUCTURED_REPLY_MAGIC);
    p = put16(p, flags);
    p = put16(p, type);
    p = put64(p, cookie);
    return put32(p, len);
}

static NbdSeg *error_seg(const NbdRead *rd)
{
    if (!rd->structured) {
        NbdSeg *s = seg_new(NBD_SIMPLE_REPLY_SIZE);
        uint8_t *p = put32(s->data, NBD_SIMPLE_REPLY_MAGIC);
        p = put32(p, NBD_EIO);
        put64(p, rd->cookie);
        return s;
    }
    const char *msg = strerror(-rd->ret);
    size_t n = MIN(strlen(msg), (size_t)1024);
    NbdSeg *s = seg_new(NBD_CHUNK_HEADER_SIZE + 6 + n);
    uint8_t *p = chunk_header(s->data, rd->cookie, NBD_REPLY_FLAG_DONE,
                              NBD_REPLY_TYPE_ERROR, 6 + n);
    p = put32(p, NBD_EIO);
    p = put16(p, n);
    memcpy(p, msg, n);
    return s;
}

static void conn_destroy(NbdConn *c)
{
    free(c);
}

/*
 * The read's last piece landed (engine lock held, any thread; @owner: the
 * connection's own thread, inside the engine).
 */
static void read_finish(NbdRead *rd, bool owner)
{
    NbdConn *c = rd->c;
    NbdSeg *s = rd->seg;
    if (rd->ret < 0) {
        seg_free(s);
        s = error_seg(rd);
    }
    rd->e->reads_in_flight--;
    c->reads--;
    c->read_bytes -= rd->len;
    free(rd);
    if (c->orphan) {
        seg_free(s);
        if (!c->reads) {
            conn_destroy(c);
        }
        return;
    }
    if (c->done_tail) {
        c->done_tail->next = s;
    } else {
        c->done_head = s;
    }
    c->done_tail = s;
    if (!owner && c->notify) {
        c->notify(c->notify_opaque);
    }
}

static void piece_done(void *opaque, int ret)
{
    NbdRead *rd = opaque;
    if (ret < 0 && !rd->ret) {
        rd->ret = ret;
    }
    if (--rd->pending == 0) {
        read_finish(rd, false);
    }
}

/* Start the current request in the background; false: do it synchronously. */
static bool read_async(NbdConn *c)
{
    Request *r = &c->req;
    NbdExp *e = c->exp;
    Extent x[MAX_PIECES];
    unsigned n = 0, ndata = 0;
    size_t total, lead = 0;     /* reply bytes before the data */
    if (!c->structured) {
        x[n++] = (Extent) { r->offset, r->len, false };
        lead = NBD_SIMPLE_REPLY_SIZE;
        total = NBD_SIMPLE_REPLY_SIZE + r->len;
    } else {
        bool sparse = !(r->flags & NBD_CMD_FLAG_DF);
        uint64_t off = r->offset, end = r->offset + r->len;
        total = 0;
        while (off < end) {
            if (n == MAX_PIECES) {
                return false;                   /* too fragmented to track */
            }
            next_extent(e, off, end, sparse, &x[n]);
            if (!x[n].zero) {
                if (ndata++) {
                    return false;       /* a second data chunk could not be aligned */
                }
                lead = total + NBD_CHUNK_HEADER_SIZE + 8;
            }
            total += NBD_CHUNK_HEADER_SIZE + (x[n].zero ? 12 : 8 + x[n].len);
            off += x[n++].len;
        }
    }
    /* The data's offset and length fit O_DIRECT (whatever the image's mode). */
    for (unsigned i = 0; i < n; i++) {
        if (!(c->structured && x[i].zero) &&
            (x[i].off % DATA_ALIGN || x[i].len % DATA_ALIGN)) {
            return false;
        }
    }
    NbdSeg *seg = seg_get(c, lead, total);
    if (!seg) {
        return false;
    }
    NbdRead *rd = xzalloc(sizeof(*rd));
    rd->c = c;
    rd->e = e;
    rd->cookie = r->cookie;
    rd->len = r->len;
    rd->structured = c->structured;
    rd->seg = seg;
    uint8_t *p = rd->seg->data;
    unsigned nio = 0;
    if (!c->structured) {
        p = put32(p, NBD_SIMPLE_REPLY_MAGIC);
        p = put32(p, 0);
        p = put64(p, r->cookie);
        rd->iov[nio++] = (struct iovec) { p, r->len };
    } else {
        for (unsigned i = 0; i < n; i++) {
            uint16_t done = i + 1 == n ? NBD_REPLY_FLAG_DONE : 0;
            if (x[i].zero) {
                p = chunk_header(p, r->cookie, done, NBD_REPLY_TYPE_OFFSET_HOLE, 12);
                p = put64(p, x[i].off);
                p = put32(p, (uint32_t)x[i].len);
            } else {
                p = chunk_header(p, r->cookie, done, NBD_REPLY_TYPE_OFFSET_DATA,
                                 8 + x[i].len);
                p = put64(p, x[i].off);
                rd->iov[nio++] = (struct iovec) { p, x[i].len };
                p += x[i].len;
            }
        }
    }
    c->reads++;
    c->read_bytes += r->len;
    e->reads_in_flight++;
    /* One extra count while submitting: no piece may finish the read early. */
    rd->pending = nio + 1;
    unsigned io = 0;
    for (unsigned i = 0; i < n; i++) {
        if (c->structured && x[i].zero) {
            continue;
        }
        int ret = blk_aio_preadv(e->queue, x[i].off, &rd->iov[io++], 1, piece_done, rd);
        if (ret < 0) {
            if (!rd->ret) {
                rd->ret = ret;
            }
            rd->pending--;
        }
    }
    blk_queue_submit(e->queue);
    if (--rd->pending == 0) {
        read_finish(rd, true);
    }
    if (e->own_queue) {
        /* Data in the page cache is often read by now (io_uring does it
         * inline): reply without a trip through the queue's thread. */
        blk_queue_process(e->queue, false);
    }
    return true;
}

void nbd_read(NbdConn *c)
{
    if (c->exp->queue && c->req.len && read_async(c)) {
        return;
    }
    read_sync(c);
}

bool nbd_read_must_wait(const NbdConn *c, const Request *r)
{
    if (!c->reads) {
        return false;
    }
    switch (r->type) {
    case NBD_CMD_READ:
        return c->reads >= MAX_READS || c->read_bytes + r->len > MAX_READ_BYTES;
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
    case NBD_CMD_FLUSH:
    case NBD_CMD_DISC:
        return true;
    default:
        return false;
    }
}

void nbd_read_collect(NbdConn *c)
{
    if (!c->done_head) {
        return;
    }
    for (NbdSeg *s = c->done_head; s; s = s->next) {
        c->seg_bytes += s->len;
    }
    if (c->seg_tail) {
        c->seg_tail->next = c->done_head;
    } else {
        c->seg_head = c->done_head;
    }
    c->seg_tail = c->done_tail;
    c->done_head = c->done_tail = NULL;
}

static void free_list(NbdSeg *s)
{
    while (s) {
        NbdSeg *next = s->next;
        seg_free(s);
        s = next;
    }
}

void nbd_read_drop_segments(NbdConn *c)
{
    free_list(c->done_head);
    free_list(c->seg_head);
    free_list(c->spare);
    c->done_head = c->done_tail = c->seg_head = c->seg_tail = c->spare = NULL;
    c->seg_bytes = 0;
    c->spare_bytes = 0;
}
