/*
 * Splits a byte stream into complete JSON messages without parsing them:
 * it tracks strings, escapes and bracket depth, so each message can then
 * be parsed strictly on its own. Messages that nest too deep or grow too
 * large are reported once and skipped up to their end, so one bad message
 * never costs the client its connection or the messages after it.
 */
#ifndef VIREO_MONITOR_JSON_STREAM_H
#define VIREO_MONITOR_JSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

typedef struct JsonStream {
    StrBuf buf;                 /* the message being collected */
    int depth;
    char quote;                 /* inside a string: its quote character */
    bool escape;                /* the previous string byte was a backslash */
    bool in_scalar;             /* a top-level number or keyword */
    bool overflow;              /* skipping the rest of a message */
    bool recovering;            /* after a lexical error: skipping to a resync byte */
    size_t max_size;
    int max_depth;
    void (*message)(void *opaque, const char *text, size_t len);
    void (*error)(void *opaque, const char *why);
    void *opaque;
} JsonStream;

void json_stream_init(JsonStream *js, size_t max_size, int max_depth,
                      void (*message)(void *opaque, const char *text, size_t len),
                      void (*error)(void *opaque, const char *why), void *opaque);
void json_stream_feed(JsonStream *js, const uint8_t *data, size_t len);
void json_stream_free(JsonStream *js);

/* Strict UTF-8 check: no overlong forms, surrogates or code points past U+10FFFF. */
bool json_text_is_utf8(const char *text, size_t len);

#endif
