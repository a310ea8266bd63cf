/*
 * "key=value,key=value" option strings as QEMU's command line writes them:
 * an optional implied first value ("socket,id=c0" means backend=socket),
 * ",," for a literal comma, bare "flag" for flag=on and "noflag" for
 * flag=off (legacy spellings such as "server,nowait").
 *
 * Parameters are checked against a table (OptParam) that also feeds
 * query-command-line-options, so the parser and the introspection cannot
 * drift apart.
 */
#ifndef VIREO_UTIL_KEYVAL_H
#define VIREO_UTIL_KEYVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef enum OptType {
    OPT_STRING,
    OPT_BOOL,       /* on/off (also yes/no, true/false) */
    OPT_NUMBER,     /* unsigned integer */
    OPT_SIZE,       /* integer with K/M/G/T suffix */
} OptType;

typedef struct OptParam {
    const char *name;
    OptType type;
    const char *help;
    const char *def;        /* default, for introspection; may be NULL */
} OptParam;

typedef struct KeyVal {
    char *key;
    char *value;
} KeyVal;

typedef struct KeyValList {
    int n;
    KeyVal *items;
} KeyValList;

/*
 * Parse str. implied_key names the first item when it has no '='. params
 * (terminated by a NULL name) lists the accepted keys; NULL accepts any.
 * Values are type-checked against params.
 */
bool keyval_parse(const char *str, const char *implied_key, const OptParam *params,
                  KeyValList *out, Error **errp);
const char *keyval_get(const KeyValList *kv, const char *key);
bool keyval_get_bool(const KeyValList *kv, const char *key, bool def);
uint64_t keyval_get_number(const KeyValList *kv, const char *key, uint64_t def);
void keyval_free(KeyValList *kv);

/*
 * The same options written as a JSON object (util/keyval-json.c): nested
 * objects become dotted keys, booleans on/off, null "null".  Values are
 * not checked against a table.  keyval_parse_any() takes either form,
 * JSON when @str starts with '{'.
 */
struct json_object;
bool keyval_from_json(struct json_object *obj, KeyValList *out, Error **errp);
bool keyval_parse_any(const char *str, KeyValList *out, Error **errp);

/* Parse a boolean value ("on", "off", ...). */
bool parse_bool(const char *name, const char *value, bool *out, Error **errp);

#endif
