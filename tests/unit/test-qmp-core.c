/*
 * The QMP engine on its own (monitor/qmp-core.c): sessions fed bytes with
 * replies collected from the write callback, over a small command table
 * built here, with no socket, chardev or VMM behind it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/qmp-core.h"
#include "util/osdep.h"
#include "util/strbuf.h"

typedef struct NoArgs {
    char unused_;
} NoArgs;

typedef struct EchoArgs {
    char *text;
} EchoArgs;

static const QapiType no_args = {
    .name = "no-args", .kind = QAPI_KIND_STRUCT, .size = sizeof(void *),
    .struct_size = sizeof(NoArgs),
};

static const QapiMember echo_members[] = {
    { "text", &qapi_type_str, offsetof(EchoArgs, text), QAPI_NO_HAS },
};

static const QapiType echo_args = {
    .name = "echo-args", .kind = QAPI_KIND_STRUCT, .size = sizeof(void *),
    .struct_size = sizeof(EchoArgs), .members = echo_members, .nr_members = 1,
};

static QmpSession *seen_current;

static json_object *marshal_negotiate(void *args, Error **errp)
{
    return json_object_new_object();
}

/* Echoes its argument and records which session it ran for. */
static json_object *marshal_echo(void *args, Error **errp)
{
    EchoArgs *a = args;
    seen_current = qmp_session_current();
    if (!strcmp(a->text, "fail")) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "no such thing");
        return NULL;
    }
    return json_object_new_string(a->text);
}

static const QmpCommand commands[] = {
    { "qmp_capabilities", &no_args, marshal_negotiate, NULL, 0 },
    { "echo", &echo_args, marshal_echo, NULL, 0 },
    { "forbidden", &no_args, marshal_negotiate, NULL, 0 },
};

static const QmpCommandTable table = { commands, 3, "[{\"name\":\"echo\"}]" };

static json_object *version(void)
{
    return json_object_new_string("test");
}

static void collect(void *opaque, const char *text, size_t len)
{
    strbuf_append(opaque, text, len);
}

static bool may_run(void *opaque, const QmpCommand *cmd, Error **errp)
{
    if (!strcmp(cmd->name, "forbidden")) {
        error_setg(errp, "not now");
        return false;
    }
    return true;
}

static const QmpSessionOps ops = { .write = collect, .may_run = may_run };

static QmpSession *open_session(StrBuf *out)
{
    QmpSessionConfig cfg = { .table = &table, .version = version };
    return qmp_session_new(&cfg, &ops, out);
}

/* Everything written since the last call, which is then forgotten. */
static char *take(StrBuf *out)
{
    char *s = xstrdup(out->str ? out->str : "");
    strbuf_free(out);
    memset(out, 0, sizeof(*out));
    return s;
}

static void expect(StrBuf *out, const char *want)
{
    char *got = take(out);
    assert_string_equal(got, want);
    free(got);
}

static void feed(QmpSession *s, const char *text)
{
    qmp_session_feed(s, text, strlen(text));
}

static void test_greeting_and_negotiation(void **state)
{
    StrBuf out = { 0 };
    QmpSession *s = open_session(&out);
    expect(&out, "{ \"QMP\": { \"version\": \"test\", \"capabilities\": [ \"oob\" ] } }\r\n");
    feed(s, "{\"execute\": \"echo\", \"arguments\": {\"text\": \"x\"}}");
    expect(&out, "{ \"error\": { \"class\": \"CommandNotFound\", \"desc\": "
                 "\"Expecting capabilities negotiation with 'qmp_capabilities'\" } }\r\n");
    feed(s, "{\"execute\": \"qmp_capabilities\", \"id\": 5}");
    expect(&out, "{ \"return\": { }, \"id\": 5 }\r\n");
    qmp_session_free(s);
}

