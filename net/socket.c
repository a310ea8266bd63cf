/*
 * -netdev socket: Ethernet frames over a socket, wire-compatible with
 * QEMU's back-end of the same name.
 *   fd=N                an inherited connected socket (stream or datagram)
 *   listen=[HOST]:PORT  TCP: wait for one peer; after it hangs up, for the next
 *   connect=HOST:PORT   TCP: connect at start-up
 *   udp=HOST:PORT,localaddr=HOST:PORT   UDP between two fixed addresses
 * On a stream each frame is a 4-byte big-endian length then the frame; a
 * datagram is one frame. A peer that announces a frame larger than
 * NET_FRAME_MAX is hung up on. Frames the socket cannot take right away are
 * dropped (after finishing the one in flight), as a full wire would.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "util/keyval.h"
#include "util/osdep.h"

typedef struct NetSocket {
    NetClient nc;
    int listen_fd;              /* listen=: -1 once closed */
    int fd;                     /* the connected socket; -1 while there is none */
    bool stream;
    struct sockaddr_storage dgram_peer;     /* udp=: where frames go */
    socklen_t dgram_peer_len;
    bool watched;
    /* receive side of a stream: header, then body */
    uint8_t rx_hdr[4];
    size_t rx_hdr_got;
    uint8_t *rx_buf;
    size_t rx_len, rx_got;      /* rx_len 0: reading the header */
    /* transmit side of a stream: the rest of a frame the socket took partly */
    uint8_t *tx_rest;
    size_t tx_rest_len, tx_rest_off;
} NetSocket;

static const OptParam socket_params[] = {
    { "type", OPT_STRING, "back-end type" },
    { "id", OPT_STRING, "netdev id" },
    { "fd", OPT_STRING, "connected socket descriptor" },
    { "listen", OPT_STRING, "[host]:port to listen on" },
    { "connect", OPT_STRING, "host:port to connect to" },
    { "udp", OPT_STRING, "host:port to send UDP frames to" },
    { "localaddr", OPT_STRING, "host:port to bind (udp=, mcast=)" },
    { "mcast", OPT_STRING, "multicast group:port" },
    { NULL },
};

static void socket_watch(NetClient *nc);

static void hang_up(NetSocket *s)
{
    if (s->fd < 0) {
        return;
    }
    if (s->watched) {
        main_loop_set_fd_handler(s->fd, NULL, NULL, NULL);
        s->watched = false;
    }
    close(s->fd);
    s->fd = -1;
    s->rx_hdr_got = s->rx_len = s->rx_got = 0;
    free(s->tx_rest);
    s->tx_rest = NULL;
    s->tx_rest_len = s->tx_rest_off = 0;
    socket_watch(&s->nc);       /* a listener takes the next peer */
}

/* ---- transmit ---- */

static void flush_tx_rest(void *opaque);

static void socket_readable(void *opaque)
{
    NetSocket *s = opaque;
    if (s->nc.ready) {
        s->nc.ready(s->nc.ready_opaque);
    }
}

/* Watch for frames while the NIC wants them, and for room while a frame is half sent. */
static void socket_update_handlers(NetSocket *s)
{
    if (s->fd < 0) {
        return;
    }
    bool rd = s->nc.ready != NULL, wr = s->tx_rest != NULL;
    main_loop_set_fd_handler(s->fd, rd ? socket_readable : NULL, wr ? flush_tx_rest : NULL, s);
    s->watched = rd || wr;
}

static bool send_rest(NetSocket *s)
{
    while (s->tx_rest && s->tx_rest_off < s->tx_rest_len) {
        ssize_t r = send(s->fd, s->tx_rest + s->tx_rest_off, s->tx_rest_len - s->tx_rest_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return false;
            }
            hang_up(s);
            return false;
        }
        s->tx_rest_off += r;
    }
    free(s->tx_rest);
    s->tx_rest = NULL;
    s->tx_rest_len = s->tx_rest_off = 0;
    return true;
}

static void flush_tx_rest(void *opaque)
{
    NetSocket *s = opaque;
    send_rest(s);
    socket_update_handlers(s);
}

