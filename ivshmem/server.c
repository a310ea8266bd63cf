/*
 * vireo-ivshmem-server's core (see server.h and README.md).
 *
 * Every client socket is non-blocking. A message is sent at once when the
 * client's queue is empty and the socket takes it; otherwise it is queued
 * with a reference to its descriptor and flushed on EPOLLOUT. A client whose
 * queue passes its bound, whose socket errors, or who sends anything at all
 * is marked dead; dead clients are removed, and their leave announced, at
 * the end of each loop turn, so no removal happens in the middle of
 * iterating over the peers.
 */
#include "ivshmem/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "util/osdep.h"

static bool log_to_syslog;

void ivsh_log_to_syslog(void)
{
    openlog("vireo-ivshmem-server", LOG_PID, LOG_DAEMON);
    log_to_syslog = true;
}

static void log_line(int priority, const char *fmt, va_list ap)
{
    if (log_to_syslog) {
        vsyslog(priority, fmt, ap);
        return;
    }
    fputs("vireo-ivshmem-server: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void ivsh_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(LOG_WARNING, fmt, ap);
    va_end(ap);
}

void ivsh_log(const IvshServer *s, const char *fmt, ...)
{
    if (!s->cfg.verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_line(LOG_INFO, fmt, ap);
    va_end(ap);
}

/* ---- ids ---------------------------------------------------------------- */

static bool id_is_free(const IvshServer *s, unsigned id)
{
    return !s->by_id[id] && s->leaves_pending[id] == 0;
}

/* Round-robin upward from the last id handed out, so a just-freed id is the
 * last to come back. Returns -1 when every id is held or still draining. */
static int id_alloc(IvshServer *s)
{
    for (unsigned i = 0; i < IVSHMEM_ID_COUNT; i++) {
        unsigned id = (s->next_id + i) % IVSHMEM_ID_COUNT;
        if (id_is_free(s, id)) {
            s->next_id = (id + 1) % IVSHMEM_ID_COUNT;
            return (int)id;
        }
    }
    return -1;
}

/* One leave notice for @leave_of reached its client, or never will. */
static void leave_notice_done(IvshServer *s, int32_t leave_of)
{
    if (leave_of >= 0 && s->leaves_pending[leave_of] > 0) {
        s->leaves_pending[leave_of]--;
    }
}

/* ---- dropping ----------------------------------------------------------- */

static void peer_mark_dead(IvshServer *s, IvshPeer *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void peer_mark_dead(IvshServer *s, IvshPeer *p, const char *fmt, ...)
{
    if (p->dead) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof(p->why), fmt, ap);
    va_end(ap);
    p->dead = true;
    p->next_dead = s->dead;
    s->dead = p;
}

/* The client went away by itself: logged only with -v, not as a drop. */
static void peer_mark_gone(IvshServer *s, IvshPeer *p)
{
    if (!p->dead) {
        peer_mark_dead(s, p, "disconnected");
        p->left_by_itself = true;
    }
}

/* ---- output queue ------------------------------------------------------- */

static void peer_arm_output(IvshServer *s, IvshPeer *p, bool on)
{
    if (p->out_armed == on) {
        return;
    }
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
        .data.ptr = &p->watch,
    };
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, p->sock, &ev) < 0) {
        peer_mark_dead(s, p, "cannot watch its socket: %s", strerror(errno));
        return;
    }
    p->out_armed = on;
}

/* ---- eventfd sets ------------------------------------------------------- */

static IvshVectors *vectors_new(unsigned n, Error **errp)
{
    IvshVectors *vec = xzalloc(sizeof(*vec) + sizeof(int) * n);
    vec->refs = 1;
    for (; vec->n < n; vec->n++) {
        vec->fd[vec->n] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (vec->fd[vec->n] < 0) {
            error_setg_errno(errp, errno, "creating eventfd %u of %u", vec->n, n);
            while (vec->n > 0) {
                close(vec->fd[--vec->n]);
            }
            free(vec);
            return NULL;
        }
    }
    return vec;
}

static void vectors_unref(IvshVectors *vec)
{
    if (vec && --vec->refs == 0) {
        for (unsigned i = 0; i < vec->n; i++) {
            close(vec->fd[i]);
        }
        free(vec);
    }
}

static void msg_release_fd(IvshMsg *m)
{
    IvshVectors *owner = m->fd_owner;
    if (owner) {
        if (m->owner_prev) {
            m->owner_prev->owner_next = m->owner_next;
        } else {
            owner->queued = m->owner_next;
        }
        if (m->owner_next) {
            m->owner_next->owner_prev = m->owner_prev;
        }
        vectors_unref(owner);
    }
    m->fd_owner = NULL;
    m->fd = -1;
}

