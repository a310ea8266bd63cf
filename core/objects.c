/*
 * object-add / object-del: user-creatable objects at run time, as -object
 * creates them at start-up. Memory backends are created at once; rng
 * back-ends join the -object list that devices look their rng= up in.
 * Property types are checked on the JSON value, as QEMU's visitor does.
 */
#include "core/objects.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/iothread.h"
#include "core/vm-config.h"
#include "memory/host-backend.h"
#include "util/keyval.h"
#include "util/osdep.h"
#include "util/strbuf.h"

/* Properties that take integers or booleans; everything else is a string. */
static const char *const int_props[] = {
    "size", "align", "prealloc-threads", "poll-max-ns", "poll-grow", "poll-shrink",
    "aio-max-batch", "offset",
};
static const char *const bool_props[] = {
    "share", "prealloc", "merge", "dump", "hugetlb", "seal", "reserve", "readonly",
    "discard-data", "pmem", "x-use-canonical-path-for-ramblock-id",
};

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(key, list[i])) {
            return true;
        }
    }
    return false;
}

static bool append_prop(StrBuf *sb, const char *key, json_object *v, Error **errp)
{
    json_type t = json_object_get_type(v);
    char text[32];
    const char *val;
    if (in_list(key, int_props, ARRAY_SIZE(int_props))) {
        if (t != json_type_int || json_object_get_int64(v) < 0) {
            error_setg(errp, "Parameter '%s' expects uint64", key);
            return false;
        }
        snprintf(text, sizeof(text), "%" PRIu64, json_object_get_uint64(v));
        val = text;
    } else if (in_list(key, bool_props, ARRAY_SIZE(bool_props))) {
        if (t != json_type_boolean) {
            error_setg(errp, "Parameter '%s' expects boolean", key);
            return false;
        }
        val = json_object_get_boolean(v) ? "on" : "off";
    } else if (t == json_type_string) {
        val = json_object_get_string(v);
    } else {
        error_setg(errp, "Parameter '%s' expects string", key);
        return false;
    }
    strbuf_printf(sb, ",%s=", key);
    for (const char *p = val; *p; p++) {
        strbuf_printf(sb, *p == ',' ? ",," : "%c", *p);
    }
    return true;
}

static bool id_taken(const char *id)
{
    return host_backend_find(id) || iothread_find(id) ||
           object_find_opts(id) != NULL;
}

const char *object_find_opts(const char *id)
{
    for (const DeviceOption *o = vm_config.objects; o; o = o->next) {
        KeyValList kv;
        if (!keyval_parse(o->opts, "qom-type", NULL, &kv, NULL)) {
            continue;
        }
        const char *oid = keyval_get(&kv, "id");
        bool match = oid && !strcmp(oid, id);
        keyval_free(&kv);
        if (match) {
            return o->opts;
        }
    }
    return NULL;
}

static bool is_rng_type(const char *type)
{
    return !strcmp(type, "rng-random") || !strcmp(type, "rng-builtin");
}

bool object_add_opts(const char *type, const char *id, const char *opts, Error **errp)
{
    if (id_taken(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')",
                   id);
        return false;
    }
    if (host_backend_type_known(type)) {
        if (!host_backend_create(opts, errp)) {
            return false;
        }
    } else if (is_rng_type(type)) {
        KeyValList kv;
        if (!keyval_parse(opts, "qom-type", NULL, &kv, errp)) {
            return false;
        }
        keyval_free(&kv);
    } else if (!strcmp(type, "iothread")) {
        error_setg(errp, "object type 'iothread' can only be created with -object");
        return false;
    } else {
        error_setg(errp, "invalid object type: %s", type);
        return false;
    }
    DeviceOption *d = xzalloc(sizeof(*d));
    d->opts = xstrdup(opts);
    DeviceOption **tail = &vm_config.objects;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = d;
    return true;
}

json_object *qmp_object_add(json_object *args, Error **errp)
{
    json_object *jt = NULL, *jid = NULL;
    json_object_object_get_ex(args, "qom-type", &jt);
    json_object_object_get_ex(args, "id", &jid);
    const char *type = json_object_get_string(jt), *id = json_object_get_string(jid);
    StrBuf sb = { 0 };
    strbuf_printf(&sb, "%s,id=", type);
    for (const char *p = id; *p; p++) {
        strbuf_printf(&sb, *p == ',' ? ",," : "%c", *p);
    }
    bool ok = true;
    json_object_object_foreach(args, key, val) {
        if (ok && strcmp(key, "qom-type") != 0 && strcmp(key, "id") != 0) {
            ok = append_prop(&sb, key, val, errp);
        }
    }
    ok = ok && object_add_opts(type, id, sb.str, errp);
    strbuf_free(&sb);
    return ok ? json_object_new_object() : NULL;
}

void qmp_object_del(const char *id, Error **errp)
{
    if (iothread_find(id)) {
        error_setg(errp, "object '%s' is in use, can not be deleted", id);
        return;
    }
    if (host_backend_find(id) && !host_backend_destroy(id, errp)) {
        return;
    }
    for (DeviceOption **p = &vm_config.objects; *p; p = &(*p)->next) {
        KeyValList kv;
        if (!keyval_parse((*p)->opts, "qom-type", NULL, &kv, NULL)) {
            continue;
        }
        const char *oid = keyval_get(&kv, "id");
        bool match = oid && !strcmp(oid, id);
        keyval_free(&kv);
        if (match) {
            DeviceOption *d = *p;
            *p = d->next;
            free(d->opts);
            free(d);
            return;
        }
    }
    error_setg(errp, "object '%s' not found", id);
}
