#include "core/main-loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/lock.h"
#include "util/osdep.h"

/* ---- the big lock ---- */

static pthread_mutex_t big_mutex = PTHREAD_MUTEX_INITIALIZER;
static __thread bool big_lock_mine;

void big_lock(void)
{
    pthread_mutex_lock(&big_mutex);
    big_lock_mine = true;
}

void big_unlock(void)
{
    big_lock_mine = false;
    pthread_mutex_unlock(&big_mutex);
}

bool big_lock_held(void)
{
    return big_lock_mine;
}

/* ---- fd handlers ---- */

typedef struct FdHandler {
    int fd;
    IOHandler *read, *write;
    void *opaque;
    bool deleted;
    struct FdHandler *next;
} FdHandler;

static int epoll_fd = -1;
static FdHandler *handlers;
static int wake_fd = -1;        /* eventfd: main_loop_schedule and quit */
static volatile int quit_requested = -1;
static int stop_request_fd = -1;   /* see main_loop_set_stop_request_fd() */

static FdHandler *find_handler(int fd)
{
    for (FdHandler *h = handlers; h; h = h->next) {
        if (h->fd == fd && !h->deleted) {
            return h;
        }
    }
    return NULL;
}

void main_loop_set_fd_handler(int fd, IOHandler *read, IOHandler *write, void *opaque)
{
    FdHandler *h = find_handler(fd);
    if (!read && !write) {
        if (h) {
            epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            /* Freed after the current dispatch pass: it may be running now. */
            h->deleted = true;
        }
        return;
    }
    struct epoll_event ev = {
        .events = (read ? EPOLLIN : 0) | (write ? EPOLLOUT : 0),
    };
    if (!h) {
        h = xzalloc(sizeof(*h));
        h->fd = fd;
        h->next = handlers;
        handlers = h;
        ev.data.ptr = h;
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    } else {
        ev.data.ptr = h;
        epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
    }
    h->read = read;
    h->write = write;
    h->opaque = opaque;
}

static void reap_deleted_handlers(void)
{
    FdHandler **p = &handlers;
    while (*p) {
        FdHandler *h = *p;
        if (h->deleted) {
            *p = h->next;
            free(h);
        } else {
            p = &h->next;
        }
    }
}

/* ---- cross-thread scheduling ---- */

typedef struct Scheduled {
    IOHandler *cb;
    void *opaque;
    struct Scheduled *next;
} Scheduled;

static pthread_mutex_t sched_mutex = PTHREAD_MUTEX_INITIALIZER;
static Scheduled *sched_head, **sched_tail = &sched_head;

static void wake_main_loop(void)
{
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof(one)) < 0) {
        /* The counter is saturated: the loop is awake anyway. */
    }
}

void main_loop_schedule(IOHandler *cb, void *opaque)
{
    Scheduled *s = xzalloc(sizeof(*s));
    s->cb = cb;
    s->opaque = opaque;
    pthread_mutex_lock(&sched_mutex);
    *sched_tail = s;
    sched_tail = &s->next;
    pthread_mutex_unlock(&sched_mutex);
    wake_main_loop();
}

static void run_scheduled(void)
{
    pthread_mutex_lock(&sched_mutex);
    Scheduled *list = sched_head;
    sched_head = NULL;
    sched_tail = &sched_head;
    pthread_mutex_unlock(&sched_mutex);
    while (list) {
        Scheduled *next = list->next;
        list->cb(list->opaque);
        free(list);
        list = next;
    }
}

