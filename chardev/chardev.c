/*
 * Character device core: the registry, connections with queued output,
 * and the simple back-ends (null, stdio, file). Sockets live in
 * char-socket.c.
 */
#include "chardev/chardev-internal.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "util/osdep.h"

const OptParam chardev_params[] = {
    { "backend", OPT_STRING, "back-end type: socket, stdio, null, file, pty" },
    { "id", OPT_STRING, "name that front-ends refer to" },
    { "path", OPT_STRING, "UNIX socket path or file path" },
    { "fd", OPT_STRING, "socket: an inherited socket (listening with server=on)" },
    { "host", OPT_STRING, "TCP host" },
    { "port", OPT_STRING, "TCP port" },
    { "server", OPT_BOOL, "listen instead of connecting", "off" },
    { "wait", OPT_BOOL, "with server=on, wait for a client before starting", "on" },
    { "nodelay", OPT_BOOL, "disable Nagle's algorithm on TCP", "off" },
    { "ipv4", OPT_BOOL, "use IPv4 only" },
    { "ipv6", OPT_BOOL, "use IPv6 only" },
    { "signal", OPT_BOOL, "with stdio, Ctrl-C sends SIGINT", "on" },
    { "mux", OPT_BOOL, "share between a serial port and a monitor (Ctrl-A c switches)", "off" },
    { "reconnect", OPT_NUMBER, "client socket: seconds between attempts to connect again", "0" },
    { "logfile", OPT_STRING, "(not supported)" },
    { "append", OPT_BOOL, "with file, append instead of truncating", "off" },
    { NULL },
};

static Chardev *chardevs;
static unsigned anon_counter;

Chardev *chardev_find(const char *id)
{
    for (Chardev *c = chardevs; c; c = c->next) {
        if (!strcmp(c->id, id)) {
            return c;
        }
    }
    return NULL;
}

const char *chardev_id(const Chardev *chr)
{
    return chr->id;
}

bool chardev_has_frontend(const Chardev *chr)
{
    return chr->fe != NULL || chr->sessions != NULL;
}

const char *chardev_filename(const Chardev *chr)
{
    return chr->filename;
}

void chardev_foreach(void (*fn)(void *ctx, Chardev *chr), void *ctx)
{
    for (Chardev *c = chardevs; c; c = c->next) {
        fn(ctx, c);
    }
}

/* ---- connections ---- */

static void conn_read_ready(void *opaque);
static void conn_write_ready(void *opaque);

static void conn_update_watch(ChardevConn *conn)
{
    bool want_read = conn->in_fd >= 0 && !conn->input_paused && !conn->closing;
    bool want_write = conn->out_len > 0;
    int fd = conn->in_fd >= 0 ? conn->in_fd : conn->out_fd;
    if (conn->in_fd >= 0 && conn->out_fd != conn->in_fd) {
        /* Separate descriptors (stdio): watch each for its direction. */
        main_loop_set_fd_handler(conn->in_fd, want_read ? conn_read_ready : NULL, NULL, conn);
        main_loop_set_fd_handler(conn->out_fd, NULL, want_write ? conn_write_ready : NULL, conn);
        return;
    }
    main_loop_set_fd_handler(fd, want_read ? conn_read_ready : NULL,
                             want_write ? conn_write_ready : NULL, conn);
}

ChardevConn *chardev_conn_new(Chardev *chr, int in_fd, int out_fd, bool is_socket, bool owns)
{
    ChardevConn *conn = xzalloc(sizeof(*conn));
    conn->chr = chr;
    conn->in_fd = in_fd;
    conn->out_fd = out_fd;
    conn->is_socket = is_socket;
    conn->owns_fds = owns;
    conn->next = chr->conns;
    chr->conns = conn;
    if (chr->sessions) {
        conn->session = chr->sessions->open(chr->sessions_opaque, conn);
    }
    if (chr->fe && chr->fe->event) {
        chr->fe->event(chr->fe_opaque, CHARDEV_EVENT_OPENED);
    }
    conn_update_watch(conn);
    return conn;
}

static void conn_free(void *opaque)
{
    ChardevConn *conn = opaque;
    for (int i = 0; i < conn->nr_fds; i++) {
        close(conn->fds[i]);
    }
    free(conn->outbuf);
    free(conn);
}

