#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

static const OptParam params[] = {
    { "backend", OPT_STRING, NULL },
    { "id", OPT_STRING, NULL },
    { "path", OPT_STRING, NULL },
    { "server", OPT_BOOL, NULL },
    { "wait", OPT_BOOL, NULL },
    { "port", OPT_NUMBER, NULL },
    { "size", OPT_SIZE, NULL },
    { NULL },
};

static void test_implied_key_and_escaped_comma(void **state)
{
    KeyValList kv;
    assert_true(keyval_parse("socket,id=c0,path=/tmp/a,,b", "backend", params, &kv, NULL));
    assert_string_equal(keyval_get(&kv, "backend"), "socket");
    assert_string_equal(keyval_get(&kv, "id"), "c0");
    assert_string_equal(keyval_get(&kv, "path"), "/tmp/a,b");
    assert_null(keyval_get(&kv, "server"));
    keyval_free(&kv);
}

static void test_legacy_flags(void **state)
{
    KeyValList kv;
    assert_true(keyval_parse("socket,server,nowait", "backend", params, &kv, NULL));
    assert_true(keyval_get_bool(&kv, "server", false));
    assert_false(keyval_get_bool(&kv, "wait", true));
    keyval_free(&kv);
}

static void test_errors(void **state)
{
    KeyValList kv;
    Error *err = NULL;
    assert_false(keyval_parse("socket,bogus=1", "backend", params, &kv, &err));
    assert_string_equal(error_get_pretty(err), "Invalid parameter 'bogus'");
    error_free(err);
    err = NULL;
    assert_false(keyval_parse("socket,server=perhaps", "backend", params, &kv, &err));
    assert_string_equal(error_get_pretty(err), "Parameter 'server' expects 'on' or 'off'");
    error_free(err);
    err = NULL;
    assert_false(keyval_parse("x,port=-1", "backend", params, &kv, &err));
    error_free(err);
    err = NULL;
    assert_false(keyval_parse("x,size=1Z", "backend", params, &kv, &err));
    error_free(err);
}

static void test_repeated_key_last_wins(void **state)
{
    KeyValList kv;
    assert_true(keyval_parse("id=a,id=b", NULL, params, &kv, NULL));
    assert_int_equal(kv.n, 1);
    assert_string_equal(keyval_get(&kv, "id"), "b");
    keyval_free(&kv);
}

static void test_parse_size(void **state)
{
    uint64_t v;
    assert_true(parse_size("4096", &v, NULL));
    assert_int_equal(v, 4096);
    assert_true(parse_size("2M", &v, NULL));
    assert_int_equal(v, 2 << 20);
    assert_true(parse_size("1T", &v, NULL));
    assert_int_equal(v, 1ULL << 40);
    assert_false(parse_size("16777216T", &v, NULL));   /* overflows 64 bits */
    assert_false(parse_size("-1", &v, NULL));
    assert_false(parse_size("", &v, NULL));
    assert_false(parse_size("3X", &v, NULL));
}

static void test_range_within(void **state)
{
    assert_true(range_within(0, 10, 10));
    assert_false(range_within(1, 10, 10));
    assert_false(range_within(UINT64_MAX, 2, UINT64_MAX));
    assert_false(range_within(5, UINT64_MAX, 100));
    assert_true(range_within(10, 0, 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_implied_key_and_escaped_comma),
        cmocka_unit_test(test_legacy_flags),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_repeated_key_last_wins),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_range_within),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
