/*
 * Unit tests of the live dirty bitmaps (block/dirty-bitmap.c) on a
 * null-co image: bit ranges at word and disk edges, counts, runs for
 * NBD's block status, merges across granularities, the serialised bits and
 * their SHA-256, resize, and what the block layer's writes mark.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "block/dirty-bitmap.h"
#include "util/keyval.h"

/* A null-co image of @size bytes (reads zeros, takes writes). */
static BlockImage *null_image(uint64_t size)
{
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
    KeyVal kv[] = { { (char *)"size", sz } };
    KeyValList opts = { .items = kv, .n = 1 };
    Error *err = NULL;
    BlockImage *img = blk_open_opts("null-co://", NULL, &opts, BLK_O_RDWR, &err);
    assert_non_null(img);
    return img;
}

static void test_ranges_and_counts(void **state)
{
    BlockImage *img = null_image(1000 * 512 + 100);   /* a partial last granule */
    Error *err = NULL;
    BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_create(img, "a", 512, &err);
    assert_non_null(bm);
    assert_null(bdrv_dirty_bitmap_create(img, "a", 512, &err));
    assert_string_equal(error_get_pretty(err), "Bitmap already exists: a");
    error_free(err);
    err = NULL;
    bdrv_dirty_bitmap_set_dirty(bm, 63 * 512 + 1, 2 * 512);     /* bits 63..65 */
    assert_int_equal(bdrv_dirty_bitmap_count(bm), 3 * 512);
    assert_false(bdrv_dirty_bitmap_get(bm, 62 * 512));
    assert_true(bdrv_dirty_bitmap_get(bm, 64 * 512));
    bdrv_dirty_bitmap_set_dirty(bm, 64 * 512, 512);             /* already set */
    assert_int_equal(bdrv_dirty_bitmap_count(bm), 3 * 512);
    bdrv_dirty_bitmap_set_dirty(bm, 1000 * 512, 1 << 20);       /* clipped at the end */
    assert_int_equal(bdrv_dirty_bitmap_count(bm), 4 * 512);
    bdrv_dirty_bitmap_set_dirty(bm, 2000 * 512, 512);           /* past the end: nothing */
    assert_int_equal(bdrv_dirty_bitmap_count(bm), 4 * 512);
    bool dirty;
    uint64_t len;
    assert_true(bdrv_dirty_bitmap_next_extent(bm, 0, UINT64_MAX, &dirty, &len));
    assert_false(dirty);
    assert_int_equal(len, 63 * 512);
    assert_true(bdrv_dirty_bitmap_next_extent(bm, 63 * 512, UINT64_MAX, &dirty, &len));
    assert_true(dirty);
    assert_int_equal(len, 3 * 512);
    assert_true(bdrv_dirty_bitmap_next_extent(bm, 64 * 512 + 7, 100, &dirty, &len));
    assert_true(dirty);
    assert_int_equal(len, 100);
    assert_true(bdrv_dirty_bitmap_next_extent(bm, 1000 * 512, UINT64_MAX, &dirty, &len));
    assert_true(dirty);
    assert_int_equal(len, 100);                                 /* ends at the disk end */
    assert_false(bdrv_dirty_bitmap_next_extent(bm, 1000 * 512 + 100, 1, &dirty, &len));
    bdrv_dirty_bitmap_reset_dirty(bm, 64 * 512, 512);
    assert_int_equal(bdrv_dirty_bitmap_count(bm), 3 * 512);
    bdrv_dirty_bitmap_clear(bm);
    assert_int_equal(bdrv_dirty_bitmap_count(bm), 0);
    blk_close(img, NULL);
}

static void test_block_layer_marks_enabled_bitmaps(void **state)
{
    BlockImage *img = null_image(64 << 20);
    Error *err = NULL;
    BdrvDirtyBitmap *a = bdrv_dirty_bitmap_create(img, "a", 65536, &err);
    BdrvDirtyBitmap *off = bdrv_dirty_bitmap_create(img, "off", 65536, &err);
    bdrv_dirty_bitmap_set_enabled(off, false);
    static uint8_t buf[8192];
    assert_int_equal(blk_pwrite(img, 65536 - 4096, buf, sizeof(buf), &err), 0);
    assert_int_equal(blk_write_zeroes(img, 1 << 20, 4096, &err), 0);
    assert_int_equal(blk_discard(img, 2 << 20, 65536, &err), 0);
    assert_int_equal(bdrv_dirty_bitmap_count(a), 4 * 65536);
    assert_int_equal(bdrv_dirty_bitmap_count(off), 0);
    /* Newest first. */
    assert_ptr_equal(bdrv_dirty_bitmap_first(img), off);
    assert_ptr_equal(bdrv_dirty_bitmap_next(off), a);
    blk_close(img, NULL);
}

