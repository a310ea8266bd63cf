/*
 * Unit tests for the block layer internals: refcount entry packing for
 * every width, zero detection, and hostile qcow2 headers that must be
 * refused with an error instead of a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2.h"

static void refcount_entries_every_order(void **state)
{
    uint8_t block[64];
    for (int order = 0; order <= 6; order++) {
        BDRVQcow2 s = { .refcount_order = order };
        uint64_t max = order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
        uint64_t n = sizeof(block) * 8 >> order;
        memset(block, 0, sizeof(block));
        for (uint64_t i = 0; i < n; i++) {
            qcow2_refcount_set_entry(&s, block, i, (i * 7 + 1) & max);
        }
        for (uint64_t i = 0; i < n; i++) {
            assert_int_equal(qcow2_refcount_get_entry(&s, block, i), (i * 7 + 1) & max);
        }
        /* Neighbours are untouched by a write to one entry. */
        qcow2_refcount_set_entry(&s, block, 3, 0);
        assert_int_equal(qcow2_refcount_get_entry(&s, block, 2), (2 * 7 + 1) & max);
        assert_int_equal(qcow2_refcount_get_entry(&s, block, 4), (4 * 7 + 1) & max);
    }
}

static void zero_detection(void **state)
{
    uint8_t buf[8192];
    memset(buf, 0, sizeof(buf));
    assert_true(buffer_is_zero(buf, sizeof(buf)));
    assert_true(buffer_is_zero(buf, 3));
    buf[8191] = 1;
    assert_false(buffer_is_zero(buf, sizeof(buf)));
    assert_true(buffer_is_zero(buf, 8191));
    buf[5] = 1;
    assert_false(buffer_is_zero(buf, 16));
}

/* Write a qcow2 header with one field changed and expect open to fail. */
static void expect_refused(uint32_t field_off, uint64_t value, int width)
{
    char path[] = "/tmp/vireo-unit-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint8_t hdr[4096] = { 0 };
    st_be32(hdr, QCOW2_MAGIC);
    st_be32(hdr + 4, 3);
    st_be32(hdr + 20, 16);
    st_be64(hdr + 24, 1 << 20);
    st_be32(hdr + 36, 1);
    st_be64(hdr + 40, 3 * 65536);
    st_be64(hdr + 48, 65536);
    st_be32(hdr + 56, 1);
    st_be32(hdr + 96, 4);
    st_be32(hdr + 100, 104);
    if (width == 8) {
        st_be64(hdr + field_off, value);
    } else {
        st_be32(hdr + field_off, (uint32_t)value);
    }
    assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    close(fd);
    Error *err = NULL;
    BlockImage *img = blk_open(path, "qcow2", 0, &err);
    assert_null(img);
    assert_non_null(err);
    error_free(err);
    unlink(path);
}

static void hostile_headers_refused(void **state)
{
    expect_refused(4, 7, 4);                     /* unknown version */
    expect_refused(20, 40, 4);                   /* cluster bits far too large */
    expect_refused(20, 3, 4);                    /* cluster bits too small */
    expect_refused(24, UINT64_MAX, 8);           /* virtual size near 2^64 */
    expect_refused(36, 0xffffffffu, 4);          /* absurd L1 size */
    expect_refused(40, 12345, 8);                /* unaligned L1 table */
    expect_refused(48, UINT64_MAX - 100, 8);     /* refcount table past any file */
    expect_refused(56, 0x7fffffff, 4);           /* refcount table too large */
    expect_refused(72, 1ull << 40, 8);           /* unknown incompatible feature */
    expect_refused(96, 9, 4);                    /* refcount order above 6 */
    expect_refused(100, 12, 4);                  /* header length too short */
    expect_refused(32, 1, 4);                    /* encryption */
    expect_refused(60, 100000, 4);               /* too many snapshots */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refcount_entries_every_order),
        cmocka_unit_test(zero_detection),
        cmocka_unit_test(hostile_headers_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
