/*
 * "json:{...}" file names: a whole set of open options written where a
 * file name goes, as QEMU accepts them.  The object is flattened to the
 * dotted keys --image-opts and -blockdev use ("file.filename"), then the
 * image is opened through the ordinary path:
 *
 *   {"driver": FMT, "file": {"driver": "file", "filename": PATH}}
 *   {"driver": FMT, "file": PATH}
 *   {"driver": "null-co", "size": N, "read-zeroes": true}     (a protocol)
 *   {"driver": FMT, "file": {"driver": "null-co", ...}}
 *   {"driver": FMT, "file": {"driver": "blkdebug"|"quorum", ...}}  (filter nodes,
 *       block/blkdebug.c and block/quorum.c; the image keeps the json: name)
 *
 * The image then carries PATH (or the protocol's canonical name) as its
 * name, so relative backing file names resolve as they would for PATH.
 * vireo-img's --image-opts lists arrive as the same dotted keys
 * (blk_open_options), so both forms share this one path.  Keys left once
 * "driver" and "file.*" are taken are the format's open options
 * ("l2-cache-size", "data-file.filename"); keys the drivers do not take are
 * refused with QEMU's wording, never silently dropped.
 */
#include "block/block-int.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

#define JSON_PREFIX "json:"

bool blk_is_json_filename(const char *filename)
{
    return filename && !strncmp(filename, JSON_PREFIX, strlen(JSON_PREFIX));
}

/* Remove @key from @kv and return its value (owned by the caller), or NULL. */
static char *take(KeyValList *kv, const char *key)
{
    char *value = NULL;
    for (int i = 0; i < kv->n; i++) {
        if (!strcmp(kv->items[i].key, key)) {
            free(value);                /* the last one wins */
            value = kv->items[i].value;
            free(kv->items[i].key);
            kv->items[i--] = kv->items[--kv->n];
        }
    }
    return value;
}

/* Move every "PREFIXkey" of @from into @to as "key". */
static void take_prefixed(KeyValList *from, const char *prefix, KeyValList *to)
{
    size_t plen = strlen(prefix);
    for (int i = 0; i < from->n; i++) {
        if (!strncmp(from->items[i].key, prefix, plen)) {
            KeyVal kv = from->items[i];
            to->items = xrealloc(to->items, sizeof(*to->items) * (size_t)(to->n + 1));
            to->items[to->n++] = (KeyVal){ xstrdup(kv.key + plen), kv.value };
            free(kv.key);
            from->items[i--] = from->items[--from->n];
        }
    }
}

static void add_option(KeyValList *kv, const char *key, const char *value)
{
    kv->items = xrealloc(kv->items, sizeof(*kv->items) * (size_t)(kv->n + 1));
    kv->items[kv->n++] = (KeyVal){ xstrdup(key), xstrdup(value) };
}

static bool parse_options(const char *filename, KeyValList *kv, Error **errp)
{
    const char *text = filename + strlen(JSON_PREFIX);
    json_tokener *tok = json_tokener_new();
    json_object *obj = json_tokener_parse_ex(tok, text, (int)strlen(text));
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == strlen(text);
    json_tokener_free(tok);
    bool ok = false;
    kv->n = 0;
    kv->items = NULL;
    if (!obj || !complete || !json_object_is_type(obj, json_type_object)) {
        error_setg(errp, "Could not parse the JSON options");
    } else {
        /* Flattened as -blockdev's JSON form is (children.0.driver, on/off). */
        ok = keyval_from_json(obj, kv, errp);
    }
    json_object_put(obj);
    return ok;
}

BlockImage *blk_open_json(const char *filename, const char *format,
                          const KeyValList *extra_opts, unsigned flags, Error **errp)
{
    KeyValList kv = { 0 };
    if (!parse_options(filename, &kv, errp)) {
        return NULL;
    }
    /* Options given beside the name join those inside it. */
    for (int i = 0; extra_opts && i < extra_opts->n; i++) {
        add_option(&kv, extra_opts->items[i].key, extra_opts->items[i].value);
    }
    BlockImage *img = blk_open_options(&kv, filename, format, flags, errp);
    keyval_free(&kv);
    return img;
}