static void test_merge_serialise_sha(void **state)
{
    BlockImage *img = null_image(1 << 20);
    BlockImage *other = null_image(2 << 20);
    Error *err = NULL;
    BdrvDirtyBitmap *fine = bdrv_dirty_bitmap_create(img, "fine", 512, &err);
    BdrvDirtyBitmap *coarse = bdrv_dirty_bitmap_create(img, "coarse", 65536, &err);
    BdrvDirtyBitmap *big = bdrv_dirty_bitmap_create(other, "big", 512, &err);
    char hex[65];
    /* 1 MiB at 64 KiB granularity: 16 bits, one 64-bit word of zeros. */
    bdrv_dirty_bitmap_sha256(coarse, hex);
    assert_string_equal(hex, "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
    bdrv_dirty_bitmap_set_dirty(fine, 70000, 1);
    assert_int_equal(bdrv_dirty_bitmap_merge(coarse, fine, &err), 0);
    assert_int_equal(bdrv_dirty_bitmap_count(coarse), 65536);   /* the granule holding 70000 */
    assert_true(bdrv_dirty_bitmap_get(coarse, 65536));
    assert_int_equal(bdrv_dirty_bitmap_merge(coarse, big, &err), -1);
    assert_string_equal(error_get_pretty(err),
                        "Bitmaps are of different sizes (destination size is 1048576, "
                        "source size is 2097152) and can't be merged");
    error_free(err);
    err = NULL;
    uint8_t bytes[2];
    assert_int_equal(bdrv_dirty_bitmap_serialized_size(coarse), 2);
    bdrv_dirty_bitmap_export_bits(coarse, bytes);
    assert_int_equal(bytes[0], 0x02);
    assert_int_equal(bytes[1], 0x00);
    bytes[1] = 0x80;
    bdrv_dirty_bitmap_import_bits(coarse, bytes);
    assert_int_equal(bdrv_dirty_bitmap_count(coarse), 2 * 65536);
    assert_true(bdrv_dirty_bitmap_get(coarse, 15 * 65536));
    /* Resize: the tail goes, a larger disk's new area starts clean. */
    blk_dirty_bitmaps_truncate(img, 15 * 65536);
    assert_int_equal(bdrv_dirty_bitmap_count(coarse), 65536);
    blk_dirty_bitmaps_truncate(img, 4 << 20);
    assert_int_equal(bdrv_dirty_bitmap_count(coarse), 65536);
    assert_int_equal(bdrv_dirty_bitmap_size(coarse), 4 << 20);
    blk_close(img, NULL);
    blk_close(other, NULL);
}

/* Not a check: the cost of marking one 4 KiB write in two bitmaps, printed. */
static void test_mark_cost(void **state)
{
    BlockImage *img = null_image(1ull << 30);
    Error *err = NULL;
    struct timespec t0, t1;
    double ns[3];
    for (int n = 0; n < 3; n++) {
        if (n) {
            bdrv_dirty_bitmap_create(img, n == 1 ? "a" : "b", n == 1 ? 65536 : 4096, &err);
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (uint64_t i = 0; i < 1000000; i++) {
            blk_dirty_bitmaps_mark(img, (i * 1048576 + i * 4096) % (1ull << 30), 4096);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns[n] = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e6;
    }
    printf("marking a 4 KiB write: %.1f ns with no bitmap, %.1f ns with one, %.1f ns with two\n",
           ns[0], ns[1], ns[2]);
    blk_close(img, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranges_and_counts),
        cmocka_unit_test(test_block_layer_marks_enabled_bitmaps),
        cmocka_unit_test(test_merge_serialise_sha),
        cmocka_unit_test(test_mark_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
