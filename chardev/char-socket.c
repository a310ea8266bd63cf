/*
 * Socket character devices: UNIX or TCP, listening (server=on) or
 * connecting out (server=off, as test harnesses attach QMP and qtest).
 *
 * A listening socket serving a session front-end (a monitor) accepts any
 * number of clients at once, each its own session; serving a plain
 * front-end (a UART) it takes one client at a time and stops listening
 * until that client leaves.
 */
#include "chardev/chardev-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "util/osdep.h"

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

bool socket_chardev_wants_more(const Chardev *chr)
{
    return chr->sessions || !chr->conns;
}

static void listen_update(Chardev *chr);

static void accept_ready(void *opaque)
{
    Chardev *chr = opaque;
    int fd = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        return;     /* EAGAIN, or a client that gave up: keep listening */
    }
    if (!chr->is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    chardev_conn_new(chr, fd, fd, chr->is_unix, true);
    listen_update(chr);
}

static void listen_update(Chardev *chr)
{
    if (chr->listen_fd < 0) {
        return;
    }
    main_loop_set_fd_handler(chr->listen_fd,
                             socket_chardev_wants_more(chr) ? accept_ready : NULL,
                             NULL, chr);
}

void socket_chardev_conn_closed(Chardev *chr)
{
    listen_update(chr);
}

static const char *file_kind(mode_t mode)
{
    if (S_ISREG(mode)) {
        return "a regular file";
    }
    if (S_ISDIR(mode)) {
        return "a directory";
    }
    if (S_ISLNK(mode)) {
        return "a symbolic link";
    }
    return "a special file";
}

/*
 * Before listening: a socket left at the path by an earlier run is stale
 * and goes; anything else there (a file, a directory, a symbolic link) is
 * not ours to delete, so the chardev is refused.
 */
static bool remove_stale_socket(const char *path, Error **errp)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            return true;
        }
        error_setg_errno(errp, errno, "Failed to unlink socket %s", path);
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        error_setg(errp, "Failed to unlink socket %s: it is %s, not a socket", path,
                   file_kind(st.st_mode));
        return false;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        error_setg_errno(errp, errno, "Failed to unlink socket %s", path);
        return false;
    }
    return true;
}

void socket_chardev_unlink_path(const char *path)
{
    struct stat st;
    /* Whatever replaced our socket since start-up stays. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
}

static int unix_socket(const char *path, bool server, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    if (server && !remove_stale_socket(path, errp)) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    if (server) {
        /* Only our user may connect, whatever umask vireo inherited: a
         * monitor socket is full control of the VM. bind() never follows
         * a symlink at the path (and remove_stale_socket left none). */
        mode_t old_umask = umask(0077);
        int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old_umask);
        if (rc < 0) {
            error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
            close(fd);
            return -1;
        }
        if (listen(fd, 128) < 0) {
            error_setg_errno(errp, errno, "Failed to listen on socket");
            close(fd);
            return -1;
        }
    } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "Failed to connect to '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int tcp_socket(const char *host, const char *port, bool server, Error **errp)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = server ? AI_PASSIVE : 0 };
    struct addrinfo *res;
    if (host && !*host) {
        host = NULL;
    }
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host ? host : "",
                   port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (server ? (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
                   : connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "Failed to %s %s:%s", server ? "listen on" : "connect to",
                         host ? host : "", port);
    }
    return fd;
}

/* wait=on: block start-up until the first client arrives, as QEMU does. */
static void wait_for_first_client(Chardev *chr)
{
    fprintf(stderr, "vireo: waiting for connection on: %s\n", chr->filename);
    int fd;
    do {
        fd = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0) {
        set_nonblock(fd);
        chardev_conn_new(chr, fd, fd, chr->is_unix, true);
    }
}

/*
 * fd=N: a socket the parent process opened (libvirt passes each monitor's
 * listening UNIX socket this way). With server=on it must be listening;
 * otherwise it is one connection. Its path stays the parent's to remove.
 */