static void msg_free(IvshServer *s, IvshMsg *m)
{
    msg_release_fd(m);
    leave_notice_done(s, m->leave_of);
    free(m);
}

static void queue_push(IvshPeer *p, IvshMsg *m)
{
    m->to = p;
    m->prev = p->out_tail;
    m->next = NULL;
    if (p->out_tail) {
        p->out_tail->next = m;
    } else {
        p->out_head = m;
    }
    p->out_tail = m;
    p->out_len++;
}

static void queue_unlink(IvshPeer *p, IvshMsg *m)
{
    if (m->prev) {
        m->prev->next = m->next;
    } else {
        p->out_head = m->next;
    }
    if (m->next) {
        m->next->prev = m->prev;
    } else {
        p->out_tail = m->prev;
    }
    p->out_len--;
}

/* Whether the client left bytes for us: it broke the one-way protocol. */
static bool peer_sent_data(const IvshPeer *p)
{
    char byte;
    return recv(p->sock, &byte, 1, MSG_DONTWAIT | MSG_PEEK) > 0;
}

/*
 * A send error that only means the client went away is not worth a warning,
 * unless it wrote to us before it left: a client that sends and closes at
 * once is still a misbehaving one, whichever of the two the loop sees first.
 */
static void peer_send_failed(IvshServer *s, IvshPeer *p, int err)
{
    if (peer_sent_data(p)) {
        peer_mark_dead(s, p, "sent data (the protocol is server to client only)");
    } else if (err == EPIPE || err == ECONNRESET) {
        peer_mark_gone(s, p);
    } else {
        peer_mark_dead(s, p, "send failed: %s", strerror(err));
    }
}

static bool peer_enqueue(IvshServer *s, IvshPeer *p, int64_t value, int fd,
                         IvshVectors *fd_owner, size_t off, int32_t leave_of)
{
    if (p->out_len >= p->out_limit) {
        peer_mark_dead(s, p, "output queue over %u messages (not reading)", p->out_limit);
        return false;
    }
    IvshMsg *m = xzalloc(sizeof(*m));
    m->value = value;
    m->fd = fd;
    m->off = (uint8_t)off;
    m->leave_of = leave_of;
    if (fd >= 0 && fd_owner) {
        m->fd_owner = fd_owner;
        fd_owner->refs++;
        m->owner_next = fd_owner->queued;
        if (fd_owner->queued) {
            fd_owner->queued->owner_prev = m;
        }
        fd_owner->queued = m;
    }
    queue_push(p, m);
    peer_arm_output(s, p, true);
    return true;
}

/*
 * Send @value (with @fd unless -1, borrowed from @fd_owner or the server) to
 * @p, or queue it behind what is already waiting. @leave_of names the id
 * whose leave this announces (or -1), so the id stays reserved until the
 * notice is out. Failures mark @p dead.
 */
static void peer_send(IvshServer *s, IvshPeer *p, int64_t value, int fd,
                      IvshVectors *fd_owner, int32_t leave_of)
{
    if (p->dead) {
        leave_notice_done(s, leave_of);
        return;
    }
    size_t off = 0;
    if (!p->out_head) {
        ssize_t n = ivshmem_send_part(p->sock, value, fd, 0);
        if (n == IVSHMEM_MSG_SIZE) {
            leave_notice_done(s, leave_of);
            return;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            peer_send_failed(s, p, errno);
            leave_notice_done(s, leave_of);
            return;
        }
        if (n > 0) {
            off = (size_t)n;
            fd = -1;        /* went out with the first bytes */
        }
    }
    if (!peer_enqueue(s, p, value, fd, fd_owner, off, leave_of)) {
        leave_notice_done(s, leave_of);
    }
}

static void peer_flush(IvshServer *s, IvshPeer *p)
{
    while (p->out_head && !p->dead) {
        IvshMsg *m = p->out_head;
        ssize_t n = ivshmem_send_part(p->sock, m->value, m->off ? -1 : m->fd, m->off);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                peer_send_failed(s, p, errno);
            }
            return;
        }
        msg_release_fd(m);     /* went out with the first bytes */
        m->off += (uint8_t)n;
        if (m->off < IVSHMEM_MSG_SIZE) {
            continue;
        }
        queue_unlink(p, m);
        msg_free(s, m);
    }
    if (!p->out_head) {
        peer_arm_output(s, p, false);
    }
}

/* ---- joining ------------------------------------------------------------ */

static void peer_send_vectors(IvshServer *s, IvshPeer *to, const IvshPeer *of)
{
    for (unsigned v = 0; v < of->vec->n; v++) {
        peer_send(s, to, of->id, of->vec->fd[v], of->vec, -1);
    }
}

/* The message order of the spec: version, id, shm, the existing peers, then
 * everyone else learns of the newcomer, then the newcomer's own vectors. */
