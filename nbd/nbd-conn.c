/*
 * The NBD protocol engine: one client's handshake (fixed newstyle, options,
 * metadata contexts) and transmission phase (requests and their simple or
 * structured replies). It consumes the bytes the caller received and
 * queues the bytes to send; it never touches a socket, so it runs the same
 * under the server thread and under the fuzz target.
 *
 * Everything the client sends is checked before use. A request that breaks
 * the protocol in a way the reply stream can survive gets an error reply;
 * anything else (bad magic, a write payload over the limit, an option
 * longer than allowed, unknown client flags) closes the connection.
 */
#include <endian.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/node.h"
#include "nbd/nbd-engine.h"
#include "nbd/nbd-proto.h"
#include "util/osdep.h"

/* ---- output queue ---- */

/* Room for @n more bytes at the end of the queue; they count once written. */
uint8_t *nbd_out_reserve(NbdConn *c, size_t n)
{
    if (c->out_pos == c->out_len) {
        c->out_pos = c->out_len = 0;
    }
    if (c->out_len + n > c->out_cap) {
        /* Move the backlog down only when that is cheap (it is no longer than
         * the space it frees); else grow: the backlog is bounded anyway. */
        if (c->out_pos && nbd_out_backlog(c) <= c->out_pos) {
            memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
            c->out_len -= c->out_pos;
            c->out_pos = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = MAX(c->out_cap * 2, c->out_len + n);
            c->out = xrealloc(c->out, cap);
            c->out_cap = cap;
        }
    }
    uint8_t *p = c->out + c->out_len;
    c->out_len += n;
    return p;
}

static void out_append(NbdConn *c, const void *data, size_t n)
{
    memcpy(nbd_out_reserve(c, n), data, n);
}

size_t nbd_out_backlog(const NbdConn *c)
{
    return c->out_len - c->out_pos;
}

static void die(NbdConn *c, const char *why)
{
    if (c->state != NBD_CONN_DEAD) {
        c->state = NBD_CONN_DEAD;
        c->why = why;
    }
}

/* ---- handshake ---- */

static void opt_reply(NbdConn *c, uint32_t type, const void *data, uint32_t len)
{
    uint8_t *p = nbd_out_reserve(c, 20 + len);
    p = put64(p, NBD_REP_MAGIC);
    p = put32(p, c->opt);
    p = put32(p, type);
    p = put32(p, len);
    if (len) {
        memcpy(p, data, len);
    }
}

