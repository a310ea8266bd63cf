/* A growable string, for building monitor output. */
#ifndef VIREO_UTIL_STRBUF_H
#define VIREO_UTIL_STRBUF_H

#include <stddef.h>

typedef struct StrBuf {
    char *str;      /* always NUL-terminated once anything was added */
    size_t len, cap;
} StrBuf;

void strbuf_printf(StrBuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_append(StrBuf *sb, const char *s, size_t len);
void strbuf_puts(StrBuf *sb, const char *s);
/* Give up ownership of the string (never NULL) and reset the buffer. */
char *strbuf_steal(StrBuf *sb);
void strbuf_free(StrBuf *sb);

#endif