static void peer_introduce(IvshServer *s, IvshPeer *p)
{
    peer_send(s, p, IVSHMEM_PROTOCOL_VERSION, -1, NULL, -1);
    peer_send(s, p, p->id, -1, NULL, -1);
    peer_send(s, p, IVSHMEM_SHM_MSG, s->shm_fd, NULL, -1);
    for (IvshPeer *o = s->head; o; o = o->next) {
        if (o != p && !o->dead) {
            peer_send_vectors(s, p, o);
        }
    }
    if (p->dead) {
        return;             /* gone during its own set-up: nobody hears of it */
    }
    for (IvshPeer *o = s->head; o; o = o->next) {
        if (o != p && !o->dead) {
            peer_send_vectors(s, o, p);
        }
    }
    p->announced = true;
    peer_send_vectors(s, p, p);
}

static void peer_ready(IvshServer *s, IvshWatch *w, uint32_t events);

static IvshPeer *peer_new(IvshServer *s, int sock, unsigned id, Error **errp)
{
    IvshPeer *p = xzalloc(sizeof(*p));
    p->watch.ready = peer_ready;
    p->sock = sock;
    p->id = (uint16_t)id;
    p->pid = -1;
    p->uid = (uid_t)-1;
    clock_gettime(CLOCK_REALTIME, &p->joined);
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        p->pid = cred.pid;
        p->uid = cred.uid;
    }
    p->vec = vectors_new(s->cfg.vectors, errp);
    if (!p->vec) {
        free(p);
        return NULL;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &p->watch };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, sock, &ev) < 0) {
        error_setg_errno(errp, errno, "watching the connection");
        vectors_unref(p->vec);
        free(p);
        return NULL;
    }
    return p;
}

static void peer_link(IvshServer *s, IvshPeer *p)
{
    p->prev = s->tail;
    if (s->tail) {
        s->tail->next = p;
    } else {
        s->head = p;
    }
    s->tail = p;
    s->by_id[p->id] = p;
    s->npeers++;
}

static void peer_admit(IvshServer *s, int sock)
{
    if (s->npeers >= s->cfg.max_peers) {
        ivsh_warn("refusing a client: %u peers connected (--max-peers)", s->npeers);
        close(sock);
        return;
    }
    int id = id_alloc(s);
    if (id < 0) {
        ivsh_warn("refusing a client: all %d ids are in use or awaiting leave notices",
                  IVSHMEM_ID_COUNT);
        close(sock);
        return;
    }
    Error *err = NULL;
    IvshPeer *p = peer_new(s, sock, (unsigned)id, &err);
    if (!p) {
        ivsh_warn("refusing a client: %s", error_get_pretty(err));
        error_free(err);
        close(sock);
        return;
    }
    peer_link(s, p);
    /* Everything the set-up needs may have to wait in the queue; the bound
     * applies to what comes after it. */
    unsigned setup = 3 + p->vec->n;
    for (IvshPeer *o = s->head; o; o = o->next) {
        setup += o != p ? o->vec->n : 0;
    }
    p->out_limit = setup + s->cfg.max_queue;
    peer_introduce(s, p);
    if (s->hooks && s->hooks->peer_joined) {
        s->hooks->peer_joined(s, p);
    }
    ivsh_log(s, "peer %u joined: pid %d uid %u, %u vectors",
             p->id, (int)p->pid, (unsigned)p->uid, p->vec->n);
}

/* ---- leaving ------------------------------------------------------------ */

static void peer_unlink(IvshServer *s, IvshPeer *p)
{
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        s->head = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    } else {
        s->tail = p->prev;
    }
    s->by_id[p->id] = NULL;
    s->npeers--;
}

static void peer_free(IvshServer *s, IvshPeer *p)
{
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->sock, NULL);
    close(p->sock);
    while (p->out_head) {
        IvshMsg *m = p->out_head;
        queue_unlink(p, m);
        msg_free(s, m);
    }
    vectors_unref(p->vec);
    free(p);
}

/*
 * Take back every queued message that would introduce @p, which is leaving,
 * counting per recipient in ->cancelled. A recipient that loses all of them
 * never heard of @p and needs no leave notice either, so a stalled client's
 * backlog does not grow with peers that come and go, nor keep their
 * eventfds open. The messages are found through @p's vectors, not by
 * searching every queue.
 */
static void cancel_queued_joins(IvshServer *s, IvshPeer *p)
{
    IvshMsg *m = p->vec->queued;
    while (m) {
        IvshMsg *next = m->owner_next;
        IvshPeer *to = m->to;
        queue_unlink(to, m);
        msg_free(s, m);             /* p still holds p->vec: it stays alive */
        to->cancelled++;
        if (!to->out_head) {
            peer_arm_output(s, to, false);
        }
        m = next;
    }
}

