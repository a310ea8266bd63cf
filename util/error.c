#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct Error {
    ErrorClass cls;
    char *msg;
    char *hint;             /* extra lines for a human (command line), NULL: none */
};

/* A unique address; never dereferenced. */
static Error error_fatal_marker;
Error *error_fatal = &error_fatal_marker;

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        abort();
    }
    return s;
}

static void error_setv(Error **errp, ErrorClass cls, char *msg)
{
    if (!errp) {
        free(msg);
        return;
    }
    if (errp == &error_fatal) {
        fprintf(stderr, "vireo: %s\n", msg);
        exit(1);
    }
    if (*errp) {
        /* First error wins, like QEMU: a second set is a programming error,
         * but keep going with the original message rather than crash. */
        free(msg);
        return;
    }
    Error *err = malloc(sizeof(*err));
    if (!err) {
        abort();
    }
    err->cls = cls;
    err->msg = msg;
    err->hint = NULL;
    *errp = err;
}

void error_setg(Error **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    error_setv(errp, ERROR_CLASS_GENERIC_ERROR, msg);
}

void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    error_setv(errp, cls, msg);
}

void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    char *full = NULL;
    if (asprintf(&full, "%s: %s", msg, strerror(os_errno)) < 0) {
        abort();
    }
    free(msg);
    error_setv(errp, ERROR_CLASS_GENERIC_ERROR, full);
}

void error_prepend(Error **errp, const char *fmt, ...)
{
    if (!errp || errp == &error_fatal || !*errp) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *prefix = vformat(fmt, ap);
    va_end(ap);
    char *full = NULL;
    if (asprintf(&full, "%s%s", prefix, (*errp)->msg) < 0) {
        abort();
    }
    free(prefix);
    free((*errp)->msg);
    (*errp)->msg = full;
}

void error_append_hint(Error **errp, const char *fmt, ...)
{
    if (!errp || errp == &error_fatal || !*errp) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *more = vformat(fmt, ap);
    va_end(ap);
    char *all = NULL;
    if (asprintf(&all, "%s%s", (*errp)->hint ? (*errp)->hint : "", more) < 0) {
        abort();
    }
    free(more);
    free((*errp)->hint);
    (*errp)->hint = all;
}

void error_propagate(Error **dst, Error *src)
{
    if (!src) {
        return;
    }
    if (dst == &error_fatal) {
        fprintf(stderr, "vireo: %s\n%s", src->msg, src->hint ? src->hint : "");
        exit(1);
    }
    if (!dst || *dst) {
        error_free(src);
        return;
    }
    *dst = src;
}

const char *error_get_pretty(const Error *err)
{
    return err->msg;
}

ErrorClass error_get_class(const Error *err)
{
    return err->cls;
}

const char *error_class_name(ErrorClass cls)
{
    static const char *const names[] = {
        [ERROR_CLASS_GENERIC_ERROR] = "GenericError",
        [ERROR_CLASS_COMMAND_NOT_FOUND] = "CommandNotFound",
        [ERROR_CLASS_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
        [ERROR_CLASS_DEVICE_NOT_FOUND] = "DeviceNotFound",
        [ERROR_CLASS_KVM_MISSING_CAP] = "KVMMissingCap",
    };
    return names[cls];
}

void error_free(Error *err)
{
    if (err && err != &error_fatal_marker) {
        free(err->msg);
        free(err->hint);
        free(err);
    }
}

static bool report_timestamps;

void error_set_timestamps(bool on)
{
    report_timestamps = on;
}

/* "2026-12-02T07:40:01.123456Z " when -msg timestamp=on, nothing otherwise. */
static void print_timestamp(void)
{
    if (!report_timestamps) {
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%06ldZ ", buf, ts.tv_nsec / 1000);
}

void error_report_err(Error *err)
{
    print_timestamp();
    fprintf(stderr, "vireo: %s\n%s", err->msg, err->hint ? err->hint : "");
    error_free(err);
}

void error_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_timestamp();
    fputs("vireo: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void warn_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_timestamp();
    fputs("vireo: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
