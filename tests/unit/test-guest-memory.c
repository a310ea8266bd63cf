#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "memory/guest-memory.h"

#define MiB (1ULL << 20)

static void test_bounds(void **state)
{
    GuestMemory mem;
    assert_true(guest_memory_create(&mem, 8 * MiB, UINT64_MAX, NULL));
    uint8_t buf[16] = { 1, 2, 3 };
    assert_true(gmem_write(&mem, 8 * MiB - 16, buf, 16));
    assert_false(gmem_write(&mem, 8 * MiB - 15, buf, 16));          /* one past the end */
    assert_false(gmem_read(&mem, UINT64_MAX - 3, buf, 8));          /* wraps around */
    assert_null(gmem_ptr(&mem, 0, UINT64_MAX));
    assert_null(gmem_ptr(&mem, 8 * MiB, 1));
    assert_non_null(gmem_ptr(&mem, 8 * MiB, 0));                    /* empty range at the end */
    uint32_t v = 0;
    assert_true(gmem_write_u32(&mem, 0x100, 0xdeadbeef));
    assert_true(gmem_read_u32(&mem, 0x100, &v));
    assert_int_equal(v, 0xdeadbeef);
    assert_false(gmem_read_u32(&mem, 8 * MiB - 2, &v));
    guest_memory_destroy(&mem);
}

static void test_hole_below_4g(void **state)
{
    GuestMemory mem;
    /* 12 MiB with low memory capped at 8 MiB: 4 MiB continue at 4 GiB. */
    assert_true(guest_memory_create(&mem, 12 * MiB, 8 * MiB, NULL));
    assert_int_equal(mem.nr_regions, 2);
    uint8_t b = 7;
    assert_true(gmem_write(&mem, 4ULL << 30, &b, 1));
    assert_false(gmem_write(&mem, 8 * MiB, &b, 1));                 /* the hole */
    assert_false(gmem_read(&mem, (4ULL << 30) + 4 * MiB - 1, &b, 2));
    uint8_t two[2];
    assert_false(gmem_read(&mem, 8 * MiB - 1, two, 2));             /* no crossing into the hole */
    /* Both regions are views of one memfd. */
    assert_true(mem.fd >= 0);
    assert_int_equal(mem.regions[1].fd_offset, 8 * MiB);
    guest_memory_destroy(&mem);
}

static void test_zero_size_refused(void **state)
{
    GuestMemory mem;
    Error *err = NULL;
    assert_false(guest_memory_create(&mem, 0, UINT64_MAX, &err));
    assert_non_null(err);
    error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_hole_below_4g),
        cmocka_unit_test(test_zero_size_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
