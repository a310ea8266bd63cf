/*
 * The NBD server's socket side: a listening socket, and one thread that
 * accepts clients and moves bytes between their non-blocking sockets and
 * the protocol engine (nbd-conn.c) with epoll, over two worker threads
 * (clients are dealt out in turn, so multi-conn clients read in parallel).
 *
 * Locking: a worker enters the engine (and through it the block layer) with
 * the configuration's lock hook (the VMM's big lock) and then the server
 * mutex held; callers of the export functions hold the hook's lock already
 * (monitor commands) and take the mutex, so the order is always hook, then
 * mutex. Sending and receiving happen outside both: only a client's own
 * worker touches its socket and buffers, and only it closes and frees the
 * client (after the epoll batch that may still name it). Others kill a
 * client, which detaches it from its export at once, and wake its worker.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd/nbd-int.h"
#include "util/osdep.h"
#include "util/seccomp-hook.h"
#include "util/unix-socket.h"

#define MAX_EVENTS          64
#define ROUNDS_PER_EVENT    32      /* recv/send turns per client per wake-up */
#define NR_WORKERS          2

typedef struct Worker Worker;

static __thread Worker *self;       /* the calling thread's, if it is a worker */

/* What an epoll entry of a worker points at, besides its eventfd and the listener. */
enum { WATCH_CLIENT, WATCH_QUEUE };

typedef struct Client {
    int kind;                       /* WATCH_CLIENT */
    NbdConn *conn;
    int fd;
    Worker *w;                      /* the thread that does its socket I/O */
    uint32_t events;                /* what epoll watches now */
    int64_t deadline_ns;            /* end of the handshake allowance */
    bool dead;                      /* closed; freed at the end of the batch */
    bool on_ready;                  /* in its worker's ready list */
    struct Client *ready_next;
    struct Client *next;
} Client;

/* An export's own asynchronous queue, run by worker 0. */
typedef struct QueueWatch {
    int kind;                       /* WATCH_QUEUE */
    NbdExp *e;                      /* NULL once the export is gone */
    struct QueueWatch *next;        /* in the server's graveyard */
} QueueWatch;

struct Worker {
    NbdServer *srv;
    int epfd, wake_fd;
    pthread_t thread;
    bool started;
    Client *graveyard;
    Client *ready;                  /* reads finished for these: serve them */
};

struct NbdServer {
    NbdServerConfig cfg;
    NbdExpList exps;
    int listen_fd;
    bool accepting;                 /* listen_fd is in worker 0's epoll set */
    char *unix_path;
    pthread_mutex_t mu;
    bool stop;
    Client *clients;
    unsigned nr_clients;
    QueueWatch *dead_watches;       /* freed by worker 0 after its batch */
    unsigned next_worker;
    Worker workers[NR_WORKERS];
};

static void srv_log(NbdServer *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void srv_log(NbdServer *srv, const char *fmt, ...)
{
    if (!srv->cfg.log) {
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv->cfg.log(msg);
}

/*
 * The engine and the shared state (clients, exports) are touched only with
 * both locks held; a client's socket and buffers only by its own worker.
 */
static void hook_lock(NbdServer *srv)
{
    if (srv->cfg.lock) {
        srv->cfg.lock();
    }
    pthread_mutex_lock(&srv->mu);
}

static void hook_unlock(NbdServer *srv)
{
    pthread_mutex_unlock(&srv->mu);
    if (srv->cfg.unlock) {
        srv->cfg.unlock();
    }
}

static void wake(Worker *w)
{
    uint64_t one = 1;
    if (w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is already non-zero: the thread wakes anyway */
    }
}

static void set_accepting(NbdServer *srv, bool on)
{
    if (on == srv->accepting || srv->listen_fd < 0) {
        return;
    }
    int epfd = srv->workers[0].epfd;
    if (on) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &srv->listen_fd };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0) {
            return;
        }
    } else {
        epoll_ctl(epfd, EPOLL_CTL_DEL, srv->listen_fd, NULL);
    }
    srv->accepting = on;
}

static bool below_limit(NbdServer *srv)
{
    return !srv->cfg.max_connections || srv->nr_clients < srv->cfg.max_connections;
}