static void conn_destroy(ChardevConn *conn)
{
    Chardev *chr = conn->chr;
    if (!chr) {
        return;                 /* destroyed already */
    }
    for (ChardevConn **p = &chr->conns; *p; p = &(*p)->next) {
        if (*p == conn) {
            *p = conn->next;
            break;
        }
    }
    if (conn->in_fd >= 0) {
        main_loop_set_fd_handler(conn->in_fd, NULL, NULL, NULL);
    }
    main_loop_set_fd_handler(conn->out_fd, NULL, NULL, NULL);
    if (conn->owns_fds) {
        if (conn->in_fd >= 0 && conn->in_fd != conn->out_fd) {
            close(conn->in_fd);
        }
        close(conn->out_fd);
    }
    if (chr->sessions && conn->session) {
        chr->sessions->close(conn->session);
    }
    if (chr->fe && chr->fe->event) {
        chr->fe->event(chr->fe_opaque, CHARDEV_EVENT_CLOSED);
    }
    conn->chr = NULL;
    /* Free later: we may be inside one of its handlers. */
    main_loop_schedule(conn_free, conn);
    if (chr->kind == CHARDEV_SOCKET) {
        socket_chardev_conn_closed(chr);
    }
}

static void conn_close_cb(void *opaque)
{
    ChardevConn *conn = opaque;
    conn_destroy(conn);
}

void chardev_conn_close(ChardevConn *conn)
{
    if (conn->closing) {
        return;
    }
    conn->closing = true;
    conn_update_watch(conn);
    main_loop_schedule(conn_close_cb, conn);
}

static void queue_received_fds(ChardevConn *conn, struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *fds = (int *)CMSG_DATA(c);
        for (int i = 0; i < n; i++) {
            if (conn->nr_fds < CHARDEV_MAX_QUEUED_FDS) {
                conn->fds[conn->nr_fds++] = fds[i];
            } else {
                close(fds[i]);      /* a flood of descriptors: drop the excess */
            }
        }
    }
}

static ssize_t conn_recv(ChardevConn *conn, uint8_t *buf, size_t len)
{
    if (!conn->is_socket) {
        return read(conn->in_fd, buf, len);
    }
    char control[CMSG_SPACE(sizeof(int) * CHARDEV_MAX_QUEUED_FDS)];
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control, .msg_controllen = sizeof(control),
    };
    ssize_t n = recvmsg(conn->in_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n > 0 || (n == 0 && msg.msg_controllen)) {
        queue_received_fds(conn, &msg);
    }
    return n;
}

static size_t front_end_room(ChardevConn *conn, size_t len)
{
    Chardev *chr = conn->chr;
    if (chr->fe && chr->fe->can_read && !(chr->mux && chr->focus_sessions)) {
        size_t room = chr->fe->can_read(chr->fe_opaque);
        return MIN(room, len);
    }
    return len;
}

static void deliver(ChardevConn *conn, const uint8_t *buf, size_t len, bool to_session)
{
    Chardev *chr = conn->chr;
    if (len == 0) {
        return;
    }
    if (to_session && chr->sessions) {
        chr->sessions->read(conn->session, buf, len);
    } else if (!to_session && chr->fe && chr->fe->read) {
        chr->fe->read(chr->fe_opaque, buf, len);
    }
}

#define MUX_ESCAPE 0x01     /* Ctrl-A, as in QEMU */

static void mux_command(ChardevConn *conn, uint8_t c)
{
    Chardev *chr = conn->chr;
    static const char help[] =
        "\r\nC-a h    print this help\r\n"
        "C-a x    exit vireo\r\n"
        "C-a c    switch between console and monitor\r\n"
        "C-a C-a  sends C-a\r\n";
    switch (c) {
    case 'c':
        chr->focus_sessions = !chr->focus_sessions;
        if (chr->focus_sessions) {
            /* An empty line makes the monitor show a fresh prompt. */
            deliver(conn, (const uint8_t *)"\r", 1, true);
        }
        break;
    case 'x':
        chardev_conn_write(conn, "\r\nvireo: terminated\r\n", 22);
        kill(getpid(), SIGTERM);    /* the usual clean shutdown path */
        break;
    case 'h':
    case '?':
        chardev_conn_write(conn, help, sizeof(help) - 1);
        break;
    case MUX_ESCAPE:
        deliver(conn, &c, 1, chr->focus_sessions);
        break;
    default:
        break;
    }
}