static void wake_fd_read(void *opaque)
{
    uint64_t v;
    if (read(wake_fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing pending. */
    }
}

void main_loop_set_stop_request_fd(int fd)
{
    stop_request_fd = fd;
}

int main_loop_wait_peer(int fd, short events, int timeout_ms)
{
    struct pollfd p[2] = {
        { .fd = fd, .events = events },
        { .fd = stop_request_fd, .events = POLLIN },   /* poll skips it while -1 */
    };
    int rc = poll(p, 2, timeout_ms);
    if (rc > 0 && !p[0].revents) {
        errno = ECANCELED;
        return -1;
    }
    return rc;
}

void main_loop_quit(int status)
{
    quit_requested = status;
    wake_main_loop();
}

/* ---- clocks and timers ---- */

struct Timer {
    VireoClock clock;
    IOHandler *cb;
    void *opaque;
    int64_t expire;
    bool pending;
    Timer *next;            /* in the clock's list, sorted by expire */
};

static Timer *timer_lists[2];

/* Virtual clock: host monotonic time minus the time spent stopped. */
static bool virtual_running;
static bool virtual_manual;
static int64_t virtual_offset;      /* running: virtual = monotonic - offset */
static int64_t virtual_frozen;      /* stopped or manual: the value */

int64_t clock_get_ns(VireoClock clock)
{
    if (clock == CLOCK_REALTIME_HOST) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    if (virtual_running && !virtual_manual) {
        return monotonic_ns() - virtual_offset;
    }
    return virtual_frozen;
}

void clock_virtual_pause(void)
{
    if (virtual_running) {
        virtual_frozen = clock_get_ns(CLOCK_VIRTUAL);
        virtual_running = false;
    }
}

void clock_virtual_resume(void)
{
    if (!virtual_running) {
        virtual_offset = monotonic_ns() - virtual_frozen;
        virtual_running = true;
    }
}

void clock_virtual_set_manual(bool manual)
{
    virtual_frozen = clock_get_ns(CLOCK_VIRTUAL);
    virtual_manual = manual;
    if (!manual && virtual_running) {
        virtual_offset = monotonic_ns() - virtual_frozen;
    }
}

static void timer_unlink(Timer *t)
{
    for (Timer **p = &timer_lists[t->clock]; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    t->pending = false;
}

Timer *timer_new(VireoClock clock, IOHandler *cb, void *opaque)
{
    Timer *t = xzalloc(sizeof(*t));
    t->clock = clock;
    t->cb = cb;
    t->opaque = opaque;
    return t;
}

void timer_mod(Timer *t, int64_t expire_ns)
{
    if (t->pending) {
        timer_unlink(t);
    }
    t->expire = expire_ns;
    t->pending = true;
    Timer **p = &timer_lists[t->clock];
    while (*p && (*p)->expire <= expire_ns) {
        p = &(*p)->next;
    }
    t->next = *p;
    *p = t;
}

void timer_del(Timer *t)
{
    if (t && t->pending) {
        timer_unlink(t);
    }
}

bool timer_pending(const Timer *t)
{
    return t->pending;
}

void timer_free(Timer *t)
{
    timer_del(t);
    free(t);
}

/* Fire every timer of clock that is due at 'now'; timers may re-arm themselves. */
static void run_timers(VireoClock clock, int64_t now)
{
    Timer *t;
    while ((t = timer_lists[clock]) && t->expire <= now) {
        timer_unlink(t);
        t->cb(t->opaque);
    }
}

int64_t clock_virtual_next_deadline(void)
{
    return timer_lists[CLOCK_VIRTUAL] ? timer_lists[CLOCK_VIRTUAL]->expire : -1;
}

void clock_virtual_warp(int64_t target_ns)
{
    Timer *t;
    while ((t = timer_lists[CLOCK_VIRTUAL]) && t->expire <= target_ns) {
        if (t->expire > virtual_frozen) {
            virtual_frozen = t->expire;
        }
        timer_unlink(t);
        t->cb(t->opaque);
    }
    if (target_ns > virtual_frozen) {
        virtual_frozen = target_ns;
    }
}

/* Milliseconds until the next timer is due (-1: none). */
static int next_timeout_ms(void)
{
    int64_t best = -1;
    for (int c = 0; c < 2; c++) {
        Timer *t = timer_lists[c];
        if (!t || (c == CLOCK_VIRTUAL && (virtual_manual || !virtual_running))) {
            continue;
        }
        int64_t delta = t->expire - clock_get_ns((VireoClock)c);
        if (delta < 0) {
            delta = 0;
        }
        if (best < 0 || delta < best) {
            best = delta;
        }
    }
    if (best < 0) {
        return -1;
    }
    int64_t ms = (best + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

/* ---- the loop ---- */

bool main_loop_init(Error **errp)
{
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd < 0 || wake_fd < 0) {
        error_setg_errno(errp, errno, "cannot create the main loop");
        return false;
    }
    main_loop_set_fd_handler(wake_fd, wake_fd_read, NULL, NULL);
    big_lock();
    return true;
}

static void dispatch_events(struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        FdHandler *h = evs[i].data.ptr;
        /* An error or hang-up is reported to the reader, which sees EOF. */
        if (!h->deleted && h->read && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            h->read(h->opaque);
        }
        if (!h->deleted && h->write && (evs[i].events & (EPOLLOUT | EPOLLERR))) {
            h->write(h->opaque);
        }
    }
}

int main_loop_run(void)
{
    struct epoll_event evs[64];
    while (quit_requested < 0) {
        int timeout = next_timeout_ms();
        big_unlock();
        int n = epoll_wait(epoll_fd, evs, ARRAY_SIZE(evs), timeout);
        big_lock();
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (n > 0) {
            dispatch_events(evs, n);
        }
        reap_deleted_handlers();
        run_scheduled();
        run_timers(CLOCK_REALTIME_HOST, clock_get_ns(CLOCK_REALTIME_HOST));
        if (virtual_running && !virtual_manual) {
            run_timers(CLOCK_VIRTUAL, clock_get_ns(CLOCK_VIRTUAL));
        }
    }
    return quit_requested < 0 ? 1 : quit_requested;
}
