#include "core/iothread.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "qapi/qapi-commands.h"
#include "util/osdep.h"
#include "util/seccomp-hook.h"

const OptParam iothread_params[] = {
    { "qom-type", OPT_STRING, "object type (iothread)" },
    { "id", OPT_STRING, "identifier of the thread" },
    { "poll-max-ns", OPT_NUMBER, "longest busy-poll in ns (0: off)", "32768" },
    { "poll-grow", OPT_NUMBER, "ns added to the poll time when polling helps (0: double)", "0" },
    { "poll-shrink", OPT_NUMBER, "ns removed when it does not (0: halve)", "0" },
    { "aio-max-batch", OPT_NUMBER, "most requests submitted at once (0: default)", "0" },
    { NULL },
};

typedef struct Work {
    void (*fn)(void *opaque);
    void *opaque;
    struct Work *next;
} Work;

struct IOThread {
    char *id;
    int64_t poll_max_ns, poll_grow, poll_shrink, aio_max_batch;
    pthread_t thread;
    pid_t tid;
    int wake_fd;
    bool stopping;              /* read with __atomic: set by the main thread */
    pthread_mutex_t lock;
    pthread_cond_t started;
    Work *work;
    IOThread *next;
};

static IOThread *iothreads, **iothreads_tail = &iothreads;

IOThread *iothread_find(const char *id)
{
    for (IOThread *t = iothreads; t; t = t->next) {
        if (!strcmp(t->id, id)) {
            return t;
        }
    }
    return NULL;
}

static void run_work(IOThread *t)
{
    pthread_mutex_lock(&t->lock);
    Work *list = t->work;
    t->work = NULL;
    pthread_mutex_unlock(&t->lock);
    /* Queued newest first: run in submission order. */
    Work *rev = NULL;
    while (list) {
        Work *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        Work *next = rev->next;
        rev->fn(rev->opaque);
        free(rev);
        rev = next;
    }
}

static void *iothread_main(void *opaque)
{
    IOThread *t = opaque;
    pthread_mutex_lock(&t->lock);
    t->tid = gettid();
    pthread_cond_signal(&t->started);
    pthread_mutex_unlock(&t->lock);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN };
    epoll_ctl(ep, EPOLL_CTL_ADD, t->wake_fd, &ev);
    while (!__atomic_load_n(&t->stopping, __ATOMIC_ACQUIRE)) {
        seccomp_thread_enter(SANDBOX_IOTHREAD);     /* once the sandbox is on */
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, -1) > 0) {
            uint64_t v;
            if (read(t->wake_fd, &v, sizeof(v)) < 0) {
                /* spurious wake-up */
            }
        }
        run_work(t);
    }
    close(ep);
    return NULL;
}

void iothread_wake_all(void)
{
    for (IOThread *t = iothreads; t; t = t->next) {
        uint64_t one = 1;
        if (write(t->wake_fd, &one, sizeof(one)) < 0) {
            /* the counter is already non-zero: it wakes anyway */
        }
    }
}

static bool get_number(const KeyValList *kv, const char *key, int64_t *out, Error **errp)
{
    uint64_t v = keyval_get_number(kv, key, 0);
    if (v > INT64_MAX) {
        error_setg(errp, "iothread: '%s' is out of range", key);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

IOThread *iothread_create(const KeyValList *kv, Error **errp)
{
    const char *id = keyval_get(kv, "id");
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
        return NULL;
    }
    if (iothread_find(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')", id);
        return NULL;
    }
    IOThread *t = xzalloc(sizeof(*t));
    t->poll_max_ns = 32768;
    if (keyval_get(kv, "poll-max-ns") && !get_number(kv, "poll-max-ns", &t->poll_max_ns, errp)) {
        goto fail;
    }
    if (!get_number(kv, "poll-grow", &t->poll_grow, errp) ||
        !get_number(kv, "poll-shrink", &t->poll_shrink, errp) ||
        !get_number(kv, "aio-max-batch", &t->aio_max_batch, errp)) {
        goto fail;
    }
    t->id = xstrdup(id);
    t->wake_fd = eventfd(0, EFD_CLOEXEC);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->started, NULL);
    pthread_mutex_lock(&t->lock);
    int rc = pthread_create(&t->thread, NULL, iothread_main, t);
    if (rc) {
        pthread_mutex_unlock(&t->lock);
        error_setg_errno(errp, rc, "cannot start iothread '%s'", id);
        close(t->wake_fd);
        free(t->id);
        goto fail;
    }
    while (!t->tid) {
        pthread_cond_wait(&t->started, &t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    char name[16];
    snprintf(name, sizeof(name), "IO %s", id);
    pthread_setname_np(t->thread, name);
    *iothreads_tail = t;
    iothreads_tail = &t->next;
    return t;
fail:
    free(t);
    return NULL;
}

static void wake(IOThread *t)
{
    uint64_t one = 1;
    if (write(t->wake_fd, &one, sizeof(one)) < 0) {
        /* counter saturated: the thread is awake anyway */
    }
}

void iothread_schedule(IOThread *t, void (*fn)(void *opaque), void *opaque)
{
    Work *w = xzalloc(sizeof(*w));
    w->fn = fn;
    w->opaque = opaque;
    pthread_mutex_lock(&t->lock);
    w->next = t->work;
    t->work = w;
    pthread_mutex_unlock(&t->lock);
    wake(t);
}

void iothread_stop_all(void)
{
    for (IOThread *t = iothreads; t; t = t->next) {
        __atomic_store_n(&t->stopping, true, __ATOMIC_RELEASE);
        wake(t);
        pthread_join(t->thread, NULL);
    }
}

IOThreadInfoList *qmp_query_iothreads(Error **errp)
{
    IOThreadInfoList *list = NULL, **tail = &list;
    for (IOThread *t = iothreads; t; t = t->next) {
        IOThreadInfo *info = xzalloc(sizeof(*info));
        info->id = xstrdup(t->id);
        info->thread_id = t->tid;
        info->poll_max_ns = t->poll_max_ns;
        info->poll_grow = t->poll_grow;
        info->poll_shrink = t->poll_shrink;
        info->aio_max_batch = t->aio_max_batch;
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}