/* Close a client of the calling worker (locks held); freed after the batch. */
static void client_close(NbdServer *srv, Client *cl, const char *why)
{
    if (cl->dead) {
        return;
    }
    if (why) {
        srv_log(srv, "NBD client dropped: %s", why);
    }
    epoll_ctl(cl->w->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
    close(cl->fd);
    nbd_conn_free(cl->conn);
    cl->conn = NULL;
    cl->dead = true;
    for (Client **pp = &srv->clients; *pp; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    }
    srv->nr_clients--;
    if (cl->on_ready) {
        for (Client **pp = &cl->w->ready; *pp; pp = &(*pp)->ready_next) {
            if (*pp == cl) {
                *pp = cl->ready_next;
                break;
            }
        }
        cl->on_ready = false;
    }
    cl->next = cl->w->graveyard;
    cl->w->graveyard = cl;
    if (below_limit(srv) && !srv->stop) {
        set_accepting(srv, true);
    }
}

/*
 * Reads of the client finished in the background (engine lock held, on
 * any thread): have its worker send their replies and go on reading.
 */
static void client_notify(void *opaque)
{
    Client *cl = opaque;
    if (cl->dead || cl->on_ready) {
        return;
    }
    bool was_empty = !cl->w->ready;
    cl->ready_next = cl->w->ready;
    cl->w->ready = cl;
    cl->on_ready = true;
    /* A non-empty list has a wake-up pending already; a worker looks at
     * its own list after every batch. */
    if (was_empty && cl->w != self) {
        wake(cl->w);
    }
}

/* From any thread (locks held): detach from its export now, close soon. */
static void client_kill(Client *cl, const char *why)
{
    nbd_conn_kill(cl->conn, why);
    wake(cl->w);
}

/* ---- moving bytes (no lock: only the owning worker touches these) ---- */

static void client_watch(Client *cl, bool in, bool out)
{
    uint32_t ev = (in ? EPOLLIN : 0) | (out ? EPOLLOUT : 0);
    if (ev != cl->events) {
        struct epoll_event e = { .events = ev, .data.ptr = cl };
        epoll_ctl(cl->w->epfd, EPOLL_CTL_MOD, cl->fd, &e);
        cl->events = ev;
    }
}

/* Send what the engine queued; false (with *why) if the client must go. */
static bool client_flush(Client *cl, const char **why)
{
    for (;;) {
        size_t len;
        const uint8_t *data = nbd_conn_tx_data(cl->conn, &len);
        if (!len) {
            return true;
        }
        ssize_t n = send(cl->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true;
            }
            if (errno == EINTR) {
                continue;
            }
            *why = errno == EPIPE || errno == ECONNRESET ? NULL : "send failed";
            return false;
        }
        nbd_conn_tx_done(cl->conn, n);
    }
}

static size_t backlog(Client *cl)
{
    size_t len;
    nbd_conn_tx_data(cl->conn, &len);
    return len;
}

static void client_service(NbdServer *srv, Client *cl)
{
    for (int round = 0; round < ROUNDS_PER_EVENT; round++) {
        const char *why = NULL;
        bool sent_ok = client_flush(cl, &why);
        bool socket_full = sent_ok && backlog(cl) > 0;
        hook_lock(srv);
        int st = nbd_conn_state(cl->conn);
        if (!sent_ok || st == NBD_CONN_DEAD || (st == NBD_CONN_CLOSING && !backlog(cl))) {
            client_close(srv, cl, sent_ok ? nbd_conn_why(cl->conn) : why);
            hook_unlock(srv);
            return;
        }
        /* Requests already staged run once the replies have drained. */
        nbd_conn_rx(cl->conn, 0);
        size_t room;
        uint8_t *space = nbd_conn_rx_space(cl->conn, &room);
        size_t queued = backlog(cl);
        hook_unlock(srv);
        if (socket_full) {
            /* Wait for room in the socket; take more requests meanwhile if allowed. */
            client_watch(cl, room > 0, true);
            return;
        }
        if (!room) {
            if (queued || st != NBD_CONN_RUNNING) {
                continue;       /* replies made from staged requests: send them */
            }
            /* Waiting for its reads in flight: their completion brings it back. */
            client_watch(cl, false, false);
            return;
        }
        if (queued) {
            continue;           /* the engine made replies: send them first */
        }
        ssize_t n = recv(cl->fd, space, room, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            client_watch(cl, true, false);
            return;
        }
        hook_lock(srv);
        if (n > 0) {
            nbd_conn_rx(cl->conn, n);
        } else {
            if (n == 0) {
                nbd_conn_eof(cl->conn);
            }
            client_close(srv, cl, n == 0 ? nbd_conn_why(cl->conn) :
                                  errno == ECONNRESET ? NULL : "recv failed");
        }
        hook_unlock(srv);
        if (n <= 0) {
            return;
        }
    }
    /* Out of turns: come back on the next wake-up, keeping both directions. */
    client_watch(cl, true, true);
}

