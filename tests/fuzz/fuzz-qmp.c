/*
 * libFuzzer target for the QMP protocol engine (libmonitor): the input is
 * what a client writes to a QMP socket. A session of monitor/qmp-core.c is
 * fed the bytes, so they go through the stream splitter
 * (monitor/json-stream.c), strict parsing and UTF-8 checking, the request
 * envelope, capabilities negotiation, and argument checking and
 * conversion by the QAPI run-time (qapi/qapi-runtime.c) through a command
 * table generated from tests/fuzz/qapi/fuzz-qmp.json.
 *
 * The first byte is not protocol: bit 0 asks for pretty replies, bit 1
 * negotiates capabilities before the input (so most inputs reach the
 * commands), bit 2 enables 'oob' in that negotiation, and bits 3-7 seed
 * how the rest is cut into reads, as a socket would deliver it.
 *
 * Checks besides the sanitizers: every reply the session writes must be
 * one valid JSON object per "\r\n"-terminated message, and every argument
 * value the run-time accepted must convert back to JSON and be accepted
 * again unchanged (the command handlers below do that round trip).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/qmp-core.h"
#include "qapi/fuzz-qapi-commands.h"
#include "qapi/fuzz-qapi-events.h"
#include "util/osdep.h"
#include "util/strbuf.h"

#define MAX_INPUT (256u << 10)

static StrBuf out;              /* what the session wrote, not yet checked */
static unsigned replies;

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz-qmp: %s\n%s\n", what, text ? text : "");
    abort();
}

/* Each complete message in @out must parse strictly as one JSON object. */
static void check_output(void)
{
    if (!out.str) {
        return;
    }
    char *buf = out.str;
    size_t used = 0;
    for (;;) {
        char *end = memmem(buf + used, out.len - used, "\r\n", 2);
        if (!end) {
            break;
        }
        size_t len = (size_t)(end - (buf + used));
        json_tokener *tok = json_tokener_new();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *j = json_tokener_parse_ex(tok, buf + used, (int)len);
        if (json_tokener_get_error(tok) != json_tokener_success ||
            !json_object_is_type(j, json_type_object)) {
            *end = '\0';
            fail("reply is not a JSON object:", buf + used);
        }
        json_object_put(j);
        json_tokener_free(tok);
        used += len + 2;
        replies++;
    }
    /* Keep only the incomplete tail. */
    memmove(out.str, out.str + used, out.len - used + 1);
    out.len -= used;
}

static void session_write(void *opaque, const char *text, size_t len)
{
    strbuf_append(&out, text, len);
}

static const QmpSessionOps session_ops = {
    .write = session_write,
};

/*
 * A deep copy of @valp's value through JSON and back; the value was
 * accepted by the run-time once, so it must be accepted again.
 */
static void round_trip(const QapiType *t, const void *valp, void *copyp)
{
    json_object *j = qapi_value_to_json(t, valp);
    Error *err = NULL;
    if (!qapi_value_from_json(t, j, "copy", copyp, &err)) {
        fail(error_get_pretty(err), json_object_to_json_string(j));
    }
    json_object *again = qapi_value_to_json(t, copyp);
    if (!json_object_equal(j, again)) {
        fail("value changed on a round trip:", json_object_to_json_string(j));
    }
    json_object_put(again);
    json_object_put(j);
}

/* ---- the protocol commands shared by every schema ---- */

void qmp_qmp_capabilities(bool has_enable, QMPCapabilityList *enable, Error **errp)
{
}

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = xzalloc(sizeof(*info));
    info->qemu = xzalloc(sizeof(*info->qemu));
    info->qemu->major = 7;
    info->qemu->minor = 2;
    info->package = xstrdup("fuzz-qmp");
    return info;
}

static json_object *version_json(void)
{
    VersionInfo *info = qmp_query_version(NULL);
    json_object *j = qapi_value_to_json(&fuzz_qapi_type_VersionInfo, &info);
    qapi_free_value(&fuzz_qapi_type_VersionInfo, &info);
    return j;
}

CommandInfoList *qmp_query_commands(Error **errp)
{
    CommandInfoList *list = NULL;
    for (int i = fuzz_qmp_command_table.nr_commands - 1; i >= 0; i--) {
        CommandInfo *info = xzalloc(sizeof(*info));
        info->name = xstrdup(fuzz_qmp_command_table.commands[i].name);
        QAPI_LIST_PREPEND(list, info);
    }
    return list;
}

void qmp_quit(Error **errp)
{
}

json_object *qmp_query_qmp_schema(json_object *args, Error **errp)
{
    return qmp_table_schema(&fuzz_qmp_command_table);
}

/* ---- commands over every kind of argument ---- */

