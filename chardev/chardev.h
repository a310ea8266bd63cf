/*
 * Character devices: the host end of a serial port, a monitor or a qtest
 * channel. Back-ends: stdio, null, file, socket (UNIX or TCP, listening with
 * server=on or connecting out), created from -chardev/-serial/-qmp/-monitor
 * options and found by id.
 *
 * A front-end (a UART, a monitor) attaches once and gets bytes through its
 * callbacks on the main loop. Output is queued and never blocks the caller:
 * if the peer does not read, bytes beyond CHARDEV_OUTBUF_MAX are dropped, as
 * a UART without flow control would.
 */
#ifndef VIREO_CHARDEV_CHARDEV_H
#define VIREO_CHARDEV_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define CHARDEV_OUTBUF_MAX (1u << 20)

typedef struct Chardev Chardev;

typedef enum ChardevEvent {
    CHARDEV_EVENT_OPENED,   /* a peer connected (or the device is ready) */
    CHARDEV_EVENT_CLOSED,   /* the peer went away */
} ChardevEvent;

typedef struct ChardevHandlers {
    /* How many bytes the front-end can take now (0 pauses input). */
    size_t (*can_read)(void *opaque);
    void (*read)(void *opaque, const uint8_t *buf, size_t len);
    void (*event)(void *opaque, ChardevEvent event);
    /* Optional: output that had to be queued has all been sent. */
    void (*drained)(void *opaque);
} ChardevHandlers;

/* Create from an option string such as "socket,id=mon0,path=/tmp/s,server=on,wait=off". */
Chardev *chardev_new_from_opts(const char *opts, Error **errp);
/* Create with a generated id from a -serial/-qmp/-monitor style spec ("stdio", "unix:PATH,server=on", "tcp:HOST:PORT,server,nowait", "file:PATH", "null", "chardev:ID"). */
Chardev *chardev_new_from_legacy(const char *spec, const char *id_prefix, Error **errp);
Chardev *chardev_find(const char *id);
const char *chardev_id(const Chardev *chr);

/* Attach a front-end; fails if one is attached already. */
bool chardev_attach(Chardev *chr, const ChardevHandlers *h, void *opaque, Error **errp);
void chardev_detach(Chardev *chr);
/* After can_read returned 0: the front-end has room again. */
void chardev_accept_input(Chardev *chr);

/*
 * Multi-client front-ends (monitors): every connection to a listening
 * socket (and the one stream of other back-ends) becomes a session of its
 * own. open() returns the session's opaque, passed to read() and close().
 */
typedef struct ChardevConn ChardevConn;
typedef struct ChardevSessionHandlers {
    void *(*open)(void *fe_opaque, ChardevConn *conn);
    void (*read)(void *session, const uint8_t *buf, size_t len);
    void (*close)(void *session);
} ChardevSessionHandlers;
bool chardev_attach_sessions(Chardev *chr, const ChardevSessionHandlers *h,
                             void *fe_opaque, Error **errp);
/* Queue output on one connection; false when its queue overflowed (the
 * connection is then closed) or it is gone. */
bool chardev_conn_write(ChardevConn *conn, const void *buf, size_t len);
/* Close one connection (its close() handler runs from the main loop). */
void chardev_conn_close(ChardevConn *conn);
/* Take (and own) the oldest descriptor received on this connection, or -1. */
int chardev_conn_take_fd(ChardevConn *conn);
/*
 * Wait up to timeout_ms for exactly len bytes on conn, outside the main
 * loop (a device's start-up handshake, before any handler reads); the
 * descriptors that come with them queue for chardev_conn_take_fd.
 */
bool chardev_conn_read_sync(ChardevConn *conn, void *buf, size_t len, int timeout_ms,
                            Error **errp);
bool chardev_conn_is_tty(const ChardevConn *conn);
Chardev *chardev_conn_chardev(ChardevConn *conn);

/* Queue bytes for the peer. Returns len, or 0 when nobody is connected. */
size_t chardev_write(Chardev *chr, const void *buf, size_t len);
/* Bytes queued for the peer and not yet sent. */
size_t chardev_output_pending(const Chardev *chr);
/* Queue up to max bytes before dropping (after chardev_attach; a front-end
 * that needs whole messages bounds its own output and sets its limit). */
void chardev_set_output_limit(Chardev *chr, size_t max);
/* Is a peer connected right now? */
bool chardev_is_connected(const Chardev *chr);
/* Is the back-end an interactive terminal (stdio on a tty)? */
bool chardev_is_tty(const Chardev *chr);

/*
 * A front-end with a protocol of its own on a UNIX client socket (vhost-user:
 * requests and replies with descriptors both ways) takes the connected
 * descriptor out of the chardev and does its own I/O on it (non-blocking,
 * close-on-exec). The chardev keeps the address: chardev_socket_connect
 * makes a new connection to it, for reconnect=N. Both return -1 on failure.
 */
int chardev_socket_take_fd(Chardev *chr, Error **errp);
int chardev_socket_connect(Chardev *chr, Error **errp);
/* reconnect=N of a client socket: seconds between attempts (0: never). */
unsigned chardev_socket_reconnect_secs(const Chardev *chr);

/* Hand an accepted connection (from add_client) to a socket chardev. */
bool chardev_add_client(Chardev *chr, int fd, Error **errp);

/* Call fn for every chardev (for query-chardev / info chardev). */
void chardev_foreach(void (*fn)(void *ctx, Chardev *chr), void *ctx);
/* Is a device or monitor attached (query-chardev's frontend-open)? */
bool chardev_has_frontend(const Chardev *chr);
const char *chardev_filename(const Chardev *chr);   /* "unix:/path,server=on" ... */

/* Restore the terminal and close everything; at exit. */
void chardev_cleanup_all(void);

#endif