/* Locks held. */
static void accept_clients(NbdServer *srv)
{
    for (int i = 0; i < MAX_EVENTS && below_limit(srv); i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                srv_log(srv, "NBD server: out of file descriptors");
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));   /* fails on UNIX */
        /* Room for a few large replies per send (the kernel caps it at wmem_max). */
        int sndbuf = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        Client *cl = xzalloc(sizeof(*cl));
        cl->kind = WATCH_CLIENT;
        cl->fd = fd;
        cl->conn = nbd_conn_new(&srv->exps);
        nbd_conn_set_notify(cl->conn, client_notify, cl);
        cl->w = &srv->workers[srv->next_worker++ % NR_WORKERS];
        cl->deadline_ns = monotonic_ns() +
            (int64_t)(srv->cfg.handshake_seconds ? srv->cfg.handshake_seconds : 10) *
            1000000000ll;
        cl->events = EPOLLIN | EPOLLOUT;
        cl->next = srv->clients;
        srv->clients = cl;
        srv->nr_clients++;
        /* Last: from here on its worker may serve it. */
        struct epoll_event ev = { .events = cl->events, .data.ptr = cl };
        if (epoll_ctl(cl->w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            srv->clients = cl->next;
            srv->nr_clients--;
            close(fd);
            nbd_conn_free(cl->conn);
            free(cl);
        }
    }
    if (!below_limit(srv)) {
        set_accepting(srv, false);      /* the rest wait in the backlog, as with QEMU */
    }
}

/* Locks held: close this worker's clients that are killed, overdue, or all. */
static void reap_clients(NbdServer *srv, Worker *w, bool all)
{
    int64_t now = monotonic_ns();
    Client *next;
    for (Client *cl = srv->clients; cl; cl = next) {
        next = cl->next;
        if (cl->w != w) {
            continue;
        }
        if (all || nbd_conn_state(cl->conn) == NBD_CONN_DEAD) {
            client_close(srv, cl, all ? NULL : nbd_conn_why(cl->conn));
        } else if (nbd_conn_in_handshake(cl->conn) && now > cl->deadline_ns) {
            client_close(srv, cl, "handshake took too long");
        }
    }
}

static void *worker_thread(void *opaque)
{
    Worker *w = opaque;
    NbdServer *srv = w->srv;
    struct epoll_event evs[MAX_EVENTS];
    self = w;
    pthread_setname_np(pthread_self(), "NBD worker");  /* seen in /proc/PID/task/TID/comm */
    for (;;) {
        seccomp_thread_enter(SANDBOX_NBD_WORKER);       /* once the sandbox is on */
        int n = epoll_wait(w->epfd, evs, MAX_EVENTS, 1000);
        if (n < 0 && errno != EINTR) {
            srv_log(srv, "NBD server: epoll_wait: %s", strerror(errno));
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &w->wake_fd) {
                uint64_t v;
                if (read(w->wake_fd, &v, sizeof(v)) < 0) {
                    /* nothing was pending */
                }
            } else if (ptr == &srv->listen_fd) {
                hook_lock(srv);
                if (!srv->stop) {
                    accept_clients(srv);
                }
                hook_unlock(srv);
            } else if (*(int *)ptr == WATCH_QUEUE) {
                QueueWatch *qw = ptr;
                hook_lock(srv);
                if (qw->e) {
                    blk_queue_process(qw->e->queue, false);
                }
                hook_unlock(srv);
            } else if (!((Client *)ptr)->dead) {
                client_service(srv, ptr);
            }
        }
        /* Clients whose reads finished; each is taken off under the lock, as
         * a completion on another thread may put it back at any time. */
        for (;;) {
            hook_lock(srv);
            Client *cl = w->ready;
            if (cl) {
                w->ready = cl->ready_next;
                cl->on_ready = false;
            }
            hook_unlock(srv);
            if (!cl) {
                break;
            }
            client_service(srv, cl);
        }
        hook_lock(srv);
        bool stop = srv->stop;
        reap_clients(srv, w, stop);
        while (w->graveyard) {
            Client *cl = w->graveyard;
            w->graveyard = cl->next;
            free(cl);
        }
        while (w == &srv->workers[0] && srv->dead_watches) {
            QueueWatch *qw = srv->dead_watches;
            srv->dead_watches = qw->next;
            free(qw);
        }
        hook_unlock(srv);
        if (stop) {
            return NULL;
        }
    }
}