FuzzScalars *qmp_fuzz_scalars(int64_t i, bool has_i8, int8_t i8, bool has_i16, int16_t i16,
                              bool has_i32, int32_t i32, bool has_i64, int64_t i64,
                              bool has_u8, uint8_t u8, bool has_u16, uint16_t u16,
                              bool has_u32, uint32_t u32, bool has_u64, uint64_t u64,
                              bool has_sz, uint64_t sz, bool has_n, double n,
                              bool has_b, bool b, bool has_s, const char *s, Error **errp)
{
    FuzzScalars v = {
        .i = i, .has_i8 = has_i8, .i8 = i8, .has_i16 = has_i16, .i16 = i16,
        .has_i32 = has_i32, .i32 = i32, .has_i64 = has_i64, .i64 = i64,
        .has_u8 = has_u8, .u8 = u8, .has_u16 = has_u16, .u16 = u16,
        .has_u32 = has_u32, .u32 = u32, .has_u64 = has_u64, .u64 = u64,
        .has_sz = has_sz, .sz = sz, .has_n = has_n, .n = n, .has_b = has_b, .b = b,
        .has_s = has_s, .s = (char *)s,
    };
    FuzzScalars *vp = &v, *copy = NULL;
    round_trip(&fuzz_qapi_type_FuzzScalars, &vp, &copy);
    return copy;
}

FuzzInnerList *qmp_fuzz_nested(FuzzMode mode, bool has_inner, FuzzInner *inner,
                               bool has_items, FuzzInnerList *items, bool has_tags,
                               strList *tags, bool has_counts, uint16List *counts,
                               Error **errp)
{
    FuzzInnerList *copy = NULL;
    round_trip(&fuzz_qapi_type_FuzzInnerList, &items, &copy);
    if (has_inner) {
        FuzzInner *one = NULL;
        round_trip(&fuzz_qapi_type_FuzzInner, &inner, &one);
        QAPI_LIST_PREPEND(copy, one);
    }
    strList *tcopy = NULL;
    round_trip(&fuzz_qapi_type_strList, &tags, &tcopy);
    qapi_free_value(&fuzz_qapi_type_strList, &tcopy);
    uint16List *ccopy = NULL;
    round_trip(&fuzz_qapi_type_uint16List, &counts, &ccopy);
    qapi_free_value(&fuzz_qapi_type_uint16List, &ccopy);
    if (mode == FUZZ_MODE_READ_ONLY && copy) {
        error_setg(errp, "'%s' is read-only", copy->value->id);
    }
    return copy;
}

json_object *qmp_fuzz_any(json_object *value, bool has_also, json_object *also, Error **errp)
{
    json_object *ret = json_object_new_array();
    json_object_array_add(ret, json_object_get(value));
    if (has_also) {
        json_object_array_add(ret, json_object_get(also));
    }
    return ret;
}

void qmp_fuzz_fail(QapiErrorClass class, bool has_why, const char *why, Error **errp)
{
    static const ErrorClass classes[] = {
        [QAPI_ERROR_CLASS_GENERICERROR] = ERROR_CLASS_GENERIC_ERROR,
        [QAPI_ERROR_CLASS_COMMANDNOTFOUND] = ERROR_CLASS_COMMAND_NOT_FOUND,
        [QAPI_ERROR_CLASS_DEVICENOTACTIVE] = ERROR_CLASS_DEVICE_NOT_ACTIVE,
        [QAPI_ERROR_CLASS_DEVICENOTFOUND] = ERROR_CLASS_DEVICE_NOT_FOUND,
        [QAPI_ERROR_CLASS_KVMMISSINGCAP] = ERROR_CLASS_KVM_MISSING_CAP,
    };
    error_set(errp, classes[class], "%s", has_why ? why : "failed as asked");
}

void qmp_fuzz_oob(bool has_n, int64_t n, Error **errp)
{
    /* Events go to every session in command mode, this one included. */
    fuzz_qapi_event_send_fuzz_event(n & 1 ? FUZZ_MODE_ON : FUZZ_MODE_OFF, has_n,
                                    (uint32_t)n);
}

void qmp_fuzz_quiet(bool has_n, int64_t n, Error **errp)
{
    if (has_n && n < 0) {
        error_setg(errp, "negative");
    }
}

void qmp_fuzz_unstable(Error **errp)
{
}

/* ---- the target ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_INPUT) {
        return -1;
    }
    uint8_t mode = data[0];
    data++;
    size--;
    QmpSessionConfig cfg = {
        .table = &fuzz_qmp_command_table,
        .version = version_json,
        .pretty = mode & 1,
    };
    replies = 0;
    QmpSession *s = qmp_session_new(&cfg, &session_ops, NULL);
    if (mode & 2) {
        const char *neg = mode & 4 ? "{\"execute\":\"qmp_capabilities\","
                                     "\"arguments\":{\"enable\":[\"oob\"]}}"
                                   : "{\"execute\":\"qmp_capabilities\"}";
        qmp_session_feed(s, neg, strlen(neg));
    }
    check_output();
    /* Reads of 1 to 64 bytes, sizes from a small generator seeded by @mode. */
    uint32_t rnd = mode >> 3 | 1;
    size_t done = 0;
    while (done < size) {
        size_t n = size - done;
        if (mode >> 3) {
            rnd = rnd * 1103515245u + 12345u;
            size_t cut = 1 + (rnd >> 16) % 64;
            n = n < cut ? n : cut;
        }
        qmp_session_feed(s, data + done, n);
        check_output();
        done += n;
    }
    qmp_session_free(s);
    if (replies == 0) {
        fail("the session sent not even its greeting", NULL);
    }
    strbuf_free(&out);
    return 0;
}