/* Route input to the focused front-end, acting on Ctrl-A commands. */
static void mux_input(ChardevConn *conn, const uint8_t *buf, size_t len)
{
    Chardev *chr = conn->chr;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (chr->mux_escape) {
            chr->mux_escape = false;
            start = i + 1;
            mux_command(conn, buf[i]);
        } else if (buf[i] == MUX_ESCAPE) {
            deliver(conn, buf + start, i - start, chr->focus_sessions);
            chr->mux_escape = true;
        }
    }
    if (!chr->mux_escape && start < len) {
        deliver(conn, buf + start, len - start, chr->focus_sessions);
    }
}

static void conn_read_ready(void *opaque)
{
    ChardevConn *conn = opaque;
    Chardev *chr = conn->chr;
    uint8_t buf[4096];
    size_t want = front_end_room(conn, sizeof(buf));
    if (want == 0) {
        conn->input_paused = true;
        conn_update_watch(conn);
        return;
    }
    ssize_t n = conn_recv(conn, buf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        chardev_conn_close(conn);
        return;
    }
    if (chr->mux) {
        mux_input(conn, buf, (size_t)n);
    } else {
        deliver(conn, buf, (size_t)n, chr->sessions != NULL);
    }
}

static void conn_flush(ChardevConn *conn)
{
    while (conn->out_len) {
        ssize_t n = write(conn->out_fd, conn->outbuf, conn->out_len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }
        if (n <= 0) {
            conn->out_len = 0;
            chardev_conn_close(conn);
            return;
        }
        memmove(conn->outbuf, conn->outbuf + n, conn->out_len - (size_t)n);
        conn->out_len -= (size_t)n;
    }
    conn_update_watch(conn);
}

static void conn_write_ready(void *opaque)
{
    ChardevConn *conn = opaque;
    conn_flush(conn);
    Chardev *chr = conn->chr;
    if (chr && !conn->out_len && chr->fe && chr->fe->drained) {
        chr->fe->drained(chr->fe_opaque);
    }
}

bool chardev_conn_write(ChardevConn *conn, const void *buf, size_t len)
{
    if (conn->closing || !conn->chr) {
        return false;
    }
    if (conn->out_len + len > conn->chr->outbuf_max) {
        if (conn->chr->sessions) {
            /* A monitor client that stopped reading: disconnect it. */
            chardev_conn_close(conn);
            return false;
        }
        len = conn->chr->outbuf_max - conn->out_len;   /* a UART drops bytes */
    }
    if (conn->out_len + len > conn->out_cap) {
        conn->out_cap = MAX(conn->out_len + len, conn->out_cap * 2);
        conn->outbuf = xrealloc(conn->outbuf, conn->out_cap);
    }
    memcpy(conn->outbuf + conn->out_len, buf, len);
    conn->out_len += len;
    conn_flush(conn);
    return true;
}

int chardev_conn_take_fd(ChardevConn *conn)
{
    if (conn->nr_fds == 0) {
        return -1;
    }
    int fd = conn->fds[0];
    memmove(conn->fds, conn->fds + 1, sizeof(int) * (size_t)--conn->nr_fds);
    return fd;
}

