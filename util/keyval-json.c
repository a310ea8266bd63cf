/*
 * A JSON object as key=value options (-blockdev '{...}', blockdev-add):
 * nested objects become dotted keys, list members numbered ones, booleans
 * on/off, null "null", so one
 * option parser serves both spellings.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

static void add_item(KeyValList *kv, const char *key, const char *value)
{
    kv->items = realloc(kv->items, sizeof(*kv->items) * (size_t)(kv->n + 1));
    if (!kv->items) {
        abort();
    }
    kv->items[kv->n++] = (KeyVal){ xstrdup(key), xstrdup(value) };
}

static bool flatten(json_object *v, const char *key, KeyValList *kv, int depth, Error **errp)
{
    if (depth > 16) {
        error_setg(errp, "Options nest too deeply at '%s'", key);
        return false;
    }
    switch (json_object_get_type(v)) {
    case json_type_object: {
        json_object_object_foreach(v, k, child) {
            char *sub = key ? xasprintf("%s.%s", key, k) : xstrdup(k);
            bool ok = flatten(child, sub, kv, depth + 1, errp);
            free(sub);
            if (!ok) {
                return false;
            }
        }
        return true;
    }
    case json_type_array:
        /* List members get numbered keys, as QEMU flattens them (children.0.driver). */
        for (size_t i = 0; key && i < json_object_array_length(v); i++) {
            char *sub = xasprintf("%s.%zu", key, i);
            bool ok = flatten(json_object_array_get_idx(v, i), sub, kv, depth + 1, errp);
            free(sub);
            if (!ok) {
                return false;
            }
        }
        return true;
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
        error_setg(errp, "Invalid parameter type for '%s'", key ? key : "options");
        return false;
    }
}

bool keyval_from_json(json_object *obj, KeyValList *out, Error **errp)
{
    out->n = 0;
    out->items = NULL;
    if (!json_object_is_type(obj, json_type_object)) {
        error_setg(errp, "Options must be a JSON object");
        return false;
    }
    if (!flatten(obj, NULL, out, 0, errp)) {
        keyval_free(out);
        return false;
    }
    return true;
}

bool keyval_parse_any(const char *str, KeyValList *out, Error **errp)
{
    if (str[0] != '{') {
        return keyval_parse(str, NULL, NULL, out, errp);
    }
    json_tokener *tok = json_tokener_new();
    json_object *obj = json_tokener_parse_ex(tok, str, (int)strlen(str));
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == strlen(str);
    json_tokener_free(tok);
    bool ok = false;
    if (!obj || !complete) {
        error_setg(errp, "JSON parse error");
    } else {
        ok = keyval_from_json(obj, out, errp);
    }
    json_object_put(obj);
    return ok;
}
