/*
 * The daemons' QMP socket front end (see qmp-server.h).
 *
 * A client that must be dropped while the engine is writing to it (from
 * inside its own command or an event broadcast) cannot be freed there:
 * it is marked dead and shut down, which makes its socket report a hang-up
 * and so wakes the daemon's loop, and the next qmp_server_poll() frees it.
 */
#include "monitor/qmp-server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/osdep.h"
#include "util/unix-socket.h"

#define DEFAULT_MAX_OUTPUT (1u << 20)
#define DEFAULT_MAX_CLIENTS 64
#define READ_CHUNK 65536
#define READS_PER_POLL 4        /* so one busy client cannot starve the rest */

typedef struct QmpClient QmpClient;

struct QmpClient {
    QmpServer *srv;
    int fd;
    QmpSession *session;
    char *out;                  /* unsent bytes start at out + out_off */
    size_t out_off, out_len, out_cap;
    bool out_armed;             /* EPOLLOUT is registered */
    bool dead;
    QmpClient *next;
};

struct QmpServer {
    QmpServerConfig cfg;
    char *path;
    int listen_fd;
    int epfd;
    unsigned nclients;
    QmpClient *clients;
};

static void server_log(const QmpServer *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void server_log(const QmpServer *srv, const char *fmt, ...)
{
    if (!srv->cfg.log) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg;
    if (vasprintf(&msg, fmt, ap) >= 0) {
        srv->cfg.log(msg);
        free(msg);
    }
    va_end(ap);
}

/* ---- output ---- */

static void client_drop(QmpClient *c, const char *why)
{
    if (c->dead) {
        return;
    }
    server_log(c->srv, "dropping QMP client: %s", why);
    c->dead = true;
    shutdown(c->fd, SHUT_RDWR);
}

static void client_arm_output(QmpClient *c, bool on)
{
    if (c->out_armed == on || c->dead) {
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
                              .data.ptr = c };
    if (epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        client_drop(c, "cannot watch its socket");
        return;
    }
    c->out_armed = on;
}

/* Send what the socket takes now. Returns false if the client is gone. */
static bool client_flush(QmpClient *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            client_drop(c, "send failed");
            return false;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    client_arm_output(c, c->out_len > 0);
    return true;
}

static void client_queue(QmpClient *c, const char *text, size_t len)
{
    if (c->out_off > 0 && c->out_off >= c->out_len / 2) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, text, len);
    c->out_len += len;
}

/* The engine's write callback: queue, then send what fits at once. */
static void client_write(void *opaque, const char *text, size_t len)
{
    QmpClient *c = opaque;
    if (c->dead) {
        return;
    }
    if (c->out_len - c->out_off + len > c->srv->cfg.max_output) {
        client_drop(c, "too much output unread");
        return;
    }
    client_queue(c, text, len);
    client_flush(c);
}

static const QmpSessionOps client_ops = {
    .write = client_write,
};

/* ---- clients ---- */

static void client_free(QmpClient *c)
{
    epoll_ctl(c->srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    qmp_session_free(c->session);
    close(c->fd);
    free(c->out);
    free(c);
}

static void reap_dead(QmpServer *srv)
{
    QmpClient **p = &srv->clients;
    while (*p) {
        QmpClient *c = *p;
        if (c->dead) {
            *p = c->next;
            srv->nclients--;
            client_free(c);
        } else {
            p = &c->next;
        }
    }
}

static void client_add(QmpServer *srv, int fd)
{
    if (srv->nclients >= srv->cfg.max_clients) {
        server_log(srv, "refusing a QMP client: %u connected", srv->nclients);
        close(fd);
        return;
    }
    QmpClient *c = xzalloc(sizeof(*c));
    c->srv = srv;
    c->fd = fd;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        server_log(srv, "refusing a QMP client: %s", strerror(errno));
        close(fd);
        free(c);
        return;
    }
    c->next = srv->clients;
    srv->clients = c;
    srv->nclients++;
    QmpSessionConfig cfg = { .table = srv->cfg.table, .version = srv->cfg.version };
    c->session = qmp_session_new(&cfg, &client_ops, c);    /* sends the greeting */
}

static void client_read(QmpClient *c)
{
    char buf[READ_CHUNK];
    for (int i = 0; i < READS_PER_POLL && !c->dead; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            qmp_session_feed(c->session, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->dead = true;     /* the client left: nothing to report */
        }
        return;
    }
}

static void client_ready(QmpClient *c, uint32_t events)
{
    if (c->dead) {
        return;
    }
    if (events & EPOLLIN) {
        client_read(c);
    }
    if (events & EPOLLOUT && !c->dead) {
        client_flush(c);
    }
    if (events & (EPOLLHUP | EPOLLERR) && !(events & EPOLLIN)) {
        c->dead = true;
    }
}

static void accept_clients(QmpServer *srv)
{
    for (int i = 0; i < 16; i++) {     /* a bounded batch per poll */
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED) {
                server_log(srv, "QMP accept failed: %s", strerror(errno));
            }
            return;
        }
        client_add(srv, fd);
    }
}

void qmp_server_poll(QmpServer *srv)
{
    struct epoll_event events[64];
    reap_dead(srv);
    int n = epoll_wait(srv->epfd, events, ARRAY_SIZE(events), 0);
    for (int i = 0; i < n; i++) {
        if (events[i].data.ptr == srv) {
            accept_clients(srv);
        } else {
            client_ready(events[i].data.ptr, events[i].events);
        }
    }
    reap_dead(srv);
}

int qmp_server_fd(const QmpServer *srv)
{
    return srv->epfd;
}

/* ---- listening ---- */

QmpServer *qmp_server_new(const char *path, const QmpServerConfig *cfg, Error **errp)
{
    QmpServer *srv = xzalloc(sizeof(*srv));
    srv->cfg = *cfg;
    srv->cfg.max_output = cfg->max_output ? cfg->max_output : DEFAULT_MAX_OUTPUT;
    srv->cfg.max_clients = cfg->max_clients ? cfg->max_clients : DEFAULT_MAX_CLIENTS;
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->epfd < 0) {
        error_setg_errno(errp, errno, "epoll_create1");
        free(srv);
        return NULL;
    }
    srv->listen_fd = unix_socket_listen(path, errp);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = srv };
    if (srv->listen_fd >= 0 && epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0) {
        error_setg_errno(errp, errno, "epoll_ctl");
        close(srv->listen_fd);
        unlink(path);
        srv->listen_fd = -1;
    }
    if (srv->listen_fd < 0) {
        close(srv->epfd);
        free(srv);
        return NULL;
    }
    srv->path = xstrdup(path);
    return srv;
}

void qmp_server_free(QmpServer *srv)
{
    if (!srv) {
        return;
    }
    for (QmpClient *c = srv->clients; c; c = c->next) {
        if (!c->dead) {
            client_flush(c);
        }
        c->dead = true;
    }
    reap_dead(srv);
    close(srv->listen_fd);
    close(srv->epfd);
    unlink(srv->path);
    free(srv->path);
    free(srv);
}