bool chardev_conn_read_sync(ChardevConn *conn, void *buf, size_t len, int timeout_ms,
                            Error **errp)
{
    size_t got = 0;
    /* One limit for the whole read: a peer trickling bytes must not stretch it. */
    int64_t deadline = monotonic_ms() + timeout_ms;
    while (got < len) {
        int rc = -1;
        errno = EBADF;      /* a closed connection must not look like EINTR */
        if (conn->in_fd >= 0 && !conn->closing) {
            int left = (int)MAX(0, deadline - monotonic_ms());
            rc = main_loop_wait_peer(conn->in_fd, POLLIN, left);
        }
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        bool stopping = rc < 0 && errno == ECANCELED;
        ssize_t n = rc > 0 ? conn_recv(conn, (uint8_t *)buf + got, len - got) : -1;
        if (n < 0 && rc > 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            error_setg(errp, "chardev '%s': %s", conn->chr ? conn->chr->id : "?",
                       stopping ? "gave up waiting: vireo is stopping"
                       : rc == 0 ? "timed out" : n == 0 ? "connection closed" : "read failed");
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

bool chardev_conn_is_tty(const ChardevConn *conn)
{
    return conn->chr && conn->chr->tty;
}

Chardev *chardev_conn_chardev(ChardevConn *conn)
{
    return conn->chr;
}

/* ---- front-ends ---- */

static bool check_free(Chardev *chr, bool sessions, Error **errp)
{
    /* A mux takes one front-end of each kind. */
    bool taken = chr->mux ? (sessions ? chr->sessions != NULL : chr->fe != NULL)
                          : (chr->fe || chr->sessions);
    if (taken) {
        error_setg(errp, "chardev '%s' is already in use", chr->id);
        return false;
    }
    return true;
}

static void announce_existing_conns(Chardev *chr, bool sessions)
{
    for (ChardevConn *c = chr->conns; c; c = c->next) {
        if (sessions) {
            c->session = chr->sessions->open(chr->sessions_opaque, c);
        } else if (chr->fe->event) {
            chr->fe->event(chr->fe_opaque, CHARDEV_EVENT_OPENED);
        }
        conn_update_watch(c);
    }
}

bool chardev_attach(Chardev *chr, const ChardevHandlers *h, void *opaque, Error **errp)
{
    if (!check_free(chr, false, errp)) {
        return false;
    }
    chr->fe = h;
    chr->fe_opaque = opaque;
    if (!chr->sessions) {
        chr->outbuf_max = CHARDEV_OUTBUF_MAX;
    }
    announce_existing_conns(chr, false);
    return true;
}

bool chardev_attach_sessions(Chardev *chr, const ChardevSessionHandlers *h,
                             void *fe_opaque, Error **errp)
{
    if (!check_free(chr, true, errp)) {
        return false;
    }
    chr->sessions = h;
    chr->sessions_opaque = fe_opaque;
    /* Replies such as query-qmp-schema are large; a client that never reads
     * is cut off at this much queued output. */
    chr->outbuf_max = 64u << 20;
    announce_existing_conns(chr, true);
    return true;
}

void chardev_detach(Chardev *chr)
{
    chr->fe = NULL;
    chr->sessions = NULL;
    chr->fe_opaque = NULL;
    chr->sessions_opaque = NULL;
}

void chardev_accept_input(Chardev *chr)
{
    for (ChardevConn *c = chr->conns; c; c = c->next) {
        if (c->input_paused) {
            c->input_paused = false;
            conn_update_watch(c);
        }
    }
}

size_t chardev_write(Chardev *chr, const void *buf, size_t len)
{
    size_t written = 0;
    for (ChardevConn *c = chr->conns; c; c = c->next) {
        if (chardev_conn_write(c, buf, len)) {
            written = len;
        }
    }
    return written;
}

size_t chardev_output_pending(const Chardev *chr)
{
    size_t total = 0;
    for (ChardevConn *c = chr->conns; c; c = c->next) {
        total += c->out_len;
    }
    return total;
}

void chardev_set_output_limit(Chardev *chr, size_t max)
{
    chr->outbuf_max = max;
}

bool chardev_is_connected(const Chardev *chr)
{
    return chr->conns != NULL;
}

bool chardev_is_tty(const Chardev *chr)
{
    return chr->tty;
}

/* ---- back-ends ---- */

static Chardev *stdio_owner;

static void stdio_set_raw(Chardev *chr, bool signals)
{
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &t) < 0) {
        return;
    }
    chr->saved_termios = t;
    chr->termios_saved = true;
    t.c_iflag &= ~(unsigned)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag |= OPOST;
    t.c_lflag &= ~(unsigned)(ECHO | ECHONL | ICANON | IEXTEN);
    if (!signals) {
        t.c_lflag &= ~(unsigned)ISIG;
    }
    t.c_cflag &= ~(unsigned)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

static bool stdio_open(Chardev *chr, const KeyValList *kv, Error **errp)
{
    if (stdio_owner) {
        error_setg(errp, "cannot use stdio by multiple character devices");
        return false;
    }
    stdio_owner = chr;
    chr->tty = isatty(STDIN_FILENO);
    if (chr->tty) {
        stdio_set_raw(chr, keyval_get_bool(kv, "signal", true));
    }
    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    chardev_conn_new(chr, STDIN_FILENO, STDOUT_FILENO, false, false);
    return true;
}

static bool file_open(Chardev *chr, const KeyValList *kv, Error **errp)
{
    const char *path = keyval_get(kv, "path");
    if (!path) {
        error_setg(errp, "chardev: file: no path given");
        return false;
    }
    int flags = O_WRONLY | O_CREAT | (keyval_get_bool(kv, "append", false) ? O_APPEND : O_TRUNC);
    int fd = vireo_open(path, flags, 0666, errp);
    if (fd < 0) {
        return false;
    }
    chardev_conn_new(chr, -1, fd, false, true);
    return true;
}

static Chardev *chardev_create(const char *id, const KeyValList *kv, Error **errp)
{
    const char *backend = keyval_get(kv, "backend");
    if (!backend) {
        error_setg(errp, "chardev: \"%s\" missing backend", id);
        return NULL;
    }
    if (chardev_find(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')", id);
        return NULL;
    }
    Chardev *chr = xzalloc(sizeof(*chr));
    chr->mux = keyval_get_bool(kv, "mux", false);
    chr->id = xstrdup(id);
    chr->listen_fd = -1;
    chr->pty_slave_fd = -1;
    chr->outbuf_max = CHARDEV_OUTBUF_MAX;
    bool ok;
    if (!strcmp(backend, "null")) {
        chr->kind = CHARDEV_NULL;
        chr->filename = xstrdup("null");
        ok = true;
    } else if (!strcmp(backend, "stdio")) {
        chr->kind = CHARDEV_STDIO;
        chr->filename = xstrdup("stdio");
        ok = stdio_open(chr, kv, errp);
    } else if (!strcmp(backend, "file")) {
        chr->kind = CHARDEV_FILE;
        chr->filename = xasprintf("file:%s", keyval_get(kv, "path") ? keyval_get(kv, "path") : "");
        ok = file_open(chr, kv, errp);
    } else if (!strcmp(backend, "socket")) {
        chr->kind = CHARDEV_SOCKET;
        ok = socket_chardev_open(chr, kv, errp);
    } else if (!strcmp(backend, "pty")) {
        chr->kind = CHARDEV_PTY;
        ok = pty_chardev_open(chr, errp);
    } else {
        error_setg(errp, "'%s' is not a valid char driver name", backend);
        ok = false;
    }
    if (!ok) {
        free(chr->filename);
        free(chr->id);
        free(chr);
        return NULL;
    }
    chr->next = chardevs;
    chardevs = chr;
    return chr;
}

Chardev *chardev_new_from_opts(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "backend", chardev_params, &kv, errp)) {
        return NULL;
    }
    const char *id = keyval_get(&kv, "id");
    Chardev *chr = NULL;
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
    } else {
        chr = chardev_create(id, &kv, errp);
    }
    keyval_free(&kv);
    return chr;
}

