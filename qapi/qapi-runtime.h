/*
 * The run-time half of the QAPI code generator.
 *
 * scripts/qapi-gen.py emits, for every schema type, a QapiType that says
 * how a C value of that type is laid out (members, offsets, list links).
 * The functions here walk those descriptions, so marshalling code is
 * written once: converting C values to JSON, checking and converting
 * command arguments from JSON (with the error messages QMP clients
 * expect), and freeing values.
 */
#ifndef VIREO_QAPI_RUNTIME_H
#define VIREO_QAPI_RUNTIME_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef enum QapiKind {
    QAPI_KIND_STR,
    QAPI_KIND_INT,      /* signed, range min..max */
    QAPI_KIND_UINT,     /* unsigned, range 0..umax */
    QAPI_KIND_BOOL,
    QAPI_KIND_NUMBER,
    QAPI_KIND_ENUM,
    QAPI_KIND_STRUCT,
    QAPI_KIND_LIST,
    QAPI_KIND_ANY,
} QapiKind;

typedef struct QapiType QapiType;

#define QAPI_NO_HAS ((size_t)-1)

typedef struct QapiMember {
    const char *name;       /* wire name */
    const QapiType *type;
    size_t offset;          /* of the value in the C struct */
    size_t has_offset;      /* of the has_ flag, or QAPI_NO_HAS when mandatory */
} QapiMember;

struct QapiType {
    const char *name;
    QapiKind kind;
    size_t size;                    /* size of the C slot holding a value */
    int64_t min, max;               /* INT */
    uint64_t umax;                  /* UINT */
    const char *const *enum_values; /* ENUM */
    int enum_count;
    const QapiMember *members;      /* STRUCT */
    int nr_members;
    size_t struct_size;
    const QapiType *elem;           /* LIST */
    size_t node_size, value_offset;
};

extern const QapiType qapi_type_str, qapi_type_int, qapi_type_int8,
    qapi_type_int16, qapi_type_int32, qapi_type_int64, qapi_type_uint8,
    qapi_type_uint16, qapi_type_uint32, qapi_type_uint64, qapi_type_size,
    qapi_type_bool, qapi_type_number, qapi_type_any, qapi_type_null;

/* valp points at the slot (e.g. a char **, a Foo **, an int64_t *). */
json_object *qapi_value_to_json(const QapiType *t, const void *valp);
json_object *qapi_struct_to_json(const QapiType *t, const void *cstruct);
/*
 * Convert JSON into the slot at valp. 'name' is the member's path for
 * error messages ("fdname", "enable[0]"); NULL for the top level.
 * On failure *valp holds nothing that needs freeing.
 */
bool qapi_value_from_json(const QapiType *t, json_object *j, const char *name,
                          void *valp, Error **errp);
/* Fill a zeroed struct from a JSON object (used for command arguments). */
bool qapi_struct_from_json(const QapiType *t, json_object *obj, const char *path,
                           void *cstruct, Error **errp);
void qapi_free_value(const QapiType *t, void *valp);
void qapi_free_struct(const QapiType *t, void *cstruct);   /* frees cstruct too */
void qapi_clear_struct(const QapiType *t, void *cstruct);  /* frees members only */

/* Enum helpers. */
int qapi_enum_parse(const QapiType *t, const char *s);     /* -1 if unknown */

/* Prepend an element at the head of any generated list. */
#define QAPI_LIST_PREPEND(list, element) do {                  \
        typeof(list) _node = xzalloc(sizeof(*(list)));         \
        _node->value = (element);                              \
        _node->next = (list);                                  \
        (list) = _node;                                        \
    } while (0)

/* Append through a tail pointer: T **tail = &head; QAPI_LIST_APPEND(tail, v). */
#define QAPI_LIST_APPEND(tail, element) do {                   \
        *(tail) = xzalloc(sizeof(**(tail)));                   \
        (*(tail))->value = (element);                          \
        (tail) = &(*(tail))->next;                             \
    } while (0)

/* Commands: the generated dispatch table. */
enum {
    QMP_CMD_ALLOW_PRECONFIG = 1 << 0,
    QMP_CMD_ALLOW_OOB = 1 << 1,
    QMP_CMD_NO_SUCCESS_RESPONSE = 1 << 2,
    QMP_CMD_UNSTABLE = 1 << 3,
};

typedef struct QmpCommand {
    const char *name;
    const QapiType *args;   /* implicit struct of the arguments */
    /* Generated marshaller: takes the filled args struct. */
    json_object *(*marshal)(void *args, Error **errp);
    /* Hand-written handler for 'gen': false commands: takes raw JSON. */
    json_object *(*raw)(json_object *args, Error **errp);
    unsigned flags;
} QmpCommand;

/*
 * One program's monitor interface: its commands and the reply of
 * query-qmp-schema. The monitor core (monitor/qmp-core.h) serves any such
 * table; a schema generated with --prefix P defines P_qmp_command_table.
 */
typedef struct QmpCommandTable {
    const QmpCommand *commands;
    int nr_commands;
    const char *introspection_json;
} QmpCommandTable;

/* Event delivery, implemented by the monitor core; takes ownership of data. */
void qapi_event_emit(const char *event, json_object *data);

/* query-qmp-schema's reply, a JSON array (generated). */
extern const char qapi_introspection_json[];

#endif