static void socket_send(NetClient *nc, const struct iovec *iov, int iovcnt, size_t len)
{
    NetSocket *s = (NetSocket *)nc;
    if (s->fd < 0) {
        return;                 /* no peer: the frame is lost, as on an unplugged wire */
    }
    if (!s->stream) {
        struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
        if (s->dgram_peer_len) {
            msg.msg_name = &s->dgram_peer;
            msg.msg_namelen = s->dgram_peer_len;
        }
        ssize_t r = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)r;                /* datagrams may be lost */
        return;
    }
    if (s->tx_rest && !send_rest(s)) {
        return;                 /* still busy with the last frame: drop this one */
    }
    if (s->fd < 0) {
        return;
    }
    uint32_t be = htonl((uint32_t)len);
    struct iovec v[1 + 64];
    if (iovcnt > 64) {
        return;
    }
    v[0] = (struct iovec){ &be, 4 };
    memcpy(v + 1, iov, iovcnt * sizeof(*iov));
    struct msghdr msg = { .msg_iov = v, .msg_iovlen = iovcnt + 1 };
    ssize_t r;
    do {
        r = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;                 /* nothing went out: drop the whole frame */
    }
    if (r < 0) {
        hang_up(s);
        return;
    }
    if ((size_t)r == len + 4) {
        return;
    }
    /* Part of it went: the rest must follow before anything else, or framing breaks. */
    size_t total = len + 4, off = 0;
    s->tx_rest = xmalloc(total - r);
    for (int i = 0; i < iovcnt + 1; i++) {
        size_t a = v[i].iov_len;
        if (off + a > (size_t)r) {
            size_t skip = (size_t)r > off ? (size_t)r - off : 0;
            memcpy(s->tx_rest + s->tx_rest_len, (uint8_t *)v[i].iov_base + skip, a - skip);
            s->tx_rest_len += a - skip;
        }
        off += a;
    }
    (void)total;
    send_rest(s);
    socket_update_handlers(s);
}

/* ---- receive ---- */

/* Read up to want bytes; false when nothing more is there now (or the peer went). */
static bool read_some(NetSocket *s, uint8_t *dst, size_t want, size_t *got)
{
    ssize_t r;
    do {
        r = recv(s->fd, dst, want, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
        *got += r;
        return true;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        hang_up(s);
    }
    return false;
}

static ssize_t socket_recv(NetClient *nc, uint8_t *buf, size_t max)
{
    NetSocket *s = (NetSocket *)nc;
    if (s->tx_rest) {
        send_rest(s);           /* the readable wake-up also finishes a stalled send */
    }
    if (s->fd < 0) {
        return s->listen_fd >= 0 ? 0 : -1;
    }
    if (!s->stream) {
        ssize_t r = recv(s->fd, buf, max, MSG_DONTWAIT | MSG_TRUNC);
        if (r < 0) {
            return 0;
        }
        return (size_t)r > max ? 0 : r;     /* a truncated datagram is dropped */
    }
    while (s->fd >= 0) {
        if (!s->rx_len) {
            if (!read_some(s, s->rx_hdr + s->rx_hdr_got, 4 - s->rx_hdr_got, &s->rx_hdr_got)) {
                break;
            }
            if (s->rx_hdr_got < 4) {
                continue;
            }
            uint32_t be;
            memcpy(&be, s->rx_hdr, 4);
            s->rx_len = ntohl(be);
            s->rx_hdr_got = 0;
            if (s->rx_len == 0) {
                continue;       /* an empty frame carries nothing */
            }
            if (s->rx_len > NET_FRAME_MAX) {
                hang_up(s);     /* no frame is that long: the peer speaks something else */
                break;
            }
            s->rx_got = 0;
        }
        if (!read_some(s, s->rx_buf + s->rx_got, s->rx_len - s->rx_got, &s->rx_got)) {
            break;
        }
        if (s->rx_got == s->rx_len) {
            size_t n = s->rx_len;
            s->rx_len = s->rx_got = 0;
            if (n > max) {
                continue;       /* larger than the NIC takes: dropped */
            }
            memcpy(buf, s->rx_buf, n);
            return n;
        }
    }
    return s->fd < 0 && s->listen_fd < 0 ? -1 : 0;
}

/* ---- connections ---- */

static void accept_peer(void *opaque)
{
    NetSocket *s = opaque;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    if (s->fd >= 0) {
        close(fd);              /* one peer at a time */
        return;
    }
    s->fd = fd;
    main_loop_set_fd_handler(s->listen_fd, NULL, NULL, NULL);
    socket_watch(&s->nc);
    if (s->nc.ready) {
        s->nc.ready(s->nc.ready_opaque);
    }
}

static void socket_watch(NetClient *nc)
{
    NetSocket *s = (NetSocket *)nc;
    if (s->fd < 0) {
        if (s->listen_fd >= 0) {
            main_loop_set_fd_handler(s->listen_fd, accept_peer, NULL, s);
        }
        return;
    }
    socket_update_handlers(s);
}

static void socket_close(NetClient *nc)
{
    NetSocket *s = (NetSocket *)nc;
    if (s->listen_fd >= 0) {
        main_loop_set_fd_handler(s->listen_fd, NULL, NULL, NULL);
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    hang_up(s);
    free(s->rx_buf);
    free(s->nc.id);
    free(s);
}

static const NetClientOps socket_ops = {
    .send = socket_send, .recv = socket_recv, .watch = socket_watch, .close = socket_close,
};

/* "host:port" (host may be empty: any / localhost) to an address. */
static bool parse_host_port(const char *str, bool passive, int socktype,
                            struct sockaddr_storage *ss, socklen_t *len, Error **errp)
{
    const char *colon = strrchr(str, ':');
    if (!colon || !colon[1]) {
        error_setg(errp, "host address '%s' doesn't contain ':' separating host from port", str);
        return false;
    }
    char *host = xstrndup_safe(str, colon - str);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = socktype,
                              .ai_flags = passive ? AI_PASSIVE : 0 }, *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    free(host);
    if (rc != 0 || !res) {
        error_setg(errp, "address resolution failed for %s: %s", str, gai_strerror(rc));
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static int open_socket(const struct sockaddr_storage *ss, int type, Error **errp)
{
    int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "can't create socket");
    }
    return fd;
}

static bool do_listen(NetSocket *s, const char *addr, Error **errp)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!parse_host_port(addr, true, SOCK_STREAM, &ss, &len, errp)) {
        return false;
    }
    int fd = open_socket(&ss, SOCK_STREAM | SOCK_NONBLOCK, errp), one = 1;
    if (fd < 0) {
        return false;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1) < 0) {
        error_setg_errno(errp, errno, "can't bind ip=%s to socket", addr);
        close(fd);
        return false;
    }
    s->listen_fd = fd;
    s->stream = true;
    return true;
}

