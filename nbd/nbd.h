/*
 * The NBD server: block images exported over the NBD protocol (fixed
 * newstyle handshake, structured replies, metadata contexts) to backup
 * tools and other NBD clients.
 *
 * A server listens on one UNIX or TCP address and serves every connection
 * from its own thread (epoll, non-blocking sockets, bounded buffers), so a
 * stalled or flooding client never holds up the caller's event loop. The
 * block layer is entered only between the lock/unlock hooks of the server's
 * configuration (the VMM's big lock), so the exported images may be shared
 * with devices.
 *
 * Exports are added and removed from the caller's thread at any time; once
 * nbd_export_del() returns, the server no longer touches the image.
 */
#ifndef VIREO_NBD_NBD_H
#define VIREO_NBD_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "util/error.h"

typedef struct NbdServer NbdServer;

typedef enum NbdAddrType { NBD_ADDR_UNIX, NBD_ADDR_INET, NBD_ADDR_FD } NbdAddrType;

typedef struct NbdAddress {
    NbdAddrType type;
    const char *path;           /* unix */
    const char *host, *port;    /* inet (host may be "" for any) */
    int fd;                     /* fd: a listening socket the caller hands over */
} NbdAddress;

typedef struct NbdServerConfig {
    unsigned max_connections;   /* 0: no limit */
    void (*lock)(void);         /* around every block layer call; may be NULL */
    void (*unlock)(void);
    /* A message about a client (dropped, broken protocol); may be NULL. */
    void (*log)(const char *msg);
    /* Seconds a client may take to finish the handshake (0: 10). */
    unsigned handshake_seconds;
} NbdServerConfig;

/*
 * A source of dirty bits for qemu:dirty-bitmap:NAME. extent() reports
 * whether offset is dirty and how many bytes from offset (at least 1, at
 * most max) share that state; it runs with the server's lock held.
 */
typedef struct NbdBitmap {
    char *name;
    bool (*extent)(void *opaque, uint64_t offset, uint64_t max, uint64_t *len, bool *dirty);
    void (*release)(void *opaque);
    void *opaque;
} NbdBitmap;

/*
 * The live dirty bitmap @name of @img (block/dirty-bitmap.h), busy while
 * exported, with QEMU's checks: it must exist and be consistent, and a
 * read-only export of a writable image takes only a disabled bitmap.
 */
bool nbd_bitmap_live(NbdBitmap *bm, BlockImage *img, const char *name, bool writable,
                     Error **errp);

typedef struct NbdExportConfig {
    const char *name;           /* the export name clients ask for */
    const char *description;    /* may be NULL */
    BlockImage *img;            /* stays the caller's: it closes it after del */
    bool writable;
    bool allocation_depth;      /* offer qemu:allocation-depth */
    NbdBitmap *bitmaps;         /* taken over (released at del) */
    unsigned nr_bitmaps;
    void *owner;                /* the caller's, returned by nbd_export_owner() */
    /*
     * Reads of a connection run several at a time through an asynchronous
     * queue on the image. @queue: the program's own (a node's shared
     * queue), whose completions it runs from its event loop holding the
     * lock hook's lock; @drain (that lock held; NULL: the server runs the
     * queue itself) waits until nothing is in flight on it. Without
     * @queue, a @queue_depth above 0 has the server make a queue of that
     * depth on the image and run it on its own threads. Neither, or the
     * queue cannot be made: reads run one at a time.
     */
    BlockQueue *queue;
    void (*drain)(void *opaque);
    void *drain_opaque;
    unsigned queue_depth;
    /* The node's statistics, where writes and write-zeroes count (may be NULL). */
    struct BlockNodeStats *stats;
    /* The node drops discards (discard=ignore): a trim succeeds untouched. */
    bool ignore_discard;
} NbdExportConfig;

/* Listen on @addr and start serving. */
NbdServer *nbd_server_new(const NbdAddress *addr, const NbdServerConfig *cfg, Error **errp);
/* Drop every client, remove every export (as nbd_export_del(hard)), stop. */
void nbd_server_free(NbdServer *srv);

bool nbd_export_add(NbdServer *srv, const NbdExportConfig *cfg, Error **errp);
/*
 * Remove the export named @name. Unless @hard, refuse while clients use it;
 * with @hard, disconnect them. *owner (if given) receives the export's owner.
 */
bool nbd_export_del(NbdServer *srv, const char *name, bool hard, void **owner,
                    Error **errp);
bool nbd_export_exists(NbdServer *srv, const char *name);
/* Clients using the export now, or -1 if there is no such export. */
int nbd_export_clients(NbdServer *srv, const char *name);
/* Clients connected to the server (any phase). */
unsigned nbd_server_clients(NbdServer *srv);

#endif
