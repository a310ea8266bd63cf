#include "qapi/qapi-runtime.h"

#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"


#define UINT_TYPE(var, cname, sz, hi) \
    const QapiType var = { .name = cname, .kind = QAPI_KIND_UINT, .size = sz, .umax = hi }

const QapiType qapi_type_str = { .name = "str", .kind = QAPI_KIND_STR, .size = sizeof(char *) };
const QapiType qapi_type_int = { .name = "int", .kind = QAPI_KIND_INT, .size = sizeof(int64_t),
                                 .min = INT64_MIN, .max = INT64_MAX };
const QapiType qapi_type_int64 = { .name = "int64", .kind = QAPI_KIND_INT, .size = sizeof(int64_t),
                                   .min = INT64_MIN, .max = INT64_MAX };
const QapiType qapi_type_int8 = { .name = "int8", .kind = QAPI_KIND_INT, .size = 1,
                                  .min = INT8_MIN, .max = INT8_MAX };
const QapiType qapi_type_int16 = { .name = "int16", .kind = QAPI_KIND_INT, .size = 2,
                                   .min = INT16_MIN, .max = INT16_MAX };
const QapiType qapi_type_int32 = { .name = "int32", .kind = QAPI_KIND_INT, .size = 4,
                                   .min = INT32_MIN, .max = INT32_MAX };
UINT_TYPE(qapi_type_uint8, "uint8", 1, UINT8_MAX);
UINT_TYPE(qapi_type_uint16, "uint16", 2, UINT16_MAX);
UINT_TYPE(qapi_type_uint32, "uint32", 4, UINT32_MAX);
UINT_TYPE(qapi_type_uint64, "uint64", 8, UINT64_MAX);
UINT_TYPE(qapi_type_size, "size", 8, UINT64_MAX);
const QapiType qapi_type_bool = { .name = "bool", .kind = QAPI_KIND_BOOL, .size = sizeof(bool) };
const QapiType qapi_type_number = { .name = "number", .kind = QAPI_KIND_NUMBER, .size = sizeof(double) };
const QapiType qapi_type_any = { .name = "any", .kind = QAPI_KIND_ANY, .size = sizeof(json_object *) };
const QapiType qapi_type_null = { .name = "null", .kind = QAPI_KIND_ANY, .size = sizeof(json_object *) };

/* ---- slots of different widths ---- */

static int64_t load_int(const void *p, size_t size)
{
    switch (size) {
    case 1: return *(const int8_t *)p;
    case 2: return *(const int16_t *)p;
    case 4: return *(const int32_t *)p;
    default: return *(const int64_t *)p;
    }
}

static uint64_t load_uint(const void *p, size_t size)
{
    switch (size) {
    case 1: return *(const uint8_t *)p;
    case 2: return *(const uint16_t *)p;
    case 4: return *(const uint32_t *)p;
    default: return *(const uint64_t *)p;
    }
}

static void store_int(void *p, size_t size, int64_t v)
{
    switch (size) {
    case 1: *(int8_t *)p = (int8_t)v; break;
    case 2: *(int16_t *)p = (int16_t)v; break;
    case 4: *(int32_t *)p = (int32_t)v; break;
    default: *(int64_t *)p = v; break;
    }
}

static void store_uint(void *p, size_t size, uint64_t v)
{
    switch (size) {
    case 1: *(uint8_t *)p = (uint8_t)v; break;
    case 2: *(uint16_t *)p = (uint16_t)v; break;
    case 4: *(uint32_t *)p = (uint32_t)v; break;
    default: *(uint64_t *)p = v; break;
    }
}

/* ---- C to JSON ---- */

json_object *qapi_struct_to_json(const QapiType *t, const void *cstruct)
{
    json_object *obj = json_object_new_object();
    for (int i = 0; i < t->nr_members; i++) {
        const QapiMember *m = &t->members[i];
        const char *base = cstruct;
        if (m->has_offset != QAPI_NO_HAS && !*(const bool *)(base + m->has_offset)) {
            continue;
        }
        json_object_object_add(obj, m->name, qapi_value_to_json(m->type, base + m->offset));
    }
    return obj;
}