static bool do_connect(NetSocket *s, const char *addr, Error **errp)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!parse_host_port(addr, false, SOCK_STREAM, &ss, &len, errp)) {
        return false;
    }
    int fd = open_socket(&ss, SOCK_STREAM, errp);
    if (fd < 0) {
        return false;
    }
    int r;
    do {
        r = connect(fd, (struct sockaddr *)&ss, len);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        error_setg_errno(errp, errno, "can't connect socket");
        close(fd);
        return false;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    s->fd = fd;
    s->stream = true;
    return true;
}

static bool do_udp(NetSocket *s, const char *peer, const char *local, Error **errp)
{
    struct sockaddr_storage ls;
    socklen_t llen;
    if (!local) {
        error_setg(errp, "localaddr= is mandatory with udp=");
        return false;
    }
    if (!parse_host_port(peer, false, SOCK_DGRAM, &s->dgram_peer, &s->dgram_peer_len, errp) ||
        !parse_host_port(local, true, SOCK_DGRAM, &ls, &llen, errp)) {
        return false;
    }
    int fd = open_socket(&ls, SOCK_DGRAM | SOCK_NONBLOCK, errp), one = 1;
    if (fd < 0) {
        return false;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ls, llen) < 0) {
        error_setg_errno(errp, errno, "can't bind ip=%s to socket", local);
        close(fd);
        return false;
    }
    s->fd = fd;
    s->stream = false;
    return true;
}

static bool do_fd(NetSocket *s, const char *str, Error **errp)
{
    char *end;
    long v = strtol(str, &end, 10);
    int type;
    socklen_t tl = sizeof(type);
    if (end == str || *end || v < 0 || v > INT32_MAX ||
        getsockopt((int)v, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) {
        error_setg(errp, "Invalid file descriptor number '%s' (not a socket)", str);
        return false;
    }
    if (type != SOCK_STREAM && type != SOCK_DGRAM) {
        error_setg(errp, "socket type=%d for fd=%ld must be either SOCK_DGRAM or SOCK_STREAM",
                   type, v);
        return false;
    }
    int fd = fcntl((int)v, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        error_setg_errno(errp, errno, "fd=%s", str);
        return false;
    }
    close((int)v);              /* the back-end owns it now, as in QEMU */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    s->fd = fd;
    s->stream = type == SOCK_STREAM;
    return true;
}

NetClient *net_socket_open(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "type", socket_params, &kv, errp)) {
        return NULL;
    }
    const char *fd = keyval_get(&kv, "fd"), *listen_at = keyval_get(&kv, "listen");
    const char *conn = keyval_get(&kv, "connect"), *udp = keyval_get(&kv, "udp");
    const char *mcast = keyval_get(&kv, "mcast"), *local = keyval_get(&kv, "localaddr");
    NetSocket *s = xzalloc(sizeof(*s));
    s->nc.ops = &socket_ops;
    s->nc.id = keyval_get(&kv, "id") ? xstrdup(keyval_get(&kv, "id")) : NULL;
    s->fd = s->listen_fd = -1;
    s->rx_buf = xmalloc(NET_FRAME_MAX);
    int given = !!fd + !!listen_at + !!conn + !!udp + !!mcast;
    bool ok = false;
    if (given != 1) {
        error_setg(errp, "exactly one of listen=, connect=, mcast= or udp= is required");
    } else if (local && !udp && !mcast) {
        error_setg(errp, "localaddr= is only valid with mcast= or udp=");
    } else if (mcast) {
        error_setg(errp, "-netdev socket,mcast= is not supported by vireo (use udp=)");
    } else if (fd) {
        ok = do_fd(s, fd, errp);
    } else if (listen_at) {
        ok = do_listen(s, listen_at, errp);
    } else if (conn) {
        ok = do_connect(s, conn, errp);
    } else {
        ok = do_udp(s, udp, local, errp);
    }
    keyval_free(&kv);
    if (!ok) {
        socket_close(&s->nc);
        return NULL;
    }
    return &s->nc;
}
