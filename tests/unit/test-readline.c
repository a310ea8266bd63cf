#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/readline.h"

static char last_line[READLINE_MAX_LINE];
static int lines;

static void sink(void *opaque, const char *s, size_t len) {}

static void on_line(void *opaque, const char *line)
{
    strcpy(last_line, line);
    lines++;
}

static void type(ReadLine *rl, const char *keys)
{
    for (const char *p = keys; *p; p++) {
        readline_feed(rl, (unsigned char)*p);
    }
}

static void test_editing_keys(void **state)
{
    ReadLine rl;
    readline_init(&rl, "> ", sink, on_line, NULL);
    type(&rl, "info stauts\b\b\bus\r");                 /* backspace: "info sta" + "us" */
    assert_string_equal(last_line, "info staus");
    type(&rl, "ab\x1b[Dc\r");                            /* left arrow then insert */
    assert_string_equal(last_line, "acb");
    type(&rl, "world\x01hello \r");                      /* ^A */
    assert_string_equal(last_line, "hello world");
    type(&rl, "abcdef\x01\x06\x06\x0b\r");              /* ^F ^F ^K */
    assert_string_equal(last_line, "ab");
    type(&rl, "xyz\x15q\r");                             /* ^U */
    assert_string_equal(last_line, "q");
    type(&rl, "abc\x01\x1b[3~\r");                       /* Delete key */
    assert_string_equal(last_line, "bc");
    readline_free(&rl);
}

static void test_history(void **state)
{
    ReadLine rl;
    readline_init(&rl, "> ", sink, on_line, NULL);
    type(&rl, "one\r");
    type(&rl, "two\r");
    type(&rl, "\x1b[A\r");
    assert_string_equal(last_line, "two");
    type(&rl, "\x1b[A\x1b[A\x1b[A\r");                   /* stops at the oldest */
    assert_string_equal(last_line, "one");
    /* History is now one, two, one: ^P ^P ^N walks back two and forward one. */
    type(&rl, "\x10\x10\x0e\r");
    assert_string_equal(last_line, "one");
    for (int i = 0; i < READLINE_HISTORY * 2; i++) {     /* bounded history */
        type(&rl, "x\ry\r");
    }
    assert_true(rl.nr_history <= READLINE_HISTORY);
    readline_free(&rl);
}

static void test_long_line_is_bounded(void **state)
{
    ReadLine rl;
    readline_init(&rl, "> ", sink, on_line, NULL);
    lines = 0;
    for (int i = 0; i < READLINE_MAX_LINE * 3; i++) {
        readline_feed(&rl, 'a');
    }
    readline_feed(&rl, '\r');
    assert_int_equal(lines, 1);
    assert_int_equal(strlen(last_line), READLINE_MAX_LINE - 1);
    readline_free(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_editing_keys),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_long_line_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
