#include "util/osdep.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/fdset.h"

#define FDSET_PREFIX "/dev/fdset/"

static int open_from_fdset(const char *path, int flags, Error **errp)
{
    const char *num = path + strlen(FDSET_PREFIX);
    char *end;
    errno = 0;
    long long id = strtoll(num, &end, 10);
    if (errno || end == num || *end || id < 0) {
        error_setg(errp, "'%s' does not name an fd set", path);
        return -1;
    }
    int fd = fdset_dup_fd(id, flags, errp);
    if (fd < 0) {
        return -1;
    }
    if ((flags & O_TRUNC) && ftruncate(fd, 0) < 0) {
        error_setg_errno(errp, errno, "cannot truncate '%s'", path);
        fdset_dup_fd_close(fd);
        close(fd);
        return -1;
    }
    return fd;
}

int vireo_open(const char *path, int flags, mode_t mode, Error **errp)
{
    if (strncmp(path, FDSET_PREFIX, strlen(FDSET_PREFIX)) == 0) {
        return open_from_fdset(path, flags, errp);
    }
    int fd = open(path, flags | O_CLOEXEC, mode);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", path);
    }
    return fd;
}

bool parse_size(const char *str, uint64_t *out, Error **errp)
{
    char *end;
    errno = 0;
    if (!*str || *str == '-') {
        goto bad;
    }
    unsigned long long n = strtoull(str, &end, 10);
    if (errno || end == str) {
        goto bad;
    }
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'b': case 'B': shift = 0; end++; break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: goto bad;
    }
    if (*end) {
        goto bad;
    }
    if (shift && n > (UINT64_MAX >> shift)) {
        error_setg(errp, "size '%s' is too large", str);
        return false;
    }
    *out = (uint64_t)n << shift;
    return true;
bad:
    error_setg(errp, "invalid size '%s' (expected a number with an optional K, M, G or T suffix)", str);
    return false;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, (char *)buf + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return done ? (ssize_t)done : -1;
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

ssize_t write_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        abort();
    }
    return p;
}

void *xzalloc(size_t size)
{
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        abort();
    }
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p) {
        abort();
    }
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        abort();
    }
    return p;
}

char *xstrndup_safe(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p) {
        abort();
    }
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        abort();
    }
    va_end(ap);
    return s;
}

void block_quit_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t monotonic_ms(void)
{
    return monotonic_ns() / 1000000;
}
