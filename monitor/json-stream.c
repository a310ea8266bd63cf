#include "monitor/json-stream.h"

#include <stdio.h>
#include <string.h>

void json_stream_init(JsonStream *js, size_t max_size, int max_depth,
                      void (*message)(void *opaque, const char *text, size_t len),
                      void (*error)(void *opaque, const char *why), void *opaque)
{
    memset(js, 0, sizeof(*js));
    js->max_size = max_size;
    js->max_depth = max_depth;
    js->message = message;
    js->error = error;
    js->opaque = opaque;
}

void json_stream_free(JsonStream *js)
{
    strbuf_free(&js->buf);
}

static void finish(JsonStream *js)
{
    if (!js->overflow && js->buf.len) {
        js->message(js->opaque, js->buf.str, js->buf.len);
    }
    js->buf.len = 0;
    js->depth = 0;
    js->in_scalar = false;
    js->overflow = false;
}

static void keep(JsonStream *js, char c)
{
    if (js->overflow) {
        return;
    }
    if (js->buf.len >= js->max_size) {
        js->overflow = true;
        js->buf.len = 0;
        js->error(js->opaque, "message too large");
        return;
    }
    strbuf_append(&js->buf, &c, 1);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void reset(JsonStream *js)
{
    js->buf.len = 0;
    js->depth = 0;
    js->quote = 0;
    js->escape = false;
    js->in_scalar = false;
    js->overflow = false;
}

/*
 * A byte no JSON text can hold there: the message so far is dropped with one
 * error, and input is skipped up to a byte where a new message may begin:
 * an opening bracket or a control character other than tab (a line end).
 * Like QEMU's lexer, this lets a client force a known state; unlike it,
 * closers and 0xfe/0xff are skipped too, so one broken message costs one
 * error, not one per stray byte in its tail.
 */
static void lexical_error(JsonStream *js, char c)
{
    char why[16];
    unsigned char u = (unsigned char)c;
    /* Named as QEMU names it; a byte that is no character in UTF-8 shows as
     * U+FFFD, the replacement character, so the reply stays valid JSON. */
    if (u != 0 && u < 0x80) {
        snprintf(why, sizeof(why), "stray '%c'", c);
    } else {
        snprintf(why, sizeof(why), "stray '\xef\xbf\xbd'");
    }
    js->error(js->opaque, why);
    reset(js);
    js->recovering = true;
}

static bool is_resync_byte(char c)
{
    unsigned char u = (unsigned char)c;
    return (u < 0x20 && c != '\t') || c == '{' || c == '[';
}

/* Bytes that cannot start or continue any token outside a string. */
static bool is_stray_byte(char c)
{
    unsigned char u = (unsigned char)c;
    return (u < 0x20 && !is_space(c)) || u >= 0x7f || c == '%';
}

/* Inside a string: only the closing quote matters. */
static void string_byte(JsonStream *js, char c)
{
    unsigned char u = (unsigned char)c;
    if (u < 0x20 || u >= 0xfe) {
        /* Control characters must be escaped and 0xfe/0xff are never UTF-8;
         * a newline here also means a client lost track of a message. */
        lexical_error(js, c);
        return;
    }
    keep(js, c);
    if (js->escape) {
        js->escape = false;
    } else if (c == '\\') {
        js->escape = true;
    } else if (c == js->quote) {
        js->quote = 0;
        if (js->depth == 0) {
            finish(js);                 /* a bare top-level string */
        }
    }
}

static void structure_byte(JsonStream *js, char c)
{
    if (c == '{' || c == '[') {
        if (++js->depth > js->max_depth && !js->overflow) {
            js->overflow = true;
            js->buf.len = 0;
            js->error(js->opaque, "nesting too deep");
        }
        keep(js, c);
    } else if (c == '}' || c == ']') {
        keep(js, c);
        if (--js->depth == 0) {
            finish(js);
        }
    } else {
        keep(js, c);
    }
}

void json_stream_feed(JsonStream *js, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = (char)data[i];
        if (js->recovering) {
            if (!is_resync_byte(c)) {
                continue;
            }
            js->recovering = false;
        }
        if (js->quote) {
            string_byte(js, c);
        } else if (is_stray_byte(c)) {
            lexical_error(js, c);
        } else if (c == '"' || c == '\'') {
            js->quote = c;
            keep(js, c);
        } else if (js->depth > 0) {
            structure_byte(js, c);
        } else if (c == '{' || c == '[') {
            if (js->in_scalar) {
                finish(js);
            }
            structure_byte(js, c);
        } else if (c == '}' || c == ']') {
            keep(js, c);                /* stray closer: let the parser report it */
            finish(js);
        } else if (is_space(c)) {
            if (js->in_scalar) {
                finish(js);
            }
        } else {
            js->in_scalar = true;       /* number or keyword at top level */
            keep(js, c);
        }
    }
}

/* Length of the UTF-8 sequence starting at p (1..4), or 0 if it is invalid:
 * truncated, overlong, a UTF-16 surrogate, or beyond U+10FFFF. */
static size_t utf8_sequence(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (n == 0 || n > left || c > 0xf4) {
        return 0;
    }
    uint32_t cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min_for_len[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min_for_len[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

bool json_text_is_utf8(const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(p + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}
