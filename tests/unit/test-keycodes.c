/*
 * hw/keycodes.c: the keyboard's set-2 bytes, passed through the 8042's
 * translation as the controller passes them (an 0xf0 folded into bit 7 of
 * the next byte), must be exactly the set-1 bytes of the same key, for
 * every qnum, going down and up; and the key names resolve as the schema
 * spells them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "hw/keycodes.h"

static unsigned translate(const uint8_t *in, unsigned n, uint8_t *out)
{
    unsigned m = 0;
    int brk = 0;
    for (unsigned i = 0; i < n; i++) {
        if (in[i] == 0xf0) {
            brk = 1;
            continue;
        }
        out[m++] = keycode_translate_set2(in[i]) | (brk ? 0x80 : 0);
        brk = 0;
    }
    return m;
}

static void test_set2_translates_to_set1(void **state)
{
    (void)state;
    unsigned keys = 0;
    for (unsigned qnum = 1; qnum <= 0xff; qnum++) {
        for (int down = 0; down <= 1; down++) {
            uint8_t s1[KEYCODE_SEQ_MAX], s2[KEYCODE_SEQ_MAX], tr[KEYCODE_SEQ_MAX];
            unsigned n1 = keycode_qnum_to_set1(qnum, down, s1);
            unsigned n2 = keycode_qnum_to_set2(qnum, down, s2);
            if (!n2) {
                continue;
            }
            keys += down;
            assert_true(n2 <= KEYCODE_SEQ_MAX);
            unsigned nt = translate(s2, n2, tr);
            assert_int_equal(nt, n1);
            assert_memory_equal(tr, s1, n1);
        }
    }
    /* Every key of a 105-key PC keyboard and the media keys at least. */
    assert_true(keys >= 120);
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(keycode_qnum_of_qcode("a"), 0x1e);
    assert_int_equal(keycode_qnum_of_qcode("ctrl_r"), 0x9d);
    assert_int_equal(keycode_qnum_of_qcode("f1"), 0x3b);
    assert_int_equal(keycode_qnum_of_qcode("unmapped"), 0);
    assert_int_equal(keycode_qnum_of_qcode("lang1"), 0);
    assert_int_equal(keycode_qnum_of_qcode("A"), -1);
    assert_int_equal(keycode_qnum_of_qcode(""), -1);
    uint8_t b[KEYCODE_SEQ_MAX];
    assert_int_equal(keycode_qnum_to_set2(0, 1, b), 0);
    assert_int_equal(keycode_qnum_to_set2(0x100, 1, b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set2_translates_to_set1),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