/* Remove one dead peer and tell the others; telling may kill more. */
static void peer_remove(IvshServer *s, IvshPeer *p)
{
    uint16_t id = p->id;
    peer_unlink(s, p);
    ivsh_log(s, "peer %u left: %s", id, p->why);
    if (!p->left_by_itself) {
        ivsh_warn("dropped peer %u (pid %d): %s", id, (int)p->pid, p->why);
    }
    cancel_queued_joins(s, p);
    for (IvshPeer *o = s->head; o; o = o->next) {
        bool never_told = o->cancelled == p->vec->n;
        o->cancelled = 0;
        if (!p->announced || o->dead || never_told) {
            continue;
        }
        s->leaves_pending[id]++;
        peer_send(s, o, id, -1, NULL, id);
    }
    if (s->hooks && s->hooks->peer_left) {
        s->hooks->peer_left(s, p);
    }
    peer_free(s, p);
}

static void reap_dead(IvshServer *s)
{
    while (s->dead) {
        IvshPeer *p = s->dead;
        s->dead = p->next_dead;
        peer_remove(s, p);
    }
}

/* ---- events ------------------------------------------------------------- */

static void peer_ready(IvshServer *s, IvshWatch *w, uint32_t events)
{
    IvshPeer *p = container_of(w, IvshPeer, watch);
    if (p->dead) {
        return;
    }
    if (events & EPOLLIN) {
        char buf[64];
        ssize_t n = recv(p->sock, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            peer_mark_dead(s, p, "sent data (the protocol is server to client only)");
            return;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            peer_mark_gone(s, p);
            return;
        }
    }
    if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        peer_mark_gone(s, p);
        return;
    }
    if (events & EPOLLOUT) {
        peer_flush(s, p);
    }
}

/* Out of descriptors: give back the spare one, accept and close the oldest
 * waiting connection so it does not keep the listener readable forever. */
static void shed_connection(IvshServer *s)
{
    if (s->spare_fd >= 0) {
        close(s->spare_fd);
    }
    int c = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) {
        close(c);
    }
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ivsh_warn("refusing a client: out of file descriptors");
}

static void listener_ready(IvshServer *s, IvshWatch *w, uint32_t events)
{
    /* A bounded batch, so a connection flood cannot starve the clients. */
    for (int i = 0; i < 64; i++) {
        int c = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            peer_admit(s, c);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE) {
            shed_connection(s);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                   errno != ECONNABORTED) {
            ivsh_warn("accept failed: %s", strerror(errno));
        }
        return;
    }
}

static void signal_ready(IvshServer *s, IvshWatch *w, uint32_t events)
{
    struct signalfd_siginfo si;
    while (read(s->signal_fd, &si, sizeof(si)) == sizeof(si)) {
        ivsh_log(s, "signal %u: exiting", si.ssi_signo);
        s->quit = true;
    }
}

/* ---- set-up and loop ---------------------------------------------------- */

static bool watch_fd(IvshServer *s, int fd, IvshWatch *w, Error **errp)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        error_setg_errno(errp, errno, "epoll_ctl");
        return false;
    }
    return true;
}

bool ivsh_server_watch(IvshServer *s, int fd, IvshWatch *w, Error **errp)
{
    return watch_fd(s, fd, w, errp);
}

bool ivsh_server_init(IvshServer *s, const IvshServerConfig *cfg,
                      int listen_fd, int shm_fd, Error **errp)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->listen_fd = listen_fd;
    s->shm_fd = shm_fd;
    s->signal_fd = -1;
    s->listen_watch.ready = listener_ready;
    s->signal_watch.ready = signal_ready;
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        error_setg_errno(errp, errno, "epoll_create1");
        return false;
    }
    sigset_t mask;
    block_quit_signals(&mask);
    s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->signal_fd < 0) {
        error_setg_errno(errp, errno, "signalfd");
        return false;
    }
    return watch_fd(s, s->listen_fd, &s->listen_watch, errp) &&
           watch_fd(s, s->signal_fd, &s->signal_watch, errp);
}

bool ivsh_server_run(IvshServer *s, Error **errp)
{
    struct epoll_event events[128];
    while (!s->quit) {
        int n = epoll_wait(s->epfd, events, ARRAY_SIZE(events), -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "epoll_wait");
            return false;
        }
        for (int i = 0; i < n; i++) {
            IvshWatch *w = events[i].data.ptr;
            w->ready(s, w, events[i].events);
        }
        reap_dead(s);
    }
    return true;
}

void ivsh_server_cleanup(IvshServer *s)
{
    while (s->head) {
        IvshPeer *p = s->head;
        peer_unlink(s, p);
        peer_free(s, p);
    }
    s->dead = NULL;
    int fds[] = { s->listen_fd, s->signal_fd, s->shm_fd, s->spare_fd, s->epfd };
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}
