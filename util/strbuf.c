#include "util/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

static void reserve(StrBuf *sb, size_t extra)
{
    if (sb->len + extra + 1 > sb->cap) {
        sb->cap = MAX(sb->len + extra + 1, sb->cap * 2 + 64);
        sb->str = xrealloc(sb->str, sb->cap);
    }
}

void strbuf_append(StrBuf *sb, const char *s, size_t len)
{
    reserve(sb, len);
    memcpy(sb->str + sb->len, s, len);
    sb->len += len;
    sb->str[sb->len] = '\0';
}

void strbuf_puts(StrBuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void strbuf_printf(StrBuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    reserve(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->str + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

char *strbuf_steal(StrBuf *sb)
{
    char *s = sb->str ? sb->str : xstrdup("");
    sb->str = NULL;
    sb->len = sb->cap = 0;
    return s;
}

void strbuf_free(StrBuf *sb)
{
    free(sb->str);
    sb->str = NULL;
    sb->len = sb->cap = 0;
}
