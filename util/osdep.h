/*
 * Host helpers used all over vireo.
 */
#ifndef VIREO_UTIL_OSDEP_H
#define VIREO_UTIL_OSDEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "util/error.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ROUND_UP(n, d) (((n) + (d) - 1) / (d) * (d))
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

/*
 * Open a file the way every vireo component must: paths of the form
 * /dev/fdset/N take a duplicate of a matching descriptor from fd set N
 * (see util/fdset.h), anything else is open(2). The descriptor is CLOEXEC.
 * Returns -1 and sets errp on failure.
 */
int vireo_open(const char *path, int flags, mode_t mode, Error **errp);

/* Parse "512", "64K", "2M", "4G", "1T" (binary units) into bytes. */
bool parse_size(const char *str, uint64_t *out, Error **errp);

/* Full read/write loops that retry on EINTR and short transfers. */
ssize_t read_full(int fd, void *buf, size_t len);
ssize_t write_full(int fd, const void *buf, size_t len);

/* Allocation that aborts on out-of-memory (host memory, never guest sizes). */
void *xmalloc(size_t size);
void *xzalloc(size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup_safe(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Block SIGTERM, SIGINT and SIGHUP in the calling thread and the threads it
 * creates later (requests to quit, read through a signalfd) and fill *set
 * with them. Call before anything a client can see exists (a listening
 * socket, a pid file): a quit request that arrives before the signalfd is
 * made must wait for it, not kill the process by default action with its
 * images half closed.
 */
void block_quit_signals(sigset_t *set);

/* CLOCK_MONOTONIC, for deadlines and durations. */
int64_t monotonic_ns(void);
int64_t monotonic_ms(void);

/* Overflow-safe range check: true when [start, start+len) lies inside [0, limit). */
static inline bool range_within(uint64_t start, uint64_t len, uint64_t limit)
{
    return start <= limit && len <= limit - start;
}

#endif