json_object *qapi_value_to_json(const QapiType *t, const void *valp)
{
    switch (t->kind) {
    case QAPI_KIND_STR: {
        const char *s = *(char *const *)valp;
        return json_object_new_string(s ? s : "");
    }
    case QAPI_KIND_INT:
        return json_object_new_int64(load_int(valp, t->size));
    case QAPI_KIND_UINT:
        return json_object_new_uint64(load_uint(valp, t->size));
    case QAPI_KIND_BOOL:
        return json_object_new_boolean(*(const bool *)valp);
    case QAPI_KIND_NUMBER:
        return json_object_new_double(*(const double *)valp);
    case QAPI_KIND_ENUM: {
        int v = *(const int *)valp;
        return json_object_new_string(v >= 0 && v < t->enum_count ? t->enum_values[v] : "");
    }
    case QAPI_KIND_STRUCT: {
        const void *p = *(void *const *)valp;
        return p ? qapi_struct_to_json(t, p) : json_object_new_object();
    }
    case QAPI_KIND_LIST: {
        json_object *arr = json_object_new_array();
        for (const char *node = *(char *const *)valp; node; node = *(char *const *)node) {
            json_object_array_add(arr, qapi_value_to_json(t->elem, node + t->value_offset));
        }
        return arr;
    }
    case QAPI_KIND_ANY: {
        json_object *j = *(json_object *const *)valp;
        return j ? json_object_get(j) : NULL;
    }
    }
    return NULL;
}

/* ---- JSON to C ---- */

static const char *json_kind_name(const QapiType *t)
{
    switch (t->kind) {
    case QAPI_KIND_STR:
    case QAPI_KIND_ENUM: return "string";
    case QAPI_KIND_INT:
    case QAPI_KIND_UINT: return "integer";
    case QAPI_KIND_BOOL: return "boolean";
    case QAPI_KIND_NUMBER: return "number";
    case QAPI_KIND_STRUCT: return "object";
    case QAPI_KIND_LIST: return "array";
    case QAPI_KIND_ANY: return "any";
    }
    return "?";
}

static const char *display(const char *name)
{
    return name ? name : "null";
}

static bool wrong_type(const QapiType *t, const char *name, Error **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s",
               display(name), json_kind_name(t));
    return false;
}

static bool int_from_json(const QapiType *t, json_object *j, const char *name,
                          void *valp, Error **errp)
{
    if (!json_object_is_type(j, json_type_int)) {
        return wrong_type(t, name, errp);
    }
    int64_t v = json_object_get_int64(j);
    bool too_big = v == INT64_MAX && json_object_get_uint64(j) > (uint64_t)INT64_MAX;
    if (t->kind == QAPI_KIND_INT) {
        if (too_big && t->size == 8) {
            return wrong_type(t, name, errp);   /* not representable as int64 at all */
        }
        if (too_big || v < t->min || v > t->max) {
            /* QEMU names the C type of the sized integers: "int32_t". */
            error_setg(errp, "Parameter '%s' expects %s%s", display(name),
                       t->size == 8 ? "integer" : t->name, t->size == 8 ? "" : "_t");
            return false;
        }
        store_int(valp, t->size, v);
        return true;
    }
    uint64_t u = too_big ? json_object_get_uint64(j) : (uint64_t)v;
    if ((!too_big && v < 0) || u > t->umax) {
        error_setg(errp, "Parameter '%s' expects %s%s", display(name), t->name,
                   t->size < 8 ? "_t" : "");
        return false;
    }
    store_uint(valp, t->size, u);
    return true;
}

static bool list_from_json(const QapiType *t, json_object *j, const char *name,
                           void *valp, Error **errp)
{
    if (!json_object_is_type(j, json_type_array)) {
        return wrong_type(t, name, errp);
    }
    char **tail = (char **)valp;
    size_t n = json_object_array_length(j);
    for (size_t i = 0; i < n; i++) {
        char *node = xzalloc(t->node_size);
        *tail = node;                       /* linked first: freed on error */
        tail = (char **)node;
        char *elem_name = xasprintf("%s[%zu]", display(name), i);
        bool ok = qapi_value_from_json(t->elem, json_object_array_get_idx(j, i),
                                       elem_name, node + t->value_offset, errp);
        free(elem_name);
        if (!ok) {
            qapi_free_value(t, valp);
            return false;
        }
    }
    return true;
}