/* ---- listening ---- */

static int listen_inet(const char *host, const char *port, Error **errp)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *res;
    int rc = getaddrinfo(host && *host ? host : NULL, port, &hints, &res);
    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host ? host : "",
                   port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "Failed to bind socket");
    }
    return fd;
}

NbdServer *nbd_server_new(const NbdAddress *addr, const NbdServerConfig *cfg, Error **errp)
{
    int lfd;
    switch (addr->type) {
    case NBD_ADDR_UNIX:
        lfd = addr->path ? unix_socket_listen(addr->path, errp) : -1;
        if (!addr->path) {
            error_setg(errp, "a UNIX socket path is needed");
        }
        break;
    case NBD_ADDR_INET:
        if (!addr->port) {
            error_setg(errp, "a port is needed");
            return NULL;
        }
        lfd = listen_inet(addr->host, addr->port, errp);
        break;
    default:
        lfd = addr->fd;
        if (lfd < 0) {
            error_setg(errp, "a listening socket is needed");
        }
        break;
    }
    if (lfd < 0) {
        return NULL;
    }
    NbdServer *srv = xzalloc(sizeof(*srv));
    srv->cfg = *cfg;
    srv->listen_fd = lfd;
    if (addr->type == NBD_ADDR_UNIX) {
        srv->unix_path = xstrdup(addr->path);
    }
    pthread_mutex_init(&srv->mu, NULL);
    for (int i = 0; i < NR_WORKERS; i++) {
        Worker *w = &srv->workers[i];
        w->srv = srv;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &w->wake_fd };
        if (w->epfd < 0 || w->wake_fd < 0 ||
            epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0) {
            error_setg_errno(errp, errno, "NBD server: cannot set up its event loop");
            nbd_server_free(srv);
            return NULL;
        }
    }
    set_accepting(srv, true);
    /* Signals are the program's business: the threads take none. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 0; i < NR_WORKERS && !rc; i++) {
        rc = pthread_create(&srv->workers[i].thread, NULL, worker_thread, &srv->workers[i]);
        srv->workers[i].started = !rc;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        error_setg_errno(errp, rc, "NBD server: cannot start its threads");
        nbd_server_free(srv);
        return NULL;
    }
    return srv;
}

void nbd_server_free(NbdServer *srv)
{
    if (!srv) {
        return;
    }
    pthread_mutex_lock(&srv->mu);
    srv->stop = true;
    for (Client *cl = srv->clients; cl; cl = cl->next) {
        nbd_conn_kill(cl->conn, NULL);
    }
    set_accepting(srv, false);
    pthread_mutex_unlock(&srv->mu);
    bool any = false;
    for (int i = 0; i < NR_WORKERS; i++) {
        wake(&srv->workers[i]);
        any |= srv->workers[i].started;
    }
    if (any) {
        /* The threads may be waiting for the hook's lock, which the caller holds. */
        if (srv->cfg.unlock) {
            srv->cfg.unlock();
        }
        for (int i = 0; i < NR_WORKERS; i++) {
            if (srv->workers[i].started) {
                pthread_join(srv->workers[i].thread, NULL);
            }
        }
        if (srv->cfg.lock) {
            srv->cfg.lock();
        }
    }
    /* Clients of threads that never started (set-up failed) */
    while (srv->clients) {
        Client *cl = srv->clients;
        srv->clients = cl->next;
        close(cl->fd);
        nbd_conn_free(cl->conn);
        free(cl);
    }
    for (int i = 0; i < NR_WORKERS; i++) {
        Worker *w = &srv->workers[i];
        while (w->graveyard) {
            Client *cl = w->graveyard;
            w->graveyard = cl->next;
            free(cl);
        }
        if (w->epfd > 0) {
            close(w->epfd);
        }
        if (w->wake_fd > 0) {
            close(w->wake_fd);
        }
    }
    while (srv->exps.head) {
        NbdExp *e = srv->exps.head;
        srv->exps.head = e->next;
        free(e->watch);
        nbd_exp_free(e);
    }
    while (srv->dead_watches) {
        QueueWatch *qw = srv->dead_watches;
        srv->dead_watches = qw->next;
        free(qw);
    }
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
    }
    if (srv->unix_path) {
        unlink(srv->unix_path);
        free(srv->unix_path);
    }
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

