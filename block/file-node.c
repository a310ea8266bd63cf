/*
 * File nodes below a format: a host file, or a filter node (blkdebug,
 * quorum) whose own children are file nodes again.  Options arrive
 * flattened, relative to the node ("driver", "filename", "image.filename").
 */
#include "block/block-int.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

bool bfile_is_filter_driver(const char *name)
{
    return name && (!strcmp(name, "blkdebug") || !strcmp(name, "quorum"));
}

int bfile_open_node(BlockFile *f, const KeyValList *opts, bool writable, bool direct,
                    char **base, Error **errp)
{
    const char *driver = keyval_get(opts, "driver");
    *base = NULL;
    if (driver && !strcmp(driver, "blkdebug")) {
        return blkdebug_open(f, opts, writable, direct, base, errp);
    }
    if (driver && !strcmp(driver, "quorum")) {
        return quorum_open(f, opts, writable, direct, base, errp);
    }
    if (driver && strcmp(driver, "file")) {
        error_setg(errp, "Unknown driver '%s'", driver);
        return -1;
    }
    const char *filename = NULL;
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key;
        if (!strcmp(key, "filename")) {
            filename = opts->items[i].value;
        } else if (strcmp(key, "driver")) {
            error_setg(errp, "Block protocol 'file' doesn't support the option '%s'", key);
            return -1;
        }
    }
    if (!filename) {
        error_setg(errp, "Parameter 'filename' is missing");
        return -1;
    }
    if (bfile_open(f, filename, writable, direct, errp) < 0) {
        return -1;
    }
    *base = xstrdup(filename);
    return 0;
}

char *bfile_node_json_name(const KeyValList *opts)
{
    char *plain = blkdebug_plain_name(opts);
    if (plain) {
        return plain;
    }
    /* Flat keys, in QEMU's spacing: json:{"driver": "quorum", "children.0.filename": ...}. */
    size_t cap = 64, len = 0;
    char *out = xmalloc(cap);
    len += (size_t)snprintf(out, cap, "json:{");
    for (int i = 0; i < opts->n; i++) {
        json_object *k = json_object_new_string(opts->items[i].key);
        json_object *v = json_object_new_string(opts->items[i].value);
        const char *ks = json_object_to_json_string_ext(k, JSON_C_TO_STRING_NOSLASHESCAPE);
        const char *vs = json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE);
        size_t need = strlen(ks) + strlen(vs) + 8;
        if (len + need >= cap) {
            cap = (len + need) * 2;
            out = xrealloc(out, cap);
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s: %s", i ? ", " : "", ks, vs);
        json_object_put(k);
        json_object_put(v);
    }
    if (len + 2 >= cap) {
        out = xrealloc(out, len + 2);
    }
    memcpy(out + len, "}", 2);
    return out;
}

BlockImage *blk_open_filter_node(const KeyValList *opts, const char *name, const char *format,
                                 unsigned flags, Error **errp)
{
    BlockFile f = { .fd = -1 };
    char *base = NULL;
    if (bfile_open_node(&f, opts, flags & BLK_O_RDWR, flags & BLK_O_NOCACHE, &base, errp) < 0) {
        return NULL;
    }
    return blk_open_over_file(&f, name, base, format, flags, errp);
}
