/*
 * Rate-limited, non-blocking logging (see log.h).
 *
 * Why a writer thread rather than a non-blocking stderr: O_NONBLOCK is a
 * property of the open file description, which fd 2 shares with the parent
 * shell, the terminal, or whoever holds the other end of the pipe; setting
 * it would make their writes fail with EAGAIN too. Reopening
 * /proc/self/fd/2 gives a private description for pipes and terminals but
 * not for sockets. A thread that does plain blocking writes of a bounded
 * queue leaves fd 2 untouched, works for every kind of stderr, and the only
 * thing a stalled reader can stop is that thread.
 */
#include "util/log.h"
#include "util/osdep.h"
#include "util/seccomp-hook.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 512

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_more = PTHREAD_COND_INITIALIZER;     /* queue got bytes */
static pthread_cond_t log_drained = PTHREAD_COND_INITIALIZER;  /* queue went empty */
static char log_queue[LOG_QUEUE_SIZE];
static size_t log_head;             /* next byte to write out */
static size_t log_len;              /* bytes queued */
static bool log_writing;            /* the writer holds bytes it took out */
static uint64_t log_dropped;        /* lines that found the queue full */
static bool log_thread_started;
static bool log_thread_failed;
static LogRateLimit *log_buckets;   /* every bucket that has been used */

/* ---- the queue and its writer (log_mutex held unless said otherwise) ---- */

static void *log_writer(void *opaque)
{
    char chunk[4096];
    pthread_mutex_lock(&log_mutex);
    for (;;) {
        while (log_len == 0) {
            log_writing = false;
            pthread_cond_broadcast(&log_drained);
            pthread_cond_wait(&log_more, &log_mutex);
        }
        size_t n = log_len < sizeof(chunk) ? log_len : sizeof(chunk);
        for (size_t i = 0; i < n; i++) {
            chunk[i] = log_queue[(log_head + i) % LOG_QUEUE_SIZE];
        }
        log_head = (log_head + n) % LOG_QUEUE_SIZE;
        log_len -= n;
        log_writing = true;
        pthread_mutex_unlock(&log_mutex);
        seccomp_thread_enter(SANDBOX_LOG_WRITER);       /* once the sandbox is on */
        /* May block for as long as nobody reads stderr: only this thread waits. */
        for (size_t done = 0; done < n;) {
            ssize_t w = write(STDERR_FILENO, chunk + done, n - done);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                break;      /* stderr is gone: the line is lost, as with fprintf */
            }
            done += (size_t)w;
        }
        pthread_mutex_lock(&log_mutex);
    }
    return opaque;
}

static bool start_writer(void)
{
    if (log_thread_started || log_thread_failed) {
        return log_thread_started;
    }
    /* The writer takes no signals: they belong to the main loop's signalfd. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t tid;
    if (pthread_create(&tid, NULL, log_writer, NULL) == 0) {
        pthread_detach(tid);
        log_thread_started = true;
    } else {
        log_thread_failed = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return log_thread_started;
}

static bool queue_put(const char *s, size_t len)
{
    if (len > LOG_QUEUE_SIZE - log_len) {
        return false;
    }
    size_t tail = (log_head + log_len) % LOG_QUEUE_SIZE;
    for (size_t i = 0; i < len; i++) {
        log_queue[(tail + i) % LOG_QUEUE_SIZE] = s[i];
    }
    log_len += len;
    return true;
}

/* Queue one whole line, or count it as dropped; never waits for the writer. */
static void queue_line(const char *line)
{
    if (!start_writer()) {
        return;
    }
    if (log_dropped) {
        char note[96];
        int n = snprintf(note, sizeof(note),
                         "vireo: %llu log lines dropped: stderr was not being read\n",
                         (unsigned long long)log_dropped);
        if (!queue_put(note, (size_t)n)) {
            log_dropped++;
            return;
        }
        log_dropped = 0;
    }
    if (!queue_put(line, strlen(line))) {
        log_dropped++;
        return;
    }
    pthread_cond_signal(&log_more);
}

/* ---- rate limiting ---- */

static void report_suppressed(LogRateLimit *rl)
{
    if (rl->suppressed) {
        char line[96];
        snprintf(line, sizeof(line), "vireo: warning: %llu similar messages suppressed\n",
                 (unsigned long long)rl->suppressed);
        queue_line(line);
        rl->suppressed = 0;
    }
}

/* Take one line's worth of credit from rl; false when it must be held back. */
static bool ratelimit_allow(LogRateLimit *rl, int64_t now)
{
    const int64_t cap = LOG_BURST * LOG_INTERVAL_NS;
    if (!rl->started) {
        rl->started = true;
        rl->credit_ns = cap;
        rl->next = log_buckets;
        log_buckets = rl;
    } else if (now > rl->last_ns) {
        int64_t gained = now - rl->last_ns;
        rl->credit_ns = gained >= cap - rl->credit_ns ? cap : rl->credit_ns + gained;
    }
    rl->last_ns = now;
    if (rl->credit_ns < LOG_INTERVAL_NS) {
        rl->suppressed++;
        return false;
    }
    rl->credit_ns -= LOG_INTERVAL_NS;
    return true;
}

void log_warn_ratelimited(LogRateLimit *rl, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[LOG_LINE_MAX + 128];
    int64_t now = monotonic_ns();
    pthread_mutex_lock(&log_mutex);
    if (ratelimit_allow(rl, now)) {
        report_suppressed(rl);
        snprintf(line, sizeof(line), "vireo: warning: %s\n", msg);
        queue_line(line);
    }
    pthread_mutex_unlock(&log_mutex);
}

void log_flush(int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&log_mutex);
    for (LogRateLimit *rl = log_buckets; rl; rl = rl->next) {
        report_suppressed(rl);
    }
    while (log_thread_started && (log_len || log_writing)) {
        if (pthread_cond_timedwait(&log_drained, &log_mutex, &deadline) == ETIMEDOUT) {
            break;      /* stderr is stalled: exit without the rest */
        }
    }
    pthread_mutex_unlock(&log_mutex);
}