static void test_split_input_and_errors(void **state)
{
    StrBuf out = { 0 };
    QmpSession *s = open_session(&out);
    feed(s, "{\"execute\": \"qmp_capabilities\"}");
    free(take(&out));
    feed(s, "{\"execute\": \"ec");
    assert_null(out.str);
    feed(s, "ho\", \"arguments\": {\"text\": \"hi\"}, \"id\": \"a\"}{\"execute\": \"echo\", "
            "\"arguments\": {\"text\": \"fail\"}}");
    expect(&out, "{ \"return\": \"hi\", \"id\": \"a\" }\r\n"
                 "{ \"error\": { \"class\": \"DeviceNotFound\", \"desc\": \"no such thing\" } }\r\n");
    feed(s, "{\"execute\": \"forbidden\"}");
    expect(&out, "{ \"error\": { \"class\": \"GenericError\", \"desc\": \"not now\" } }\r\n");
    feed(s, "{\"execute\": \"nope\"}");
    expect(&out, "{ \"error\": { \"class\": \"CommandNotFound\", "
                 "\"desc\": \"The command nope has not been found\" } }\r\n");
    feed(s, "{\"execute\": \"echo\"}");
    expect(&out, "{ \"error\": { \"class\": \"GenericError\", "
                 "\"desc\": \"Parameter 'text' is missing\" } }\r\n");
    qmp_session_free(s);
}

static void test_current_session_only_during_commands(void **state)
{
    StrBuf out = { 0 };
    QmpSession *s = open_session(&out);
    feed(s, "{\"execute\": \"qmp_capabilities\"}");
    seen_current = NULL;
    feed(s, "{\"execute\": \"echo\", \"arguments\": {\"text\": \"x\"}}");
    assert_ptr_equal(seen_current, s);
    assert_ptr_equal(qmp_session_opaque(s), &out);
    assert_null(qmp_session_current());
    qmp_session_free(s);
    strbuf_free(&out);
}

static void test_events_reach_sessions_in_command_mode(void **state)
{
    StrBuf a = { 0 }, b = { 0 };
    QmpSession *sa = open_session(&a), *sb = open_session(&b);
    feed(sa, "{\"execute\": \"qmp_capabilities\"}");
    free(take(&a));
    free(take(&b));
    json_object *data = json_object_new_object();
    json_object_object_add(data, "n", json_object_new_int(1));
    qapi_event_emit("SOMETHING", data);
    assert_null(b.str);         /* still negotiating */
    json_object *ev = json_tokener_parse(a.str);
    assert_non_null(ev);
    json_object *ts, *sec, *usec;
    assert_true(json_object_object_get_ex(ev, "timestamp", &ts));
    assert_true(json_object_object_get_ex(ts, "seconds", &sec));
    assert_true(json_object_object_get_ex(ts, "microseconds", &usec));
    assert_true(json_object_get_int64(sec) > 0);
    assert_true(json_object_get_int64(usec) >= 0 && json_object_get_int64(usec) < 1000000);
    assert_string_equal(json_object_get_string(json_object_object_get(ev, "event")), "SOMETHING");
    assert_string_equal(json_object_to_json_string(json_object_object_get(ev, "data")),
                        "{ \"n\": 1 }");
    json_object_put(ev);
    free(take(&a));
    qmp_session_free(sa);
    qapi_event_emit("AFTER", NULL);
    assert_null(a.str);         /* a freed session hears nothing */
    qmp_session_free(sb);
}

static void test_table_lookup_and_schema(void **state)
{
    assert_ptr_equal(qmp_table_find(&table, "echo"), &commands[1]);
    assert_null(qmp_table_find(&table, "ech"));
    json_object *schema = qmp_table_schema(&table);
    assert_string_equal(json_object_to_json_string_ext(schema, JSON_C_TO_STRING_PLAIN),
                        "[{\"name\":\"echo\"}]");
    json_object_put(schema);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting_and_negotiation),
        cmocka_unit_test(test_split_input_and_errors),
        cmocka_unit_test(test_current_session_only_during_commands),
        cmocka_unit_test(test_events_reach_sessions_in_command_mode),
        cmocka_unit_test(test_table_lookup_and_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
