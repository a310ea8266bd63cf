#include "util/keyval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

bool parse_bool(const char *name, const char *value, bool *out, Error **errp)
{
    if (!strcmp(value, "on") || !strcmp(value, "yes") || !strcmp(value, "true")) {
        *out = true;
        return true;
    }
    if (!strcmp(value, "off") || !strcmp(value, "no") || !strcmp(value, "false")) {
        *out = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
    return false;
}

static bool parse_number(const char *name, const char *value, uint64_t *out, Error **errp)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(value, &end, 0);
    if (errno || end == value || *end || *value == '-') {
        error_setg(errp, "Parameter '%s' expects a number", name);
        return false;
    }
    *out = n;
    return true;
}

/* Copy one item up to an unescaped ',' (",," is a literal comma). */
static const char *scan_item(const char *p, char **out)
{
    size_t cap = strlen(p) + 1, len = 0;
    char *buf = xmalloc(cap);
    while (*p) {
        if (*p == ',') {
            if (p[1] == ',') {
                buf[len++] = ',';
                p += 2;
                continue;
            }
            break;
        }
        buf[len++] = *p++;
    }
    buf[len] = '\0';
    *out = buf;
    return *p == ',' ? p + 1 : p;
}

static const OptParam *find_param(const OptParam *params, const char *key)
{
    for (const OptParam *p = params; p->name; p++) {
        if (!strcmp(p->name, key)) {
            return p;
        }
    }
    return NULL;
}

static void add_item(KeyValList *kv, char *key, char *value)
{
    /* A repeated key replaces the earlier value, as on QEMU's command line. */
    for (int i = 0; i < kv->n; i++) {
        if (!strcmp(kv->items[i].key, key)) {
            free(kv->items[i].value);
            free(key);
            kv->items[i].value = value;
            return;
        }
    }
    kv->items = xrealloc(kv->items, sizeof(*kv->items) * (kv->n + 1));
    kv->items[kv->n++] = (KeyVal){ key, value };
}

/* "server" means server=on, "nowait" wait=off, when the table knows a bool of that name. */
static bool split_flag(const OptParam *params, char *item, char **key, char **value)
{
    const OptParam *p = params ? find_param(params, item) : NULL;
    if (p && p->type == OPT_BOOL) {
        *key = xstrdup(item);
        *value = xstrdup("on");
        return true;
    }
    if (!strncmp(item, "no", 2) && params) {
        p = find_param(params, item + 2);
        if (p && p->type == OPT_BOOL) {
            *key = xstrdup(item + 2);
            *value = xstrdup("off");
            return true;
        }
    }
    return false;
}

static bool check_value(const OptParam *p, const char *value, Error **errp)
{
    bool b;
    uint64_t n;
    switch (p->type) {
    case OPT_BOOL: return parse_bool(p->name, value, &b, errp);
    case OPT_NUMBER: return parse_number(p->name, value, &n, errp);
    case OPT_SIZE:
        if (!parse_size(value, &n, NULL)) {
            error_setg(errp, "Parameter '%s' expects a size", p->name);
            return false;
        }
        return true;
    case OPT_STRING: return true;
    }
    return true;
}

bool keyval_parse(const char *str, const char *implied_key, const OptParam *params,
                  KeyValList *out, Error **errp)
{
    memset(out, 0, sizeof(*out));
    const char *p = str;
    bool first = true;
    while (*p) {
        char *item, *key, *value;
        p = scan_item(p, &item);
        char *eq = strchr(item, '=');
        if (eq) {
            key = xstrndup_safe(item, (size_t)(eq - item));
            value = xstrdup(eq + 1);
        } else if (first && implied_key) {
            key = xstrdup(implied_key);
            value = xstrdup(item);
        } else if (!split_flag(params, item, &key, &value)) {
            error_setg(errp, "Invalid parameter '%s'", item);
            free(item);
            keyval_free(out);
            return false;
        }
        free(item);
        first = false;
        const OptParam *param = params ? find_param(params, key) : NULL;
        if (params && !param) {
            error_setg(errp, "Invalid parameter '%s'", key);
            free(key);
            free(value);
            keyval_free(out);
            return false;
        }
        if (param && !check_value(param, value, errp)) {
            free(key);
            free(value);
            keyval_free(out);
            return false;
        }
        add_item(out, key, value);
    }
    return true;
}

const char *keyval_get(const KeyValList *kv, const char *key)
{
    for (int i = 0; i < kv->n; i++) {
        if (!strcmp(kv->items[i].key, key)) {
            return kv->items[i].value;
        }
    }
    return NULL;
}

bool keyval_get_bool(const KeyValList *kv, const char *key, bool def)
{
    const char *v = keyval_get(kv, key);
    bool b = def;
    if (v && !parse_bool(key, v, &b, NULL)) {
        return def;
    }
    return b;
}

uint64_t keyval_get_number(const KeyValList *kv, const char *key, uint64_t def)
{
    const char *v = keyval_get(kv, key);
    uint64_t n = def;
    if (v && !parse_number(key, v, &n, NULL) && !parse_size(v, &n, NULL)) {
        return def;
    }
    return n;
}

void keyval_free(KeyValList *kv)
{
    for (int i = 0; i < kv->n; i++) {
        free(kv->items[i].key);
        free(kv->items[i].value);
    }
    free(kv->items);
    memset(kv, 0, sizeof(*kv));
}
