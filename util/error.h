/*
 * Error objects: how a failure travels from deep inside vireo up to the
 * monitor or the command line, carrying a human-readable message and the
 * QMP error class the client sees.
 *
 * Convention (as in QEMU): functions that can fail take "Error **errp" as
 * their last argument and return false / -1 / NULL on failure after calling
 * error_setg(errp, ...). errp may be NULL (caller doesn't care) or
 * &error_fatal (print and exit: only for start-up code in core/main.c).
 */
#ifndef VIREO_UTIL_ERROR_H
#define VIREO_UTIL_ERROR_H

#include <stdbool.h>

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
} ErrorClass;

typedef struct Error Error;

/* Pass &error_fatal as errp to exit(1) with the message on failure. */
extern Error *error_fatal;

void error_setg(Error **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend context: "opening disk: " + original message. */
void error_prepend(Error **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Add lines for a human to read after the message (each ending in a
 * newline): printed on the command line, never part of a QMP error.
 */
void error_append_hint(Error **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Move *src into *dst (dst may be NULL: src is freed). */
void error_propagate(Error **dst, Error *src);

const char *error_get_pretty(const Error *err);
ErrorClass error_get_class(const Error *err);
const char *error_class_name(ErrorClass cls);   /* "GenericError", ... */
void error_report_err(Error *err);              /* "vireo: msg" to stderr, then free */
void error_free(Error *err);

/* Print "vireo: msg" to stderr (for the command line and start-up). */
void error_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warn_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* -msg timestamp=on: prefix reports with the UTC time, as QEMU does. */
void error_set_timestamps(bool on);

#endif
