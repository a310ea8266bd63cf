/*
 * Inside the NBD server: the exports as the protocol engine sees them, and
 * the engine itself (nbd-conn.c), which turns a client's bytes into replies
 * without touching a socket, so the server thread and the fuzz target drive
 * the same code.
 */
#ifndef VIREO_NBD_NBD_INT_H
#define VIREO_NBD_NBD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbd/nbd.h"

typedef struct NbdExp {
    char *name;
    char *description;          /* NULL: none */
    BlockImage *img;
    uint64_t size;
    uint16_t tflags;            /* transmission flags sent to clients */
    bool writable;
    bool allocation_depth;
    bool fast_zero_any;         /* every aligned zeroing is a metadata change */
    uint32_t zero_align;        /* fast zeroing needs this alignment (0: never fast) */
    uint32_t pref_block;
    NbdBitmap *bitmaps;
    unsigned nr_bitmaps;
    struct BlockNodeStats *stats;   /* NULL: writes are not counted */
    bool ignore_discard;            /* trims succeed without reaching the image */
    unsigned clients;           /* connections in transmission on it */
    /* Reads in the background (nbd-read.c): NULL queue, one at a time. */
    BlockQueue *queue;
    bool own_queue;             /* made by the server, freed with the export */
    void (*drain)(void *opaque);
    void *drain_opaque;
    unsigned reads_in_flight;
    void *watch;                /* the server's handle on its own queue */
    void *owner;
    struct NbdExp *next;
} NbdExp;

/* The engine runs with the server's locks held (see nbd-server.c). */
typedef struct NbdExpList {
    NbdExp *head;
} NbdExpList;

NbdExp *nbd_exp_find(NbdExpList *list, const char *name);
NbdExp *nbd_exp_new(const NbdExportConfig *cfg, Error **errp);
void nbd_exp_free(NbdExp *e);

/*
 * Allocation status of [offset, offset + max) through the backing chain:
 * *len bytes (1..max) share *flags (NBD_STATE_HOLE|ZERO) and *depth
 * (0: unallocated everywhere, 1: the top image, 2: its backing file...).
 */
bool nbd_exp_status(NbdExp *e, uint64_t offset, uint64_t max, uint64_t *len,
                    uint32_t *flags, uint32_t *depth);

/* ---- the protocol engine ---- */

typedef struct NbdConn NbdConn;

enum {
    NBD_CONN_RUNNING,   /* reading requests, sending replies */
    NBD_CONN_CLOSING,   /* send what is queued, then close (disconnect, abort) */
    NBD_CONN_DEAD,      /* close now (protocol error, EOF) */
};

NbdConn *nbd_conn_new(NbdExpList *list);
/* Freed at once, or (reads in flight) when the last of them finishes. */
void nbd_conn_free(NbdConn *c);
/*
 * Reads that finished in the background have replies to send: @notify
 * runs (engine lock held, on whichever thread ran the queue) so that the
 * connection's thread calls nbd_conn_rx(c, 0) and sends them.
 */
void nbd_conn_set_notify(NbdConn *c, void (*notify)(void *opaque), void *opaque);
/*
 * Where the next received bytes go: *room bytes at the returned pointer.
 * *room is 0 while the engine wants nothing more (replies back up, closing).
 */
uint8_t *nbd_conn_rx_space(NbdConn *c, size_t *room);
/* @n bytes were put there: handle every complete message (n may be 0). */
void nbd_conn_rx(NbdConn *c, size_t n);
void nbd_conn_eof(NbdConn *c);
/* Bytes to send, and how many of them went out. */
const uint8_t *nbd_conn_tx_data(NbdConn *c, size_t *len);
void nbd_conn_tx_done(NbdConn *c, size_t n);
int nbd_conn_state(const NbdConn *c);
const char *nbd_conn_why(const NbdConn *c);   /* why it is closing, or NULL */
bool nbd_conn_in_handshake(const NbdConn *c);
NbdExp *nbd_conn_export(const NbdConn *c);
/* The export is going away: detach from it now and close (state DEAD). */
void nbd_conn_kill(NbdConn *c, const char *why);

#endif