/*
 * Legacy specs: "stdio", "null", "none", "file:PATH", "unix:PATH[,opts]",
 * "tcp:HOST:PORT[,opts]", "chardev:ID".
 */
Chardev *chardev_new_from_legacy(const char *spec, const char *id_prefix, Error **errp)
{
    if (!strncmp(spec, "chardev:", 8)) {
        Chardev *chr = chardev_find(spec + 8);
        if (!chr) {
            error_setg(errp, "chardev '%s' not found", spec + 8);
        }
        return chr;
    }
    char *id = xasprintf("%s%u", id_prefix, anon_counter++);
    char *opts = NULL;
    if (!strcmp(spec, "stdio") || !strcmp(spec, "null")) {
        opts = xasprintf("%s,id=%s", spec, id);
    } else if (!strncmp(spec, "file:", 5)) {
        opts = xasprintf("file,id=%s,path=%s", id, spec + 5);
    } else if (!strncmp(spec, "unix:", 5)) {
        /* The path runs up to the first option. */
        const char *comma = strchr(spec + 5, ',');
        size_t plen = comma ? (size_t)(comma - spec - 5) : strlen(spec + 5);
        opts = xasprintf("socket,id=%s,path=%.*s%s", id, (int)plen, spec + 5, comma ? comma : "");
    } else if (!strncmp(spec, "tcp:", 4)) {
        const char *colon = strrchr(spec + 4, ':');
        const char *comma = strchr(spec + 4, ',');
        if (!colon || (comma && colon > comma)) {
            error_setg(errp, "'%s': expected tcp:HOST:PORT", spec);
            free(id);
            return NULL;
        }
        size_t port_len = comma ? (size_t)(comma - colon - 1) : strlen(colon + 1);
        opts = xasprintf("socket,id=%s,host=%.*s,port=%.*s%s", id, (int)(colon - spec - 4),
                         spec + 4, (int)port_len, colon + 1, comma ? comma : "");
    } else {
        error_setg(errp, "'%s' is not a valid char driver", spec);
        free(id);
        return NULL;
    }
    Chardev *chr = chardev_new_from_opts(opts, errp);
    free(opts);
    free(id);
    return chr;
}