static bool socket_from_fd(Chardev *chr, const char *fdstr, bool wait, Error **errp)
{
    char *end;
    long fd = strtol(fdstr, &end, 10);
    int type = 0, listening = 0;
    socklen_t tl = sizeof(type), ll = sizeof(listening);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (*end || end == fdstr || fd <= 2 || fd > INT32_MAX) {
        error_setg(errp, "fd=%s is not a descriptor number above 2", fdstr);
        return false;
    }
    if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
        getsockname((int)fd, (struct sockaddr *)&ss, &sl) < 0 ||
        (ss.ss_family != AF_UNIX && ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        error_setg(errp, "fd=%ld is not a stream socket", fd);
        return false;
    }
    getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll);
    if (chr->server != (listening != 0)) {
        error_setg(errp, "fd=%ld is %s a listening socket, but server=%s", fd,
                   listening ? "" : "not", chr->server ? "on" : "off");
        return false;
    }
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    set_nonblock((int)fd);
    chr->is_unix = ss.ss_family == AF_UNIX;
    const char *path = chr->is_unix ? ((struct sockaddr_un *)&ss)->sun_path : "";
    chr->filename = chr->is_unix
        ? xasprintf("unix:%s%s", path, chr->server ? ",server=on" : "")
        : xasprintf("tcp:fd=%ld%s", fd, chr->server ? ",server=on" : "");
    if (!chr->server) {
        chardev_conn_new(chr, (int)fd, (int)fd, chr->is_unix, true);
        return true;
    }
    chr->listen_fd = (int)fd;
    if (wait) {
        fcntl((int)fd, F_SETFL, fcntl((int)fd, F_GETFL) & ~O_NONBLOCK);
        wait_for_first_client(chr);
        set_nonblock((int)fd);
    }
    listen_update(chr);
    return true;
}

bool socket_chardev_open(Chardev *chr, const KeyValList *kv, Error **errp)
{
    if (keyval_get(kv, "fd")) {
        chr->server = keyval_get_bool(kv, "server", false);
        return socket_from_fd(chr, keyval_get(kv, "fd"), keyval_get_bool(kv, "wait", true),
                              errp);
    }
    const char *path = keyval_get(kv, "path");
    const char *host = keyval_get(kv, "host");
    const char *port = keyval_get(kv, "port");
    chr->server = keyval_get_bool(kv, "server", false);
    bool wait = keyval_get_bool(kv, "wait", true);
    if (!path && !port) {
        error_setg(errp, "chardev: socket: no host given");
        return false;
    }
    chr->is_unix = path != NULL;
    chr->reconnect = chr->server ? 0 : (unsigned)keyval_get_number(kv, "reconnect", 0);
    Error *err = NULL;
    int fd = chr->is_unix ? unix_socket(path, chr->server, &err)
                          : tcp_socket(host, port, chr->server, &err);
    if (fd < 0 && chr->reconnect && chr->is_unix) {
        /* With reconnect=N the peer may come later; its user connects then. */
        error_free(err);
        chr->connect_path = xstrdup(path);
        chr->filename = xasprintf("disconnected:unix:%s", path);
        return true;
    }
    if (fd < 0) {
        error_propagate(errp, err);
        return false;
    }
    if (chr->is_unix && !chr->server) {
        chr->connect_path = xstrdup(path);
    }
    if (chr->is_unix) {
        chr->unix_path = xstrdup(path);
        chr->filename = xasprintf("unix:%s%s", path, chr->server ? ",server=on" : "");
    } else {
        chr->filename = xasprintf("tcp:%s:%s%s", host ? host : "", port,
                                  chr->server ? ",server=on" : "");
    }
    set_nonblock(fd);
    if (!chr->server) {
        chardev_conn_new(chr, fd, fd, chr->is_unix, true);
        return true;
    }
    chr->listen_fd = fd;
    if (wait) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        wait_for_first_client(chr);
        set_nonblock(fd);
    }
    listen_update(chr);
    return true;
}

/* The connection a plain client socket made at creation, if it is still up. */
static ChardevConn *client_conn(Chardev *chr)
{
    for (ChardevConn *c = chr->conns; c; c = c->next) {
        if (!c->closing && c->is_socket) {
            return c;
        }
    }
    return NULL;
}

int chardev_socket_connect(Chardev *chr, Error **errp)
{
    if (chr->kind != CHARDEV_SOCKET || chr->server || !chr->connect_path) {
        error_setg(errp, "chardev '%s' is not a UNIX client socket", chr->id);
        return -1;
    }
    int fd = unix_socket(chr->connect_path, false, errp);
    if (fd >= 0) {
        set_nonblock(fd);
    }
    return fd;
}

int chardev_socket_take_fd(Chardev *chr, Error **errp)
{
    if (chr->kind != CHARDEV_SOCKET || chr->server || !chr->connect_path) {
        error_setg(errp, "chardev '%s' is not a UNIX client socket", chr->id);
        return -1;
    }
    if (chr->fe || chr->sessions) {
        error_setg(errp, "chardev '%s' is already in use", chr->id);
        return -1;
    }
    ChardevConn *conn = client_conn(chr);
    if (!conn) {
        return chardev_socket_connect(chr, errp);
    }
    /* The descriptor changes hands: the connection ends without closing it. */
    int fd = conn->in_fd;
    main_loop_set_fd_handler(fd, NULL, NULL, NULL);
    conn->owns_fds = false;
    conn->in_fd = conn->out_fd = -1;
    chardev_conn_close(conn);
    return fd;
}

unsigned chardev_socket_reconnect_secs(const Chardev *chr)
{
    return chr->kind == CHARDEV_SOCKET ? chr->reconnect : 0;
}
