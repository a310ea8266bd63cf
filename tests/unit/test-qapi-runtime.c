/*
 * The QAPI run-time walks type descriptions like the generated ones; this
 * test builds such descriptions by hand for a struct with every kind of
 * member and checks conversion both ways, error messages and freeing
 * (leaks are caught by the sanitizer build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "qapi/qapi-runtime.h"
#include "util/osdep.h"

typedef enum Color { COLOR_RED, COLOR_GREEN } Color;
static const char *const Color_str[] = { "red", "green", NULL };
static const QapiType color_type = { .name = "Color", .kind = QAPI_KIND_ENUM, .size = sizeof(Color),
                                     .enum_values = Color_str, .enum_count = 2 };

typedef struct strList { struct strList *next; char *value; } strList;
static const QapiType strlist_type = { .name = "[str]", .kind = QAPI_KIND_LIST, .size = sizeof(void *),
                                       .node_size = sizeof(strList),
                                       .value_offset = offsetof(strList, value),
                                       .elem = &qapi_type_str };

typedef struct Inner { uint8_t small; } Inner;
static const QapiMember inner_members[] = {
    { "small", &qapi_type_uint8, offsetof(Inner, small), QAPI_NO_HAS },
};
static const QapiType inner_type = { .name = "Inner", .kind = QAPI_KIND_STRUCT, .size = sizeof(Inner *),
                                     .struct_size = sizeof(Inner), .members = inner_members,
                                     .nr_members = 1 };

typedef struct Outer {
    char *name;
    int64_t count;
    bool has_big;
    uint64_t big;
    bool flag;
    Color color;
    strList *tags;
    bool has_inner;
    Inner *inner;
    bool has_extra;
    json_object *extra;
} Outer;
static const QapiMember outer_members[] = {
    { "name", &qapi_type_str, offsetof(Outer, name), QAPI_NO_HAS },
    { "count", &qapi_type_int, offsetof(Outer, count), QAPI_NO_HAS },
    { "big", &qapi_type_uint64, offsetof(Outer, big), offsetof(Outer, has_big) },
    { "flag", &qapi_type_bool, offsetof(Outer, flag), QAPI_NO_HAS },
    { "color", &color_type, offsetof(Outer, color), QAPI_NO_HAS },
    { "tags", &strlist_type, offsetof(Outer, tags), QAPI_NO_HAS },
    { "inner", &inner_type, offsetof(Outer, inner), offsetof(Outer, has_inner) },
    { "extra", &qapi_type_any, offsetof(Outer, extra), offsetof(Outer, has_extra) },
};
static const QapiType outer_type = { .name = "Outer", .kind = QAPI_KIND_STRUCT, .size = sizeof(Outer *),
                                     .struct_size = sizeof(Outer), .members = outer_members,
                                     .nr_members = 8 };

static char *parse_error(const char *text)
{
    json_object *j = json_tokener_parse(text);
    Outer o = { 0 };
    Error *err = NULL;
    bool ok = qapi_struct_from_json(&outer_type, j, NULL, &o, &err);
    json_object_put(j);
    if (ok) {
        qapi_clear_struct(&outer_type, &o);
        return NULL;
    }
    char *msg = xstrdup(error_get_pretty(err));
    error_free(err);
    return msg;
}

static void test_round_trip(void **state)
{
    const char *text = "{\"name\":\"n\",\"count\":-5,\"big\":18446744073709551615,\"flag\":true,"
                       "\"color\":\"green\",\"tags\":[\"a\",\"b\"],\"inner\":{\"small\":255},"
                       "\"extra\":{\"any\":[1]}}";
    json_object *j = json_tokener_parse(text);
    Outer o = { 0 };
    assert_true(qapi_struct_from_json(&outer_type, j, NULL, &o, NULL));
    assert_string_equal(o.name, "n");
    assert_int_equal(o.count, -5);
    assert_true(o.has_big);
    assert_true(o.big == UINT64_MAX);
    assert_int_equal(o.color, COLOR_GREEN);
    assert_string_equal(o.tags->next->value, "b");
    assert_int_equal(o.inner->small, 255);
    json_object *back = qapi_struct_to_json(&outer_type, &o);
    assert_true(json_object_equal(j, back));
    json_object_put(back);
    json_object_put(j);
    qapi_clear_struct(&outer_type, &o);
}

static void test_optional_members_omitted(void **state)
{
    Outer o = { .name = xstrdup("x"), .color = COLOR_RED };
    json_object *j = qapi_struct_to_json(&outer_type, &o);
    assert_false(json_object_object_get_ex(j, "big", NULL));
    assert_false(json_object_object_get_ex(j, "inner", NULL));
    assert_true(json_object_object_get_ex(j, "tags", NULL));
    json_object_put(j);
    qapi_clear_struct(&outer_type, &o);
}

static void expect(const char *text, const char *msg)
{
    char *got = parse_error(text);
    assert_non_null(got);
    assert_string_equal(got, msg);
    free(got);
}

#define BASE "\"name\":\"n\",\"count\":1,\"flag\":false,\"color\":\"red\",\"tags\":[]"

static void test_errors_free_everything(void **state)
{
    expect("{\"count\":1}", "Parameter 'name' is missing");
    expect("{" BASE ",\"zz\":1}", "Parameter 'zz' is unexpected");
    expect("{" BASE ",\"big\":-1}", "Parameter 'big' expects uint64");
    expect("{" BASE ",\"inner\":{\"small\":256}}", "Parameter 'inner.small' expects uint8_t");
    expect("{" BASE ",\"inner\":{}}", "Parameter 'inner.small' is missing");
    expect("{\"name\":\"n\",\"count\":1,\"flag\":false,\"color\":\"blue\",\"tags\":[]}",
           "Parameter 'color' does not accept value 'blue'");
    expect("{\"name\":\"n\",\"count\":1,\"flag\":false,\"color\":\"red\",\"tags\":[\"a\",2]}",
           "Invalid parameter type for 'tags[1]', expected: string");
    expect("{\"name\":\"n\",\"count\":\"1\"}", "Invalid parameter type for 'count', expected: integer");
    expect("{\"name\":\"n\",\"count\":18446744073709551615}",
           "Invalid parameter type for 'count', expected: integer");
    assert_null(parse_error("{" BASE "}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_optional_members_omitted),
        cmocka_unit_test(test_errors_free_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