static void opt_error(NbdConn *c, uint32_t type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void opt_error(NbdConn *c, uint32_t type, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    opt_reply(c, type, msg, n < 0 ? 0 : (uint32_t)MIN((size_t)n, sizeof(msg) - 1));
}

static void meta_clear(NbdConn *c)
{
    free(c->meta_export);
    free(c->meta_bitmap);
    c->meta_export = NULL;
    c->meta_bitmap = NULL;
    c->meta_base = c->meta_depth = false;
    c->meta_nr_bitmaps = c->meta_count = 0;
}

/* A length-prefixed (32-bit) string at *p within [*p, end): copy to @out. */
static bool take_string(const uint8_t **p, const uint8_t *end, char *out, size_t outsz)
{
    if (end - *p < 4) {
        return false;
    }
    uint32_t n = get32(*p);
    *p += 4;
    if (n > (uint64_t)(end - *p) || n >= outsz) {
        return false;
    }
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    return memchr(out, '\0', n) == NULL;
}

static void send_export_info(NbdConn *c, NbdExp *e, const uint8_t *reqs, uint16_t nreqs)
{
    uint8_t buf[12 + NBD_MAX_STRING];
    uint8_t *p = buf;
    p = put16(p, NBD_INFO_EXPORT);
    p = put64(p, e->size);
    p = put16(p, e->tflags);
    opt_reply(c, NBD_REP_INFO, buf, p - buf);
    bool sent_name = false, sent_desc = false;
    for (uint16_t i = 0; i < nreqs; i++) {
        uint16_t t = get16(reqs + 2 * i);
        if (t == NBD_INFO_NAME && !sent_name) {
            size_t n = strlen(e->name);
            put16(buf, NBD_INFO_NAME);
            memcpy(buf + 2, e->name, n);
            opt_reply(c, NBD_REP_INFO, buf, 2 + n);
            sent_name = true;
        } else if (t == NBD_INFO_DESCRIPTION && e->description && !sent_desc) {
            size_t n = strlen(e->description);
            put16(buf, NBD_INFO_DESCRIPTION);
            memcpy(buf + 2, e->description, n);
            opt_reply(c, NBD_REP_INFO, buf, 2 + n);
            sent_desc = true;
        }
    }
    /* Block sizes are always given: any alignment works, writes are cached. */
    p = put16(buf, NBD_INFO_BLOCK_SIZE);
    p = put32(p, 1);
    p = put32(p, e->pref_block);
    p = put32(p, NBD_MAX_PAYLOAD);
    opt_reply(c, NBD_REP_INFO, buf, p - buf);
}

static void enter_transmission(NbdConn *c, NbdExp *e)
{
    if (c->meta_export && strcmp(c->meta_export, e->name)) {
        meta_clear(c);      /* contexts chosen for another export do not carry over */
    }
    if (c->meta_export && c->meta_nr_bitmaps != e->nr_bitmaps) {
        meta_clear(c);
    }
    c->exp = e;
    e->clients++;
    c->phase = PH_REQ_HEADER;
}

static void opt_go(NbdConn *c, const uint8_t *d, uint32_t len)
{
    char name[NBD_MAX_STRING + 1];
    const uint8_t *p = d, *end = d + len;
    if (!take_string(&p, end, name, sizeof(name)) || end - p < 2) {
        opt_error(c, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    uint16_t nreqs = get16(p);
    p += 2;
    if ((size_t)(end - p) != 2u * nreqs) {
        opt_error(c, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    NbdExp *e = nbd_exp_find(c->list, name);
    if (!e) {
        opt_error(c, NBD_REP_ERR_UNKNOWN, "export '%.200s' not present", name);
        return;
    }
    send_export_info(c, e, p, nreqs);
    opt_reply(c, NBD_REP_ACK, NULL, 0);
    if (c->opt == NBD_OPT_GO) {
        enter_transmission(c, e);
    }
}

static void opt_export_name(NbdConn *c, const uint8_t *d, uint32_t len)
{
    char name[NBD_MAX_STRING + 1];
    if (len > NBD_MAX_STRING) {
        die(c, "export name too long");
        return;
    }
    memcpy(name, d, len);
    name[len] = '\0';
    NbdExp *e = memchr(name, '\0', len) ? NULL : nbd_exp_find(c->list, name);
    if (!e) {
        die(c, "unknown export name (NBD_OPT_EXPORT_NAME)");   /* no way to say so */
        return;
    }
    uint8_t buf[10 + 124];
    uint8_t *p = put64(buf, e->size);
    p = put16(p, e->tflags);
    memset(p, 0, 124);
    out_append(c, buf, c->no_zeroes ? 10 : sizeof(buf));
    enter_transmission(c, e);
}

static void opt_list(NbdConn *c, uint32_t len)
{
    if (len) {
        opt_error(c, NBD_REP_ERR_INVALID, "no data expected for NBD_OPT_LIST");
        return;
    }
    for (NbdExp *e = c->list->head; e; e = e->next) {
        size_t n = strlen(e->name), dn = e->description ? strlen(e->description) : 0;
        uint8_t *buf = xmalloc(4 + n + dn);
        put32(buf, n);
        memcpy(buf + 4, e->name, n);
        memcpy(buf + 4 + n, e->description ? e->description : "", dn);
        opt_reply(c, NBD_REP_SERVER, buf, 4 + n + dn);
        free(buf);
    }
    opt_reply(c, NBD_REP_ACK, NULL, 0);
}

static void meta_reply(NbdConn *c, uint32_t id, const char *name)
{
    size_t n = strlen(name);
    uint8_t *buf = xmalloc(4 + n);
    put32(buf, id);
    memcpy(buf + 4, name, n);
    opt_reply(c, NBD_REP_META_CONTEXT, buf, 4 + n);
    free(buf);
}

/*
 * Which of @e's contexts @q names: base, depth and bitmaps[] are set.
 * LIST takes the namespace prefixes ("base:", "qemu:", "qemu:dirty-bitmap:")
 * as wildcards; SET takes only full names.
 */
static void meta_match(NbdExp *e, const char *q, bool list, bool *base, bool *depth,
                       bool *bitmaps)
{
    if (!strcmp(q, "base:allocation") || (list && !strcmp(q, "base:"))) {
        *base = true;
    }
    bool qemu_all = list && !strcmp(q, "qemu:");
    if (e->allocation_depth && (qemu_all || !strcmp(q, "qemu:allocation-depth"))) {
        *depth = true;
    }
    const char *prefix = "qemu:dirty-bitmap:";
    size_t pl = strlen(prefix);
    bool all_bitmaps = qemu_all || (list && !strcmp(q, prefix));
    for (unsigned i = 0; i < e->nr_bitmaps; i++) {
        if (all_bitmaps || (!strncmp(q, prefix, pl) && !strcmp(q + pl, e->bitmaps[i].name))) {
            bitmaps[i] = true;
        }
    }
}

static void opt_meta(NbdConn *c, const uint8_t *d, uint32_t len)
{
    bool list = c->opt == NBD_OPT_LIST_META_CONTEXT;
    char name[NBD_MAX_STRING + 1];
    if (!c->structured) {
        opt_error(c, NBD_REP_ERR_INVALID,
                  "request option '%s' when structured reply is not negotiated",
                  list ? "list meta context" : "set meta context");
        return;
    }
    const uint8_t *p = d, *end = d + len;
    if (!take_string(&p, end, name, sizeof(name)) || end - p < 4) {
        opt_error(c, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    uint32_t nq = get32(p);
    p += 4;
    if (nq > (uint64_t)(end - p) / 4) {
        opt_error(c, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    NbdExp *e = nbd_exp_find(c->list, name);
    if (!e) {
        opt_error(c, NBD_REP_ERR_UNKNOWN, "export '%.200s' not present", name);
        return;
    }
    bool base = false, depth = false;
    bool *bitmaps = xzalloc(sizeof(bool) * (e->nr_bitmaps + 1));
    if (nq == 0 && list) {
        meta_match(e, "base:", true, &base, &depth, bitmaps);
        meta_match(e, "qemu:", true, &base, &depth, bitmaps);
    }
    char *q = xmalloc(NBD_MAX_STRING + 1);
    for (uint32_t i = 0; i < nq; i++) {
        if (!take_string(&p, end, q, NBD_MAX_STRING + 1)) {
            opt_error(c, NBD_REP_ERR_INVALID, "Invalid request length");
            free(q);
            free(bitmaps);
            return;
        }
        meta_match(e, q, list, &base, &depth, bitmaps);
    }
    free(q);
    if (p != end) {
        opt_error(c, NBD_REP_ERR_INVALID, "Invalid request length");
        free(bitmaps);
        return;
    }
    unsigned count = base + depth;
    if (base) {
        meta_reply(c, CTX_BASE, "base:allocation");
    }
    if (depth) {
        meta_reply(c, CTX_DEPTH, "qemu:allocation-depth");
    }
    for (unsigned i = 0; i < e->nr_bitmaps; i++) {
        if (bitmaps[i]) {
            char *full = xasprintf("qemu:dirty-bitmap:%s", e->bitmaps[i].name);
            meta_reply(c, CTX_BITMAP0 + i, full);
            free(full);
            count++;
        }
    }
    opt_reply(c, NBD_REP_ACK, NULL, 0);
    if (list) {
        free(bitmaps);
        return;
    }
    meta_clear(c);
    c->meta_export = xstrdup(e->name);
    c->meta_base = base;
    c->meta_depth = depth;
    c->meta_bitmap = bitmaps;
    c->meta_nr_bitmaps = e->nr_bitmaps;
    c->meta_count = count;
}

static void handle_option(NbdConn *c, const uint8_t *d, uint32_t len)
{
    switch (c->opt) {
    case NBD_OPT_EXPORT_NAME:
        opt_export_name(c, d, len);
        break;
    case NBD_OPT_ABORT:
        opt_reply(c, NBD_REP_ACK, NULL, 0);
        c->state = NBD_CONN_CLOSING;
        c->why = NULL;
        break;
    case NBD_OPT_LIST:
        opt_list(c, len);
        break;
    case NBD_OPT_STARTTLS:
        opt_error(c, NBD_REP_ERR_POLICY, "TLS not configured");
        break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        opt_go(c, d, len);
        break;
    case NBD_OPT_STRUCTURED_REPLY:
        if (len) {
            opt_error(c, NBD_REP_ERR_INVALID, "no data expected for structured reply");
        } else if (c->structured) {
            opt_error(c, NBD_REP_ERR_INVALID, "structured reply already negotiated");
        } else {
            c->structured = true;
            opt_reply(c, NBD_REP_ACK, NULL, 0);
        }
        break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        opt_meta(c, d, len);
        break;
    default:
        opt_error(c, NBD_REP_ERR_UNSUP, "Unsupported option %" PRIu32, c->opt);
        break;
    }
}

/* ---- transmission ---- */

void nbd_simple_reply(NbdConn *c, uint32_t err)
{
    uint8_t *p = nbd_out_reserve(c, NBD_SIMPLE_REPLY_SIZE);
    p = put32(p, NBD_SIMPLE_REPLY_MAGIC);
    p = put32(p, err);
    put64(p, c->req.cookie);
}

uint8_t *nbd_chunk(NbdConn *c, uint16_t flags, uint16_t type, uint32_t len)
{
    uint8_t *p = nbd_out_reserve(c, NBD_CHUNK_HEADER_SIZE + len);
    p = put32(p, NBD_STRUCTURED_REPLY_MAGIC);
    p = put16(p, flags);
    p = put16(p, type);
    p = put64(p, c->req.cookie);
    return put32(p, len);
}

/* The error reply of the current request: a chunk where one is expected. */
void nbd_error_reply(NbdConn *c, uint32_t err, const char *msg)
{
    bool chunked = c->structured &&
                   (c->req.type == NBD_CMD_READ || c->req.type == NBD_CMD_BLOCK_STATUS);
    if (!chunked) {
        nbd_simple_reply(c, err);
        return;
    }
    size_t n = MIN(strlen(msg), (size_t)1024);
    uint8_t *p = nbd_chunk(c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 6 + n);
    p = put32(p, err);
    p = put16(p, n);
    memcpy(p, msg, n);
}


static bool zero_is_fast(NbdExp *e, uint64_t off, uint64_t len)
{
    if (e->fast_zero_any) {
        return true;
    }
    uint64_t a = e->zero_align;
    return a && off % a == 0 && (len % a == 0 || off + len == e->size);
}

static void do_write_like(NbdConn *c)
{
    Request *r = &c->req;
    NbdExp *e = c->exp;
    Error *err = NULL;
    int ret;
    uint32_t fail = NBD_EIO;
    if (r->type == NBD_CMD_WRITE_ZEROES && (r->flags & NBD_CMD_FLAG_FAST_ZERO) &&
        !zero_is_fast(e, r->offset, r->len)) {
        nbd_error_reply(c, NBD_ENOTSUP, "fast zeroing is not possible here");
        return;
    }
    BlockStatsCookie acct;
    block_stats_start(&acct, r->type == NBD_CMD_TRIM ? BLOCK_STATS_UNMAP : BLOCK_STATS_WRITE,
                      r->offset, r->len);
    switch (r->type) {
    case NBD_CMD_WRITE:
        ret = blk_pwrite(e->img, r->offset, c->payload, r->len, &err);
        break;
    case NBD_CMD_TRIM:
        /* Advisory, as for QEMU's nodes: one set to ignore them drops it. */
        ret = e->ignore_discard ? 0 : blk_discard(e->img, r->offset, r->len, &err);
        break;
    default:
        ret = blk_write_zeroes(e->img, r->offset, r->len, &err);
        break;
    }
    block_stats_done(e->stats, &acct, ret == 0);
    if (ret == 0 && (r->flags & NBD_CMD_FLAG_FUA)) {
        ret = blk_flush(e->img, &err);
    }
    if (ret < 0) {
        nbd_error_reply(c, fail, error_get_pretty(err));
        error_free(err);
    } else {
        nbd_simple_reply(c, 0);
    }
}

/* One context's extents over [off, off+len) into the queue. */
static bool block_status_chunk(NbdConn *c, uint32_t id, bool last)
{
    Request *r = &c->req;
    NbdExp *e = c->exp;
    bool one = r->flags & NBD_CMD_FLAG_REQ_ONE;
    /* Offsets relative to out_pos: the queue may move as it grows. */
    size_t mark = nbd_out_backlog(c), prev = 0;
    uint8_t *hdr = nbd_chunk(c, last ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS, 4);
    put32(hdr, id);
    uint64_t off = r->offset, end = r->offset + r->len;
    uint32_t count = 0, prev_flags = 0;
    while (off < end && count < MAX_EXTENTS) {
        uint64_t n;
        uint32_t flags, depth;
        bool ok;
        if (id == CTX_BASE || id == CTX_DEPTH) {
            ok = nbd_exp_status(e, off, end - off, &n, &flags, &depth);
            if (id == CTX_DEPTH) {
                flags = depth;
            }
        } else {
            NbdBitmap *bm = &e->bitmaps[id - CTX_BITMAP0];
            bool dirty = false;
            ok = bm->extent(bm->opaque, off, end - off, &n, &dirty);
            flags = dirty ? NBD_STATE_DIRTY : 0;
        }
        if (!ok || n == 0 || n > end - off) {
            c->out_len = c->out_pos + mark;
            return false;
        }
        if (count && prev_flags == flags) {
            uint8_t *q = c->out + c->out_pos + prev;
            put32(q, get32(q) + (uint32_t)n);           /* sum stays below len */
        } else {
            if (one && count) {
                break;
            }
            prev = nbd_out_backlog(c);
            uint8_t *q = nbd_out_reserve(c, 8);
            put32(q, (uint32_t)n);
            put32(q + 4, flags);
            prev_flags = flags;
            count++;
        }
        off += n;
    }
    /* Fix the chunk length now that the extents are known. */
    put32(c->out + c->out_pos + mark + 16, 4 + 8 * count);
    return true;
}

static void do_block_status(NbdConn *c)
{
    if (!c->structured || !c->meta_count) {
        nbd_error_reply(c, NBD_EINVAL, "no metadata context was negotiated");
        return;
    }
    size_t mark = nbd_out_backlog(c);
    unsigned left = c->meta_count;
    bool ok = true;
    if (c->meta_base) {
        ok = ok && block_status_chunk(c, CTX_BASE, --left == 0);
    }
    if (c->meta_depth) {
        ok = ok && block_status_chunk(c, CTX_DEPTH, --left == 0);
    }
    for (unsigned i = 0; i < c->meta_nr_bitmaps && ok; i++) {
        if (c->meta_bitmap[i]) {
            ok = block_status_chunk(c, CTX_BITMAP0 + i, --left == 0);
        }
    }
    if (!ok) {
        c->out_len = c->out_pos + mark;
        nbd_error_reply(c, NBD_EIO, "block status failed");
    }
}

static uint16_t valid_flags(uint16_t type)
{
    switch (type) {
    case NBD_CMD_READ:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF;
    case NBD_CMD_WRITE_ZEROES:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
    case NBD_CMD_BLOCK_STATUS:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
    default:
        return NBD_CMD_FLAG_FUA;
    }
}

static void handle_request(NbdConn *c)
{
    Request *r = &c->req;
    NbdExp *e = c->exp;
    bool writes = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM ||
                  r->type == NBD_CMD_WRITE_ZEROES;
    switch (r->type) {
    case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_FLUSH: case NBD_CMD_TRIM:
    case NBD_CMD_CACHE: case NBD_CMD_WRITE_ZEROES: case NBD_CMD_BLOCK_STATUS:
        break;
    default:
        nbd_error_reply(c, NBD_EINVAL, "unsupported command");
        return;
    }
    if (r->flags & ~valid_flags(r->type)) {
        nbd_error_reply(c, NBD_EINVAL, "unsupported flags");
        return;
    }
    if ((r->flags & NBD_CMD_FLAG_DF) && !c->structured) {
        nbd_error_reply(c, NBD_EINVAL, "DF needs structured replies");
        return;
    }
    if (r->type == NBD_CMD_FLUSH) {
        if (r->offset || r->len) {
            nbd_error_reply(c, NBD_EINVAL, "flush takes no range");
            return;
        }
        Error *err = NULL;
        int ret = blk_flush(e->img, &err);
        if (ret < 0) {
            nbd_error_reply(c, NBD_EIO, error_get_pretty(err));
            error_free(err);
        } else {
            nbd_simple_reply(c, 0);
        }
        return;
    }
    if (r->offset > e->size || r->len > e->size - r->offset) {
        nbd_error_reply(c, writes ? NBD_ENOSPC : NBD_EINVAL, "request past the end of the export");
        return;
    }
    if (writes && !e->writable) {
        nbd_error_reply(c, NBD_EPERM, "export is read-only");
        return;
    }
    switch (r->type) {
    case NBD_CMD_READ:
        if (r->len > NBD_MAX_PAYLOAD) {
            nbd_error_reply(c, NBD_EINVAL, "read larger than the maximum block size");
            return;
        }
        nbd_read(c);
        return;
    case NBD_CMD_CACHE:
        /* Advisory: every read goes to the image, so nothing needs fetching. */
        nbd_simple_reply(c, 0);
        return;
    case NBD_CMD_BLOCK_STATUS:
        if (r->len == 0) {
            nbd_error_reply(c, NBD_EINVAL, "block status of an empty range");
            return;
        }
        do_block_status(c);
        return;
    default:
        do_write_like(c);
        return;
    }
}

/* ---- input ---- */

NbdConn *nbd_conn_new(NbdExpList *list)
{
    NbdConn *c = xzalloc(sizeof(*c));
    c->list = list;
    c->state = NBD_CONN_RUNNING;
    c->phase = PH_CLIENT_FLAGS;
    uint8_t hello[18];
    uint8_t *p = put64(hello, NBD_INIT_MAGIC);
    p = put64(p, NBD_OPTS_MAGIC);
    put16(p, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    out_append(c, hello, sizeof(hello));
    return c;
}

void nbd_conn_free(NbdConn *c)
{
    if (!c) {
        return;
    }
    if (c->exp) {
        c->exp->clients--;
        c->exp = NULL;
    }
    meta_clear(c);
    free(c->payload);
    free(c->out);
    c->payload = c->out = NULL;
    nbd_read_drop_segments(c);
    c->notify = NULL;
    if (c->reads) {
        c->orphan = true;       /* the last read to finish frees it */
        return;
    }
    free(c);
}

void nbd_conn_set_notify(NbdConn *c, void (*notify)(void *opaque), void *opaque)
{
    c->notify = notify;
    c->notify_opaque = opaque;
}

static bool wants_input(const NbdConn *c)
{
    return c->state == NBD_CONN_RUNNING && nbd_out_backlog(c) <= OUT_HIGH &&
           c->seg_bytes <= SEG_HIGH;
}

uint8_t *nbd_conn_rx_space(NbdConn *c, size_t *room)
{
    if (!wants_input(c)) {
        *room = 0;
        return c->in;
    }
    /* A write's data goes straight to its buffer once the staging area is empty. */
    if (c->phase == PH_REQ_PAYLOAD && c->in_start == c->in_end) {
        c->in_start = c->in_end = 0;
        *room = c->req.len - c->payload_have;
        return c->payload + c->payload_have;
    }
    if (c->in_start == c->in_end) {
        c->in_start = c->in_end = 0;
    } else if (c->in_start > IN_CAP / 2 || (c->in_start && c->in_end == IN_CAP)) {
        /* A staged message (at most OPT_MAX + 16 bytes) always fits once moved. */
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    *room = IN_CAP - c->in_end;
    return c->in + c->in_end;
}

/* Handle one message if it is complete; false when more bytes are needed. */
static bool step(NbdConn *c)
{
    size_t avail = c->in_end - c->in_start;
    uint8_t *p = c->in + c->in_start;
    switch (c->phase) {
    case PH_CLIENT_FLAGS: {
        if (avail < 4) {
            return false;
        }
        uint32_t f = get32(p);
        c->in_start += 4;
        if (f & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
            die(c, "unknown client flags");
            return false;
        }
        c->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
        c->phase = PH_OPT_HEADER;
        return true;
    }
    case PH_OPT_HEADER:
        if (avail < 16) {
            return false;
        }
        if (get64(p) != NBD_OPTS_MAGIC) {
            die(c, "bad option magic");
            return false;
        }
        c->opt = get32(p + 8);
        c->opt_len = get32(p + 12);
        c->in_start += 16;
        if (c->opt == NBD_OPT_EXPORT_NAME && c->opt_len > NBD_MAX_STRING) {
            die(c, "export name too long");
            return false;
        }
        if (c->opt_len > OPT_MAX) {
            c->skip_left = c->opt_len;
            c->phase = PH_OPT_SKIP;
        } else {
            c->phase = PH_OPT_DATA;
        }
        return true;
    case PH_OPT_DATA:
        if (avail < c->opt_len) {
            return false;
        }
        c->in_start += c->opt_len;
        c->phase = PH_OPT_HEADER;
        handle_option(c, p, c->opt_len);
        return true;
    case PH_OPT_SKIP: {
        size_t n = MIN((uint64_t)avail, c->skip_left);
        c->in_start += n;
        c->skip_left -= n;
        if (c->skip_left) {
            return false;
        }
        c->phase = PH_OPT_HEADER;
        opt_error(c, NBD_REP_ERR_TOO_BIG, "option data too long");
        return true;
    }
    case PH_REQ_HEADER: {
        if (avail < NBD_REQUEST_SIZE) {
            return false;
        }
        if (get32(p) != NBD_REQUEST_MAGIC) {
            die(c, "bad request magic");
            return false;
        }
        Request next = {
            .flags = get16(p + 4), .type = get16(p + 6), .cookie = get64(p + 8),
            .offset = get64(p + 16), .len = get32(p + 24),
        };
        if (nbd_read_must_wait(c, &next)) {
            return false;               /* left staged until reads finish */
        }
        Request *r = &c->req;
        *r = next;
        c->in_start += NBD_REQUEST_SIZE;
        if (r->type == NBD_CMD_DISC) {
            c->state = NBD_CONN_CLOSING;
            c->why = NULL;
            return false;
        }
        if (r->type == NBD_CMD_WRITE) {
            if (r->len > NBD_MAX_PAYLOAD) {
                die(c, "write larger than the maximum block size");
                return false;
            }
            c->payload = xrealloc(c->payload, MAX(r->len, 1u));
            c->payload_have = 0;
            c->phase = PH_REQ_PAYLOAD;
            return true;
        }
        handle_request(c);
        return true;
    }
    case PH_REQ_PAYLOAD: {
        size_t n = MIN(avail, (size_t)(c->req.len - c->payload_have));
        memcpy(c->payload + c->payload_have, p, n);
        c->in_start += n;
        c->payload_have += n;
        if (c->payload_have < c->req.len) {
            return false;
        }
        c->phase = PH_REQ_HEADER;
        handle_request(c);
        if (c->req.len > (1u << 20)) {
            free(c->payload);           /* keep idle connections small */
            c->payload = NULL;
        }
        return true;
    }
    }
    return false;
}

void nbd_conn_rx(NbdConn *c, size_t n)
{
    nbd_read_collect(c);
    if (c->state != NBD_CONN_RUNNING) {
        return;                         /* closing: what arrives now is dropped */
    }
    if (c->phase == PH_REQ_PAYLOAD && c->in_start == c->in_end && n) {
        c->payload_have += n;           /* received in place */
        if (c->payload_have < c->req.len) {
            return;
        }
        c->phase = PH_REQ_HEADER;
        handle_request(c);
        if (c->req.len > (1u << 20)) {
            free(c->payload);
            c->payload = NULL;
        }
    } else {
        c->in_end += n;
    }
    /*
     * Reads that finished while later requests were handled count against
     * the backlog at once: with data in the page cache each read finishes
     * before the next is parsed, and a 64 KiB staging buffer holds some
     * 2,300 read requests of up to 32 MiB each.
     */
    while (wants_input(c) && step(c)) {
        nbd_read_collect(c);
    }
    nbd_read_collect(c);                /* reads that needed no I/O */
}

void nbd_conn_eof(NbdConn *c)
{
    if (c->state == NBD_CONN_RUNNING) {
        bool between = c->in_start == c->in_end &&
                       (c->phase == PH_REQ_HEADER || c->phase == PH_OPT_HEADER ||
                        c->phase == PH_CLIENT_FLAGS);
        die(c, between ? NULL : "client closed the connection mid-message");
    }
}

/* A segment once the byte queue is empty, and then to its end (nbd-engine.h). */
const uint8_t *nbd_conn_tx_data(NbdConn *c, size_t *len)
{
    NbdSeg *s = c->seg_head;
    c->tx_seg = s && (s->pos || !nbd_out_backlog(c));
    if (c->tx_seg) {
        *len = s->len - s->pos;
        return s->data + s->pos;
    }
    *len = nbd_out_backlog(c);
    return *len ? c->out + c->out_pos : NULL;     /* no buffer yet before the first reply */
}

void nbd_conn_tx_done(NbdConn *c, size_t n)
{
    if (c->tx_seg) {
        NbdSeg *s = c->seg_head;
        s->pos += MIN(n, s->len - s->pos);
        if (s->pos == s->len) {
            c->seg_head = s->next;
            if (!c->seg_head) {
                c->seg_tail = NULL;
            }
            c->seg_bytes -= s->len;
            nbd_read_seg_sent(c, s);
        }
        return;
    }
    c->out_pos += MIN(n, nbd_out_backlog(c));
    if (c->out_cap > (4u << 20) && nbd_out_backlog(c) == 0) {
        free(c->out);                   /* a big read went out: give the memory back */
        c->out = NULL;
        c->out_cap = c->out_pos = c->out_len = 0;
    }
}

int nbd_conn_state(const NbdConn *c)
{
    return c->state;
}

const char *nbd_conn_why(const NbdConn *c)
{
    return c->why;
}

bool nbd_conn_in_handshake(const NbdConn *c)
{
    return c->phase < PH_REQ_HEADER;
}

NbdExp *nbd_conn_export(const NbdConn *c)
{
    return c->exp;
}

void nbd_conn_kill(NbdConn *c, const char *why)
{
    if (c->exp) {
        c->exp->clients--;              /* the export may go at once */
        c->exp = NULL;
    }
    die(c, why);
}
