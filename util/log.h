/*
 * Messages a guest (or any peer) can trigger at will: a broken virtqueue,
 * a vCPU that stopped, a vhost set-up that failed. Two promises:
 *
 *  - rate: each call site (one LogRateLimit) prints at most LOG_BURST lines
 *    at once and one line per LOG_INTERVAL_NS after that; the rest are
 *    counted and reported as "N similar messages suppressed" with the next
 *    line that gets through;
 *  - never blocking: lines go to a bounded in-memory queue that a writer
 *    thread drains to stderr. A stderr pipe nobody reads costs dropped lines
 *    (counted and reported once it drains), never a stalled main loop or
 *    vCPU thread.
 *
 * Start-up and command-line errors keep using error_report(): they are
 * written at once, before vireo exits.
 */
#ifndef VIREO_UTIL_LOG_H
#define VIREO_UTIL_LOG_H

#include <stdbool.h>
#include <stdint.h>

#define LOG_BURST 5
#define LOG_INTERVAL_NS 1000000000LL
#define LOG_QUEUE_SIZE (64u << 10)

typedef struct LogRateLimit {
    bool started;           /* credit and last_ns are valid */
    int64_t credit_ns;      /* token bucket: LOG_INTERVAL_NS per line */
    int64_t last_ns;        /* monotonic time of the last refill */
    uint64_t suppressed;    /* lines held back since the last one printed */
    struct LogRateLimit *next;  /* every bucket used so far, for log_flush() */
} LogRateLimit;

/* "vireo: warning: MSG" through rl's bucket and the non-blocking queue. */
void log_warn_ratelimited(LogRateLimit *rl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The usual form: one bucket per call site. */
#define LOG_GUEST_WARN(...)                          \
    do {                                             \
        static LogRateLimit log_rl_;                 \
        log_warn_ratelimited(&log_rl_, __VA_ARGS__); \
    } while (0)

/* At exit: report what each call site still holds back, then give the
 * writer up to timeout_ms to empty the queue. */
void log_flush(int timeout_ms);

#endif
