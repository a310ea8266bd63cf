/*
 * -blockdev, in key=value and JSON form, and the block nodes of -drive:
 * both become nodes of the block layer's registry (block/node.h) before
 * the machine is built, -blockdev first, as QEMU orders them.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "block/node.h"
#include "core/main-loop.h"
#include "core/options.h"
#include "core/vm-config.h"
#include "util/keyval.h"
#include "util/osdep.h"

static char **blockdevs;
static int nr_blockdevs;

static bool opt_blockdev(const char *arg, Error **errp)
{
    blockdevs = realloc(blockdevs, sizeof(*blockdevs) * (size_t)(nr_blockdevs + 1));
    blockdevs[nr_blockdevs++] = xstrdup(arg);
    return true;
}

const CmdOption block_options[] = {
    { "blockdev", "driver=DRIVER,node-name=NAME[,...]|{JSON}",
      "add a block node (file, raw, qcow2, parallels)", NULL, NULL, opt_blockdev },
    { NULL },
};

static void add_item(KeyValList *kv, const char *key, const char *value)
{
    kv->items = realloc(kv->items, sizeof(*kv->items) * (size_t)(kv->n + 1));
    kv->items[kv->n++] = (KeyVal){ xstrdup(key), xstrdup(value) };
}

/* One JSON member as flat options: objects nest with dots, as key=value writes them. */
static bool flatten(json_object *v, const char *key, KeyValList *kv, Error **errp)
{
    switch (json_object_get_type(v)) {
    case json_type_object: {
        json_object_object_foreach(v, k, child) {
            char *sub = key ? xasprintf("%s.%s", key, k) : xstrdup(k);
            bool ok = flatten(child, sub, kv, errp);
            free(sub);
            if (!ok) {
                return false;
            }
        }
        return true;
    }
    case json_type_null:
        add_item(kv, key, "null");
        return true;
    case json_type_boolean:
        add_item(kv, key, json_object_get_boolean(v) ? "on" : "off");
        return true;
    case json_type_int:
    case json_type_string:
        add_item(kv, key, json_object_get_string(v));
        return true;
    default:
        error_setg(errp, "Invalid parameter type for '%s'", key ? key : "blockdev");
        return false;
    }
}

bool block_options_from_json(json_object *obj, KeyValList *kv, Error **errp)
{
    kv->n = 0;
    kv->items = NULL;
    if (!json_object_is_type(obj, json_type_object)) {
        error_setg(errp, "-blockdev: JSON must be an object");
        return false;
    }
    if (!flatten(obj, NULL, kv, errp)) {
        keyval_free(kv);
        return false;
    }
    return true;
}

static bool parse_blockdev(const char *arg, KeyValList *kv, Error **errp)
{
    if (arg[0] != '{') {
        return keyval_parse(arg, NULL, NULL, kv, errp);
    }
    json_tokener *tok = json_tokener_new();
    json_object *obj = json_tokener_parse_ex(tok, arg, (int)strlen(arg));
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == strlen(arg);
    json_tokener_free(tok);
    bool ok = false;
    if (!obj || !complete) {
        error_setg(errp, "JSON parse error");
    } else {
        ok = block_options_from_json(obj, kv, errp);
    }
    json_object_put(obj);
    return ok;
}

static void watch_fd(int fd, void (*cb)(void *opaque), void *opaque)
{
    main_loop_set_fd_handler(fd, cb, NULL, opaque);
}

bool block_options_create_nodes(Error **errp)
{
    block_node_watch_fd = watch_fd;
    for (int i = 0; i < nr_blockdevs; i++) {
        KeyValList kv;
        if (!parse_blockdev(blockdevs[i], &kv, errp)) {
            error_prepend(errp, "-blockdev %s: ", blockdevs[i]);
            return false;
        }
        BlockNode *n = block_node_create(&kv, errp);
        keyval_free(&kv);
        if (!n) {
            error_prepend(errp, "-blockdev %s: ", blockdevs[i]);
            return false;
        }
    }
    for (const DeviceOption *d = vm_config.drives; d; d = d->next) {
        if (!block_node_create_drive(d->opts, errp)) {
            error_prepend(errp, "-drive %s: ", d->opts);
            return false;
        }
    }
    return true;
}
