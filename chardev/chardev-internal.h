/* Shared between the chardev core and its back-ends; not for front-ends. */
#ifndef VIREO_CHARDEV_INTERNAL_H
#define VIREO_CHARDEV_INTERNAL_H

#include <stdbool.h>
#include <sys/types.h>
#include <termios.h>

#include "chardev/chardev.h"
#include "util/keyval.h"

#define CHARDEV_MAX_QUEUED_FDS 16

struct ChardevConn {
    Chardev *chr;
    int in_fd;                  /* -1 when output-only */
    int out_fd;
    bool is_socket;             /* recvmsg for SCM_RIGHTS */
    bool owns_fds;              /* close in_fd/out_fd when the connection ends */
    bool input_paused;          /* front-end said it has no room */
    bool closing;
    uint8_t *outbuf;
    size_t out_len, out_cap;
    int fds[CHARDEV_MAX_QUEUED_FDS];
    int nr_fds;
    void *session;              /* session front-ends' per-connection opaque */
    ChardevConn *next;
};

typedef enum ChardevKind {
    CHARDEV_NULL,
    CHARDEV_STDIO,
    CHARDEV_FILE,
    CHARDEV_SOCKET,
    CHARDEV_PTY,
} ChardevKind;

struct Chardev {
    char *id;
    ChardevKind kind;
    char *filename;             /* for info chardev */
    ChardevConn *conns;
    /* front-end: exactly one of these kinds */
    const ChardevHandlers *fe;
    const ChardevSessionHandlers *sessions;
    void *fe_opaque;
    void *sessions_opaque;
    size_t outbuf_max;
    /* socket back-end */
    int listen_fd;
    bool server, is_unix;
    char *unix_path;            /* unlinked at exit when we created it */
    char *connect_path;         /* a UNIX client's address, to connect again */
    unsigned reconnect;         /* reconnect=N: seconds between attempts (0: never) */
    /* mux=on: one plain front-end (a UART) and one session front-end (a
     * monitor) share the connection; Ctrl-A c moves the input focus. */
    bool mux;
    bool focus_sessions;
    bool mux_escape;
    /* pty back-end: vireo keeps the terminal side open too, so the guest's
     * output waits there (or is dropped) until a console opens it */
    int pty_slave_fd;
    /* stdio back-end */
    bool tty;
    struct termios saved_termios;
    bool termios_saved;
    Chardev *next;
};

extern const OptParam chardev_params[];

ChardevConn *chardev_conn_new(Chardev *chr, int in_fd, int out_fd, bool is_socket, bool owns);
bool socket_chardev_open(Chardev *chr, const KeyValList *kv, Error **errp);
bool pty_chardev_open(Chardev *chr, Error **errp);
/* Called when a listening socket's connection ends, to listen again. */
void socket_chardev_conn_closed(Chardev *chr);
bool socket_chardev_wants_more(const Chardev *chr);
/* At exit: remove a listening socket's path if it is still a socket. */
void socket_chardev_unlink_path(const char *path);

#endif
