/*
 * libFuzzer target for the key=value option parser (util/keyval.c) that
 * every -device, -object, -drive, -netdev, -chardev, -machine, ... argument
 * goes through: implied first values, ",," escapes, bare flags and their
 * "no" forms, and typed values (booleans, numbers, sizes) checked against
 * a parameter table.
 *
 * The first byte picks the table (none: any key; or one with a parameter
 * of every type, including a bool whose "no" form collides with a string
 * parameter's name) and the implied key (none, "id" or "driver"); the rest,
 * up to a NUL as on a command line, is the option string.
 *
 * Checks besides the sanitizers: what parsed is printed back as explicit
 * key=value items (commas doubled) and must parse again to the same list;
 * typed values must read back through keyval_get_bool/_number as the
 * table's checks accepted them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"
#include "util/strbuf.h"

static const OptParam every_type[] = {
    { "driver", OPT_STRING, "device type" },
    { "id", OPT_STRING, "identifier" },
    { "server", OPT_BOOL, "listen", "off" },
    { "wait", OPT_BOOL, "wait for a client", "on" },
    { "de", OPT_BOOL, "a bool whose 'no' form is another parameter's name" },
    { "node", OPT_STRING, "a string named like the bool's 'no' form" },
    { "queues", OPT_NUMBER, "how many" },
    { "size", OPT_SIZE, "bytes, with a suffix" },
    { NULL },
};

static void fail(const char *what, const char *opts)
{
    fprintf(stderr, "fuzz-keyval: %s\n%s\n", what, opts);
    abort();
}

static void append_escaped(StrBuf *sb, const char *s)
{
    for (; *s; s++) {
        strbuf_append(sb, s, 1);
        if (*s == ',') {
            strbuf_append(sb, ",", 1);
        }
    }
}

static void check_typed(const KeyValList *kv, const OptParam *params, const char *opts)
{
    for (const OptParam *p = params; p && p->name; p++) {
        const char *v = keyval_get(kv, p->name);
        if (!v) {
            continue;
        }
        if (p->type == OPT_BOOL) {
            bool on = keyval_get_bool(kv, p->name, false);
            bool off = keyval_get_bool(kv, p->name, true);
            if (on != off) {
                fail("an accepted bool does not read back", opts);
            }
        } else if (p->type == OPT_NUMBER || p->type == OPT_SIZE) {
            if (keyval_get_number(kv, p->name, 1) != keyval_get_number(kv, p->name, 2)) {
                fail("an accepted number does not read back", opts);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) {
        return -1;
    }
    static const char *const implied[] = { NULL, "id", "driver", NULL };
    const OptParam *params = data[0] & 1 ? every_type : NULL;
    const char *implied_key = implied[(data[0] >> 1) & 3];
    char *opts = xstrndup_safe((const char *)data + 1, size - 1);

    KeyValList kv;
    Error *err = NULL;
    if (!keyval_parse(opts, implied_key, params, &kv, &err)) {
        if (!err) {
            fail("parse failed without an error", opts);
        }
        error_free(err);
        free(opts);
        return 0;
    }
    check_typed(&kv, params, opts);

    StrBuf again = { 0 };
    for (int i = 0; i < kv.n; i++) {
        if (i) {
            strbuf_append(&again, ",", 1);
        }
        append_escaped(&again, kv.items[i].key);
        strbuf_append(&again, "=", 1);
        append_escaped(&again, kv.items[i].value);
    }
    KeyValList kv2;
    if (!keyval_parse(again.str ? again.str : "", NULL, params, &kv2, &err)) {
        fail(error_get_pretty(err), again.str);
    }
    if (kv2.n != kv.n) {
        fail("printed back, the options parse to a different number of items", opts);
    }
    for (int i = 0; i < kv.n; i++) {
        if (strcmp(kv.items[i].key, kv2.items[i].key) ||
            strcmp(kv.items[i].value, kv2.items[i].value)) {
            fail("printed back, the options parse differently", opts);
        }
    }
    keyval_free(&kv2);
    keyval_free(&kv);
    strbuf_free(&again);
    free(opts);
    return 0;
}
