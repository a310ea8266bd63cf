/*
 * The event loop (see loop.h). Handlers are found by fd at dispatch time, so
 * a handler that removes another fd (or its own) never leaves a dangling
 * pointer in the batch epoll returned.
 */
#include "vhost-user/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "util/osdep.h"

#define MAX_EVENTS  64
#define MAX_POLLERS 64

typedef struct FdHandler {
    VuFdHandler *fn;
    void *opaque;
} FdHandler;

typedef struct Poller {
    void *key;                  /* who registered it */
    VuFdHandler *fn;
    void *opaque;
} Poller;

struct VuLoop {
    int epfd;
    FdHandler *fds;             /* indexed by fd */
    int nfds;
    Poller pollers[MAX_POLLERS];
};

VuLoop *vu_loop_new(Error **errp)
{
    VuLoop *loop = xzalloc(sizeof(*loop));
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        error_setg_errno(errp, errno, "epoll_create1");
        free(loop);
        return NULL;
    }
    return loop;
}

void vu_loop_free(VuLoop *loop)
{
    if (loop) {
        close(loop->epfd);
        free(loop->fds);
        free(loop);
    }
}

static void grow(VuLoop *loop, int fd)
{
    if (fd < loop->nfds) {
        return;
    }
    int n = MAX(fd + 1, loop->nfds * 2);
    loop->fds = xrealloc(loop->fds, sizeof(FdHandler) * n);
    memset(loop->fds + loop->nfds, 0, sizeof(FdHandler) * (n - loop->nfds));
    loop->nfds = n;
}

bool vu_loop_set_fd(VuLoop *loop, int fd, VuFdHandler *fn, void *opaque, Error **errp)
{
    if (fd < 0) {
        return true;
    }
    grow(loop, fd);
    bool had = loop->fds[fd].fn != NULL;
    if (!fn) {
        if (had) {
            epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
        }
        loop->fds[fd] = (FdHandler){ 0 };
        return true;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    if (epoll_ctl(loop->epfd, had ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0) {
        error_setg_errno(errp, errno, "cannot watch fd %d", fd);
        return false;
    }
    loop->fds[fd] = (FdHandler){ fn, opaque };
    return true;
}

void vu_loop_set_poll(VuLoop *loop, void *key, VuFdHandler *fn, void *opaque)
{
    Poller *free_slot = NULL;
    for (int i = 0; i < MAX_POLLERS; i++) {
        Poller *p = &loop->pollers[i];
        if (p->key == key) {
            *p = fn ? (Poller){ key, fn, opaque } : (Poller){ 0 };
            return;
        }
        if (!p->key && !free_slot) {
            free_slot = p;
        }
    }
    if (fn && free_slot) {
        *free_slot = (Poller){ key, fn, opaque };
    }
}

static bool polling(const VuLoop *loop)
{
    for (int i = 0; i < MAX_POLLERS; i++) {
        if (loop->pollers[i].fn) {
            return true;
        }
    }
    return false;
}

void vu_loop_run_once(VuLoop *loop, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    bool poll = polling(loop);
    int n = epoll_wait(loop->epfd, ev, MAX_EVENTS, poll ? 0 : timeout_ms);
    for (int i = 0; i < n; i++) {
        int fd = ev[i].data.fd;
        if (fd < loop->nfds && loop->fds[fd].fn) {
            loop->fds[fd].fn(loop->fds[fd].opaque);
        }
    }
    for (int i = 0; poll && i < MAX_POLLERS; i++) {
        Poller p = loop->pollers[i];
        if (p.fn) {
            p.fn(p.opaque);
        }
    }
}

VuQuitSignals vu_quit_signals_open(bool *quit)
{
    sigset_t set;
    block_quit_signals(&set);
    signal(SIGPIPE, SIG_IGN);
    return (VuQuitSignals){ .fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), .quit = quit };
}

void vu_quit_signals_ready(void *opaque)
{
    VuQuitSignals *qs = opaque;
    struct signalfd_siginfo si;
    if (read(qs->fd, &si, sizeof(si)) == sizeof(si)) {
        *qs->quit = true;
    }
}