/* ---- exports ---- */

/* Give @e a queue of its own, run by worker 0; without one it reads synchronously. */
static void own_queue(NbdServer *srv, NbdExp *e, unsigned depth)
{
    Error *err = NULL;
    BlockQueue *q = blk_queue_new_pool(e->img, depth, &err);
    if (!q) {
        srv_log(srv, "NBD export '%s' reads one request at a time: %s", e->name,
                error_get_pretty(err));
        error_free(err);
        return;
    }
    QueueWatch *qw = xzalloc(sizeof(*qw));
    qw->kind = WATCH_QUEUE;
    qw->e = e;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = qw };
    if (epoll_ctl(srv->workers[0].epfd, EPOLL_CTL_ADD, blk_queue_fd(q), &ev) < 0) {
        srv_log(srv, "NBD export '%s' reads one request at a time: %s", e->name,
                strerror(errno));
        free(qw);
        blk_queue_free(q);
        return;
    }
    e->queue = q;
    e->own_queue = true;
    e->watch = qw;
}

/* Stop running @e's own queue (mutex held); the watch is freed after worker 0's batch. */
static void unwatch_queue(NbdServer *srv, NbdExp *e)
{
    QueueWatch *qw = e->watch;
    if (!qw) {
        return;
    }
    epoll_ctl(srv->workers[0].epfd, EPOLL_CTL_DEL, blk_queue_fd(e->queue), NULL);
    qw->e = NULL;
    qw->next = srv->dead_watches;
    srv->dead_watches = qw;
    e->watch = NULL;
}

bool nbd_export_add(NbdServer *srv, const NbdExportConfig *cfg, Error **errp)
{
    pthread_mutex_lock(&srv->mu);
    bool ok = false;
    if (nbd_exp_find(&srv->exps, cfg->name)) {
        error_setg(errp, "NBD server already has export named '%s'", cfg->name);
    } else {
        NbdExp *e = nbd_exp_new(cfg, errp);
        if (e && !cfg->queue && cfg->queue_depth) {
            own_queue(srv, e, cfg->queue_depth);
        }
        if (e) {
            NbdExp **tail = &srv->exps.head;
            while (*tail) {
                tail = &(*tail)->next;
            }
            *tail = e;
            ok = true;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return ok;
}

bool nbd_export_del(NbdServer *srv, const char *name, bool hard, void **owner,
                    Error **errp)
{
    pthread_mutex_lock(&srv->mu);
    NbdExp **pp = &srv->exps.head;
    while (*pp && strcmp((*pp)->name, name)) {
        pp = &(*pp)->next;
    }
    NbdExp *e = *pp;
    if (!e) {
        error_setg(errp, "Export '%s' is not found", name);
        pthread_mutex_unlock(&srv->mu);
        return false;
    }
    if (e->clients && !hard) {
        error_setg(errp, "export '%s' still in use", name);
        pthread_mutex_unlock(&srv->mu);
        return false;
    }
    for (Client *cl = srv->clients; cl; cl = cl->next) {
        if (nbd_conn_export(cl->conn) == e) {
            client_kill(cl, NULL);      /* detached now, closed by its worker */
        }
    }
    *pp = e->next;
    if (owner) {
        *owner = e->owner;
    }
    /* Under the mutex: its reads in flight finish into their connections. */
    unwatch_queue(srv, e);
    nbd_exp_free(e);
    pthread_mutex_unlock(&srv->mu);
    return true;
}

bool nbd_export_exists(NbdServer *srv, const char *name)
{
    pthread_mutex_lock(&srv->mu);
    bool found = nbd_exp_find(&srv->exps, name) != NULL;
    pthread_mutex_unlock(&srv->mu);
    return found;
}

int nbd_export_clients(NbdServer *srv, const char *name)
{
    pthread_mutex_lock(&srv->mu);
    NbdExp *e = nbd_exp_find(&srv->exps, name);
    int n = e ? (int)e->clients : -1;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

unsigned nbd_server_clients(NbdServer *srv)
{
    pthread_mutex_lock(&srv->mu);
    unsigned n = srv->nr_clients;
    pthread_mutex_unlock(&srv->mu);
    return n;
}
