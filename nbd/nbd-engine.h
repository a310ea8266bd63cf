/*
 * Inside the protocol engine: one connection's state, shared by the
 * handshake and request code (nbd-conn.c) and the read path (nbd-read.c).
 *
 * Replies leave through two queues. The byte queue (out) takes every reply
 * the engine writes while it handles a request. Reads that run in the
 * background (nbd-read.c) each finish as one buffer of their own, a
 * segment, which joins the segment list whole. The sender takes from one
 * queue at a time and switches only between whole replies: a segment is
 * started only when the byte queue is empty, and once started it is sent
 * to its end first (the byte queue always holds whole replies whenever the
 * engine lock is released).
 */
#ifndef VIREO_NBD_NBD_ENGINE_H
#define VIREO_NBD_NBD_ENGINE_H

#include <endian.h>
#include <string.h>

#include "nbd/nbd-int.h"

#define IN_CAP          (64 * 1024 + 64)     /* staging buffer for headers */
#define OPT_MAX         (64 * 1024)          /* longest option data kept */
#define OUT_HIGH        (1u << 20)           /* stop reading above this backlog */
#define SEG_HIGH        (4u << 20)           /* ... or above this much finished reads */
#define MAX_EXTENTS     (64 * 1024)          /* per context and block status reply */

/* Metadata context ids: fixed for base and depth, then one per bitmap. */
#define CTX_BASE        0u
#define CTX_DEPTH       1u
#define CTX_BITMAP0     2u

enum {
    PH_CLIENT_FLAGS,    /* 4 bytes of client flags */
    PH_OPT_HEADER,      /* IHAVEOPT, option, length */
    PH_OPT_DATA,        /* option data (up to OPT_MAX) */
    PH_OPT_SKIP,        /* discarding an over-long option, then ERR_TOO_BIG */
    PH_REQ_HEADER,      /* 28-byte request */
    PH_REQ_PAYLOAD,     /* a write's data */
};

typedef struct Request {
    uint16_t flags, type;
    uint64_t cookie, offset;
    uint32_t len;
} Request;

/* One whole reply made in the background (a read's), waiting to be sent. */
typedef struct NbdSeg {
    struct NbdSeg *next;
    uint8_t *data;              /* the reply, inside buf */
    size_t len, pos;            /* bytes, bytes already sent */
    uint8_t *buf;               /* the allocation */
    size_t cap;
    bool aligned;               /* buf is page-aligned (reusable for reads) */
} NbdSeg;

struct NbdConn {
    NbdExpList *list;
    int state;
    int phase;
    const char *why;
    bool no_zeroes;
    bool structured;

    uint8_t in[IN_CAP];
    size_t in_start, in_end;

    uint32_t opt, opt_len;
    uint64_t skip_left;

    Request req;
    uint8_t *payload;
    size_t payload_have;

    uint8_t *out;
    size_t out_pos, out_len, out_cap;

    NbdExp *exp;                /* in transmission */

    /* Selected metadata contexts (SET_META_CONTEXT) and for which export. */
    char *meta_export;
    bool meta_base, meta_depth;
    bool *meta_bitmap;          /* [nr_bitmaps of that export] */
    unsigned meta_nr_bitmaps;
    unsigned meta_count;

    /*
     * Reads in the background (nbd-read.c). Their completions run on
     * whichever thread runs the queue, with the engine lock held: they
     * touch only the done list and these counters, then call notify.
     * The connection's own thread moves done segments to the send list.
     */
    unsigned reads;             /* in flight */
    uint64_t read_bytes;        /* their data */
    NbdSeg *done_head, *done_tail;
    NbdSeg *seg_head, *seg_tail;    /* to send (the connection's thread only) */
    size_t seg_bytes;
    NbdSeg *spare;              /* sent segments kept for reuse (the connection's thread) */
    size_t spare_bytes;
    bool tx_seg;                /* the last tx_data came from the segment list */
    bool orphan;                /* freed by its owner while reads were in flight */
    void (*notify)(void *opaque);
    void *notify_opaque;
};

/* ---- byte helpers ---- */

static inline uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return be16toh(v);
}

static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static inline uint8_t *put16(uint8_t *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, 2);
    return p + 2;
}

static inline uint8_t *put32(uint8_t *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
    return p + 4;
}

static inline uint8_t *put64(uint8_t *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
    return p + 8;
}

/* ---- nbd-conn.c: the byte queue and replies to the current request ---- */

/* Room for @n more bytes at the end of the byte queue. */
uint8_t *nbd_out_reserve(NbdConn *c, size_t n);
size_t nbd_out_backlog(const NbdConn *c);
void nbd_simple_reply(NbdConn *c, uint32_t err);
/* A chunk header for the current request; returns where its @len bytes go. */
uint8_t *nbd_chunk(NbdConn *c, uint16_t flags, uint16_t type, uint32_t len);
void nbd_error_reply(NbdConn *c, uint32_t err, const char *msg);

/* ---- nbd-read.c ---- */

/* Answer the current request, a valid NBD_CMD_READ. */
void nbd_read(NbdConn *c);
/* Must request @r wait (left unread) until reads in flight finish? */
bool nbd_read_must_wait(const NbdConn *c, const Request *r);
/* Move finished reads to the send list (the connection's thread). */
void nbd_read_collect(NbdConn *c);
/* A segment was sent (the connection's thread): keep it for reuse or free it. */
void nbd_read_seg_sent(NbdConn *c, NbdSeg *s);
/* Free the send, done and spare lists. */
void nbd_read_drop_segments(NbdConn *c);

#endif