bool qapi_value_from_json(const QapiType *t, json_object *j, const char *name,
                          void *valp, Error **errp)
{
    switch (t->kind) {
    case QAPI_KIND_STR:
        if (!json_object_is_type(j, json_type_string)) {
            return wrong_type(t, name, errp);
        }
        *(char **)valp = xstrdup(json_object_get_string(j));
        return true;
    case QAPI_KIND_INT:
    case QAPI_KIND_UINT:
        return int_from_json(t, j, name, valp, errp);
    case QAPI_KIND_BOOL:
        if (!json_object_is_type(j, json_type_boolean)) {
            return wrong_type(t, name, errp);
        }
        *(bool *)valp = json_object_get_boolean(j);
        return true;
    case QAPI_KIND_NUMBER:
        if (!json_object_is_type(j, json_type_double) && !json_object_is_type(j, json_type_int)) {
            return wrong_type(t, name, errp);
        }
        *(double *)valp = json_object_get_double(j);
        return true;
    case QAPI_KIND_ENUM: {
        if (!json_object_is_type(j, json_type_string)) {
            return wrong_type(t, name, errp);
        }
        int v = qapi_enum_parse(t, json_object_get_string(j));
        if (v < 0) {
            /* Enum errors name the member itself; a list element has no name. */
            bool in_list = name && name[strlen(name) - 1] == ']';
            error_setg(errp, "Parameter '%s' does not accept value '%s'",
                       in_list ? "null" : display(name), json_object_get_string(j));
            return false;
        }
        *(int *)valp = v;
        return true;
    }
    case QAPI_KIND_STRUCT: {
        if (!json_object_is_type(j, json_type_object)) {
            return wrong_type(t, name, errp);
        }
        void *s = xzalloc(t->struct_size);
        if (!qapi_struct_from_json(t, j, name, s, errp)) {
            free(s);
            return false;
        }
        *(void **)valp = s;
        return true;
    }
    case QAPI_KIND_LIST:
        return list_from_json(t, j, name, valp, errp);
    case QAPI_KIND_ANY:
        *(json_object **)valp = json_object_get(j);
        return true;
    }
    return false;
}

static char *member_path(const char *path, const char *member)
{
    return path ? xasprintf("%s.%s", path, member) : xstrdup(member);
}

static const QapiMember *find_member(const QapiType *t, const char *name)
{
    for (int i = 0; i < t->nr_members; i++) {
        if (!strcmp(t->members[i].name, name)) {
            return &t->members[i];
        }
    }
    return NULL;
}

bool qapi_struct_from_json(const QapiType *t, json_object *obj, const char *path,
                           void *cstruct, Error **errp)
{
    char *base = cstruct;
    for (int i = 0; i < t->nr_members; i++) {
        const QapiMember *m = &t->members[i];
        json_object *j = NULL;
        char *mpath = member_path(path, m->name);
        bool present = json_object_object_get_ex(obj, m->name, &j);
        bool ok = true;
        if (!present) {
            if (m->has_offset == QAPI_NO_HAS) {
                error_setg(errp, "Parameter '%s' is missing", mpath);
                ok = false;
            }
        } else {
            ok = qapi_value_from_json(m->type, j, mpath, base + m->offset, errp);
            if (ok && m->has_offset != QAPI_NO_HAS) {
                *(bool *)(base + m->has_offset) = true;
            }
        }
        free(mpath);
        if (!ok) {
            qapi_clear_struct(t, cstruct);
            return false;
        }
    }
    json_object_object_foreach(obj, key, val) {
        (void)val;
        if (!find_member(t, key)) {
            char *mpath = member_path(path, key);
            error_setg(errp, "Parameter '%s' is unexpected", mpath);
            free(mpath);
            qapi_clear_struct(t, cstruct);
            return false;
        }
    }
    return true;
}

/* ---- freeing ---- */

void qapi_clear_struct(const QapiType *t, void *cstruct)
{
    char *base = cstruct;
    for (int i = 0; i < t->nr_members; i++) {
        qapi_free_value(t->members[i].type, base + t->members[i].offset);
    }
}

void qapi_free_struct(const QapiType *t, void *cstruct)
{
    if (cstruct) {
        qapi_clear_struct(t, cstruct);
        free(cstruct);
    }
}

void qapi_free_value(const QapiType *t, void *valp)
{
    switch (t->kind) {
    case QAPI_KIND_STR:
        free(*(char **)valp);
        *(char **)valp = NULL;
        break;
    case QAPI_KIND_STRUCT:
        qapi_free_struct(t, *(void **)valp);
        *(void **)valp = NULL;
        break;
    case QAPI_KIND_LIST: {
        char *node = *(char **)valp;
        while (node) {
            char *next = *(char **)node;
            qapi_free_value(t->elem, node + t->value_offset);
            free(node);
            node = next;
        }
        *(char **)valp = NULL;
        break;
    }
    case QAPI_KIND_ANY:
        json_object_put(*(json_object **)valp);
        *(json_object **)valp = NULL;
        break;
    default:
        break;
    }
}

int qapi_enum_parse(const QapiType *t, const char *s)
{
    for (int i = 0; i < t->enum_count; i++) {
        if (!strcmp(t->enum_values[i], s)) {
            return i;
        }
    }
    return -1;
}