bool chardev_add_client(Chardev *chr, int fd, Error **errp)
{
    if (chr->kind != CHARDEV_SOCKET) {
        error_setg(errp, "chardev '%s' is not a socket", chr->id);
        return false;
    }
    if (!socket_chardev_wants_more(chr)) {
        error_setg(errp, "chardev '%s' already has a client", chr->id);
        return false;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    chardev_conn_new(chr, fd, fd, true, true);
    return true;
}

/* ---- exit ---- */

/* Total time vireo gives its peers to take queued output at exit. */
#define CHARDEV_EXIT_FLUSH_MS 100
#define CHARDEV_EXIT_MAX_FDS 64

/* One write of at most PIPE_BUF bytes, on a descriptor poll() called writable. */
static void exit_write_some(ChardevConn *conn)
{
    size_t n = MIN(conn->out_len, (size_t)PIPE_BUF);
    ssize_t w = write(conn->out_fd, conn->outbuf, n);
    if (w > 0) {
        memmove(conn->outbuf, conn->outbuf + w, conn->out_len - (size_t)w);
        conn->out_len -= (size_t)w;
    } else if (w == 0 || (errno != EAGAIN && errno != EINTR)) {
        conn->out_len = 0;      /* the peer is gone */
    }
}

/* Fill pfds with the connections that still have output; returns how many. */
static int exit_pending(struct pollfd *pfds, ChardevConn **owners)
{
    int n = 0;
    for (Chardev *c = chardevs; c; c = c->next) {
        for (ChardevConn *conn = c->conns; conn && n < CHARDEV_EXIT_MAX_FDS; conn = conn->next) {
            if (conn->out_len && !conn->closing) {
                pfds[n] = (struct pollfd){ .fd = conn->out_fd, .events = POLLOUT };
                owners[n++] = conn;
            }
        }
    }
    return n;
}

/*
 * Best effort: push out the last console lines and replies, but only what
 * the peers take within CHARDEV_EXIT_FLUSH_MS. A client that stopped
 * reading must not keep vireo alive, so nothing here blocks: poll() has the
 * deadline and each write fits what poll() promised (PIPE_BUF bytes; stdio
 * may be a blocking pipe or terminal, which vireo shares and leaves as it is).
 */
static void flush_before_exit(void)
{
    struct pollfd pfds[CHARDEV_EXIT_MAX_FDS];
    ChardevConn *owners[CHARDEV_EXIT_MAX_FDS];
    int64_t deadline = monotonic_ms() + CHARDEV_EXIT_FLUSH_MS;
    int n;
    while ((n = exit_pending(pfds, owners)) > 0) {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0 || poll(pfds, (nfds_t)n, (int)left) < 0) {
            return;
        }
        for (int i = 0; i < n; i++) {
            if (pfds[i].revents & POLLOUT) {
                exit_write_some(owners[i]);
            } else if (pfds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                owners[i]->out_len = 0;
            }
        }
    }
}

void chardev_cleanup_all(void)
{
    flush_before_exit();
    for (Chardev *c = chardevs; c; c = c->next) {
        if (c->termios_saved) {
            tcsetattr(STDIN_FILENO, TCSANOW, &c->saved_termios);
        }
        if (c->kind == CHARDEV_STDIO) {
            fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) & ~O_NONBLOCK);
        }
        if (c->unix_path && c->server) {
            socket_chardev_unlink_path(c->unix_path);
        }
        if (c->pty_slave_fd >= 0) {
            close(c->pty_slave_fd);
            c->pty_slave_fd = -1;
        }
    }
}
