#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/json-stream.h"
#include "util/osdep.h"

typedef struct Collected {
    char *msgs[16];
    int nr_msgs;
    int nr_errors;
} Collected;

static void on_message(void *opaque, const char *text, size_t len)
{
    Collected *c = opaque;
    c->msgs[c->nr_msgs++] = xstrndup_safe(text, len);
}

static void on_error(void *opaque, const char *why)
{
    ((Collected *)opaque)->nr_errors++;
}

static void feed(JsonStream *js, const char *s)
{
    json_stream_feed(js, (const uint8_t *)s, strlen(s));
}

static void clear(Collected *c)
{
    for (int i = 0; i < c->nr_msgs; i++) {
        free(c->msgs[i]);
    }
    memset(c, 0, sizeof(*c));
}

static void test_split_and_join(void **state)
{
    Collected c = { 0 };
    JsonStream js;
    json_stream_init(&js, 1024, 8, on_message, on_error, &c);
    feed(&js, "{\"a\":\"}{\\\"\"}{\"b\"");
    feed(&js, ":[1,{}]} \n [2] ");
    assert_int_equal(c.nr_msgs, 3);
    assert_string_equal(c.msgs[0], "{\"a\":\"}{\\\"\"}");
    assert_string_equal(c.msgs[1], "{\"b\":[1,{}]}");
    assert_string_equal(c.msgs[2], "[2]");
    assert_int_equal(c.nr_errors, 0);
    clear(&c);
    json_stream_free(&js);
}

static void test_limits_skip_one_message(void **state)
{
    Collected c = { 0 };
    JsonStream js;
    json_stream_init(&js, 16, 3, on_message, on_error, &c);
    feed(&js, "[[[[1]]]]{\"x\":1}");
    assert_int_equal(c.nr_errors, 1);
    assert_int_equal(c.nr_msgs, 1);
    assert_string_equal(c.msgs[0], "{\"x\":1}");
    clear(&c);
    feed(&js, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"[1]");
    assert_int_equal(c.nr_errors, 1);
    assert_int_equal(c.nr_msgs, 1);
    assert_string_equal(c.msgs[0], "[1]");
    clear(&c);
    /* A newline inside a string resynchronises. */
    feed(&js, "{\"broken\n{\"ok\":2}");
    assert_int_equal(c.nr_errors, 1);
    assert_int_equal(c.nr_msgs, 1);
    assert_string_equal(c.msgs[0], "{\"ok\":2}");
    clear(&c);
    json_stream_free(&js);
}

static void test_utf8(void **state)
{
    const char *good = "plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    assert_true(json_text_is_utf8(good, strlen(good)));
    assert_false(json_text_is_utf8("\xff", 1));
    assert_false(json_text_is_utf8("\xc0\xaf", 2));          /* overlong '/' */
    assert_false(json_text_is_utf8("\xed\xa0\x80", 3));      /* surrogate */
    assert_false(json_text_is_utf8("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    assert_false(json_text_is_utf8("\xe2\x82", 2));          /* truncated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_join),
        cmocka_unit_test(test_limits_skip_one_message),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