BlockImage *blk_open_options(const KeyValList *opts, const char *name, const char *format,
                             unsigned flags, Error **errp)
{
    KeyValList kv = { 0 }, proto = { 0 };
    char *driver = NULL, *file = NULL, *file_driver = NULL, *path = NULL;
    BlockImage *img = NULL;
    for (int i = 0; i < opts->n; i++) {
        add_option(&kv, opts->items[i].key, opts->items[i].value);
    }
    driver = take(&kv, "driver");
    if (driver && format && strcmp(driver, format)) {
        error_setg(errp, "Cannot use '%s' as the format of an image whose options name "
                   "driver '%s'", format, driver);
        goto out;
    }
    const char *top = driver ? driver : format;
    if (top && blk_driver_is_protocol(top)) {
        /* The protocol itself is the image: every other key is its option. */
        img = blk_open_opts(NULL, top, &kv, flags, errp);
        goto out;
    }
    if (top && !strcmp(top, "file")) {
        error_setg(errp, "A 'file' node cannot be opened without a format driver "
                   "above it here; name the format with \"driver\"");
        goto out;
    }
    file = take(&kv, "file");
    file_driver = take(&kv, "file.driver");
    path = take(&kv, "file.filename");
    char *top_name = take(&kv, "filename");
    if (top_name) {
        /* {"filename": PATH} without a driver: PATH, its format probed. */
        free(path);
        path = top_name;
    }
    if (file && path) {
        error_setg(errp, "Cannot reference an existing block device with additional "
                   "options or a new filename");
        goto out;
    }
    if (file) {
        path = file;
        file = NULL;
    }
    take_prefixed(&kv, "file.", &proto);
    if (bfile_is_filter_driver(file_driver)) {
        /* A filter node (blkdebug, quorum) under the format; the image keeps the json: name. */
        BlockFile f = { .fd = -1 };
        char *base = NULL;
        if (path) {
            error_setg(errp, "Block protocol '%s' doesn't support the option 'filename'",
                       file_driver);
            goto out;
        }
        if (kv.n) {
            error_setg(errp, "Block format '%s' does not support the option '%s'",
                       top ? top : "raw", kv.items[0].key);
            goto out;
        }
        add_option(&proto, "driver", file_driver);
        if (bfile_open_node(&f, &proto, flags & BLK_O_RDWR, flags & BLK_O_NOCACHE, &base,
                            errp) == 0) {
            /* blkdebug with only an image (and a config file) has a plain name. */
            char *plain = !strcmp(file_driver, "blkdebug") ? blkdebug_plain_name(&proto) : NULL;
            char *json = plain || name ? NULL : bfile_node_json_name(&proto);
            img = blk_open_over_file(&f, plain ? plain : name ? name : json, base, top, flags,
                                     errp);
            free(json);
            free(plain);
        }
        goto out;
    }
    if (file_driver && strcmp(file_driver, "file")) {
        if (!blk_driver_is_protocol(file_driver)) {
            error_setg(errp, "Unknown driver '%s'", file_driver);
            goto out;
        }
        if (path) {
            error_setg(errp, "Block protocol '%s' doesn't support the option 'filename'",
                       file_driver);
            goto out;
        }
        path = xasprintf("%s://", file_driver);
    } else if (proto.n) {
        error_setg(errp, "Block protocol 'file' doesn't support the option '%s'",
                   proto.items[0].key);
        goto out;
    }
    if (!path) {
        error_setg(errp, "A block device must be specified for \"file\"");
        goto out;
    }
    if (blk_is_json_filename(path)) {
        error_setg(errp, "A json: file name cannot name another json: file name");
        goto out;
    }
    /* What is left belongs to the format (its driver refuses what it does not take). */
    img = blk_open_format_opts(path, top, proto.n ? &proto : NULL, &kv, flags, errp);
out:
    keyval_free(&kv);
    keyval_free(&proto);
    free(driver);
    free(file);
    free(file_driver);
    free(path);
    return img;
}

BlockImage *blk_open_option_list(const char *list, unsigned flags, Error **errp)
{
    KeyValList kv = { 0 };
    if (!keyval_parse(list, NULL, NULL, &kv, errp)) {
        return NULL;
    }
    BlockImage *img = blk_open_options(&kv, NULL, NULL, flags, errp);
    keyval_free(&kv);
    return img;
}
