/*
 * fw_cfg unit tests: the port interface and DMA driven as a guest would,
 * through the I/O dispatcher, against real guest memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <byteswap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakes.h"
#include "hw/fw-cfg.h"
#include "memory/address-space.h"
#include "util/osdep.h"

#define RAM_SIZE (16u << 20)
#define DESC_GPA 0x1000
#define BUF_GPA  0x2000

typedef struct Fixture {
    GuestMemory mem;
    FwCfg *fw;
} Fixture;

static int setup(void **state)
{
    Fixture *f = xzalloc(sizeof(*f));
    assert_true(guest_memory_create(&f->mem, RAM_SIZE, UINT64_MAX, NULL));
    f->fw = fw_cfg_create(FW_CFG_IO_BASE, &f->mem, NULL);
    assert_non_null(f->fw);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    fw_cfg_destroy(f->fw);
    guest_memory_destroy(&f->mem);
    free(f);
    return 0;
}

static void select_key(uint16_t key)
{
    io_dispatch_write(AS_PIO, FW_CFG_IO_BASE, 2, key);
}

static uint8_t data_byte(void)
{
    uint64_t v;
    io_dispatch_read(AS_PIO, FW_CFG_IO_BASE + 1, 1, &v);
    return v;
}

static void read_item(uint16_t key, void *buf, size_t len)
{
    select_key(key);
    for (size_t i = 0; i < len; i++) {
        ((uint8_t *)buf)[i] = data_byte();
    }
}

/* Write a descriptor and trigger it with the low-half write, as Linux does. */
static uint32_t dma(Fixture *f, uint32_t control, uint32_t length, uint64_t addr, uint64_t desc)
{
    uint32_t d[4] = { htobe32(control), htobe32(length), htobe32(addr >> 32), htobe32(addr) };
    gmem_write(&f->mem, desc, d, sizeof(d));
    io_dispatch_write(AS_PIO, FW_CFG_IO_BASE + 4, 4, bswap_32(desc >> 32));
    io_dispatch_write(AS_PIO, FW_CFG_IO_BASE + 8, 4, bswap_32((uint32_t)desc));
    uint32_t status = 0;
    gmem_read_u32(&f->mem, desc, &status);
    return be32toh(status);
}

static void test_signature_and_id(void **state)
{
    char sig[5] = { 0 };
    read_item(FW_CFG_SIGNATURE, sig, 4);
    assert_string_equal(sig, "QEMU");
    uint32_t id;
    read_item(FW_CFG_ID, &id, 4);
    assert_int_equal(le32toh(id), FW_CFG_VERSION | FW_CFG_VERSION_DMA);
    /* Past the end of an item: zeros. */
    assert_int_equal(data_byte(), 0);
}

static void test_dma_register_reads_signature(void **state)
{
    uint64_t hi, lo;
    io_dispatch_read(AS_PIO, FW_CFG_IO_BASE + 4, 4, &hi);
    io_dispatch_read(AS_PIO, FW_CFG_IO_BASE + 8, 4, &lo);
    char s[9] = { 0 };
    uint32_t h = hi, l = lo;
    memcpy(s, &h, 4);
    memcpy(s + 4, &l, 4);
    assert_string_equal(s, "QEMU CFG");
    uint64_t q;
    io_dispatch_read(AS_PIO, FW_CFG_IO_BASE + 4, 8, &q);
    assert_true(bswap_64(q) == FW_CFG_DMA_SIGNATURE);
}

static void test_unknown_key_reads_zero(void **state)
{
    select_key(0x1234);
    assert_int_equal(data_byte(), 0);
    select_key(0xffff);
    assert_int_equal(data_byte(), 0);
}

/* Find a file in the directory by reading it like a guest. */
static int find_file(const char *name, uint32_t *size)
{
    uint32_t count;
    read_item(FW_CFG_FILE_DIR, &count, 4);
    count = be32toh(count);
    for (uint32_t i = 0; i < count; i++) {
        struct { uint32_t size; uint16_t select, reserved; char name[56]; } e;
        for (size_t b = 0; b < sizeof(e); b++) {
            ((uint8_t *)&e)[b] = data_byte();
        }
        if (strcmp(e.name, name) == 0) {
            *size = be32toh(e.size);
            return be16toh(e.select);
        }
    }
    return -1;
}

static void test_user_string_and_file(void **state)
{
    Fixture *f = *state;
    char path[] = "/tmp/vireo-fwcfg-XXXXXX";
    int fd = mkstemp(path);
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof(bin); i++) {
        bin[i] = i * 7 + 3;
    }
    assert_int_equal(write(fd, bin, sizeof(bin)), sizeof(bin));
    close(fd);

    FwCfgOption o2 = { .name = "opt/bin", .file = path };
    FwCfgOption o1 = { .name = "opt/hello", .string = "hi there", .next = &o2 };
    Error *err = NULL;
    assert_true(fw_cfg_add_user_items(f->fw, &o1, &err));
    unlink(path);

    uint32_t size;
    int key = find_file("opt/hello", &size);
    assert_true(key >= FW_CFG_FILE_FIRST);
    assert_int_equal(size, 8);
    char buf[9] = { 0 };
    read_item(key, buf, 8);
    assert_string_equal(buf, "hi there");

    key = find_file("opt/bin", &size);
    assert_int_equal(size, sizeof(bin));
    uint8_t got[sizeof(bin)];
    read_item(key, got, sizeof(got));
    assert_memory_equal(got, bin, sizeof(bin));
}

static void expect_user_error(Fixture *f, FwCfgOption *o, const char *needle)
{
    Error *err = NULL;
    assert_false(fw_cfg_add_user_items(f->fw, o, &err));
    assert_non_null(err);
    if (!strstr(error_get_pretty(err), needle)) {
        fail_msg("error '%s' lacks '%s'", error_get_pretty(err), needle);
    }
    error_free(err);
}

static void test_user_item_rules(void **state)
{
    Fixture *f = *state;
    char long_name[80];
    memset(long_name, 'a', sizeof(long_name));
    memcpy(long_name, "opt/", 4);
    long_name[56] = 0;                      /* 56 bytes: one too many */
    FwCfgOption too_long = { .name = long_name, .string = "x" };
    expect_user_error(f, &too_long, "too long");
    long_name[55] = 0;                      /* 55 bytes: fine */
    FwCfgOption ok = { .name = long_name, .string = "x" };
    assert_true(fw_cfg_add_user_items(f->fw, &ok, NULL));

    FwCfgOption dup = { .name = long_name, .string = "y" };
    expect_user_error(f, &dup, "duplicate");
    FwCfgOption both = { .name = "opt/both", .string = "a", .file = "/etc/hostname" };
    expect_user_error(f, &both, "exactly one");
    FwCfgOption neither = { .name = "opt/neither" };
    expect_user_error(f, &neither, "exactly one");
    FwCfgOption missing = { .name = "opt/missing", .file = "/nonexistent/file" };
    expect_user_error(f, &missing, "/nonexistent/file");
    FwCfgOption dir = { .name = "opt/dir", .file = "/tmp" };
    expect_user_error(f, &dir, "not a regular file");
    FwCfgOption empty = { .name = "", .string = "a" };
    expect_user_error(f, &empty, "name");
}

static void test_dma_select_read_skip(void **state)
{
    Fixture *f = *state;
    uint8_t *data = xmalloc(1000);
    for (int i = 0; i < 1000; i++) {
        data[i] = i & 0xff;
    }
    assert_true(fw_cfg_add_file(f->fw, "opt/dma", data, 1000, false, NULL));
    uint32_t size;
    int key = find_file("opt/dma", &size);

    uint32_t ctl = (uint32_t)key << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ;
    assert_int_equal(dma(f, ctl, 10, BUF_GPA, DESC_GPA), 0);
    uint8_t got[16];
    gmem_read(&f->mem, BUF_GPA, got, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(got[i], i);
    }
    /* Skip 90 bytes, then read the next ones: the offset moved. */
    assert_int_equal(dma(f, FW_CFG_DMA_CTL_SKIP, 90, 0, DESC_GPA), 0);
    assert_int_equal(dma(f, FW_CFG_DMA_CTL_READ, 4, BUF_GPA, DESC_GPA), 0);
    gmem_read(&f->mem, BUF_GPA, got, 4);
    assert_int_equal(got[0], 100);
    assert_int_equal(got[3], 103);
    /* The port interface continues from the same offset. */
    assert_int_equal(data_byte(), 104);
    /* Reading past the end fills zeros and succeeds. */
    gmem_fill(&f->mem, BUF_GPA, 0xaa, 16);
    assert_int_equal(dma(f, FW_CFG_DMA_CTL_SKIP, 1000, 0, DESC_GPA), 0);
    assert_int_equal(dma(f, FW_CFG_DMA_CTL_READ, 16, BUF_GPA, DESC_GPA), 0);
    gmem_read(&f->mem, BUF_GPA, got, 16);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(got[i], 0);
    }
    /* The address register reads the signature again after an operation. */
    uint64_t hi;
    io_dispatch_read(AS_PIO, FW_CFG_IO_BASE + 4, 4, &hi);
    assert_int_equal((uint32_t)hi, 0x554d4551);
}

static void test_dma_write(void **state)
{
    Fixture *f = *state;
    assert_true(fw_cfg_add_file(f->fw, "opt/rw", xzalloc(8), 8, true, NULL));
    assert_true(fw_cfg_add_file(f->fw, "opt/ro", xzalloc(8), 8, false, NULL));
    uint32_t size;
    int rw = find_file("opt/rw", &size), ro = find_file("opt/ro", &size);

    gmem_write(&f->mem, BUF_GPA, "ABCDEFGH", 8);
    uint32_t ctl = (uint32_t)rw << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_WRITE;
    assert_int_equal(dma(f, ctl, 8, BUF_GPA, DESC_GPA), 0);
    char got[9] = { 0 };
    read_item(rw, got, 8);
    assert_string_equal(got, "ABCDEFGH");
    /* Past the end of a writable item, and any write to a read-only one: error. */
    ctl = (uint32_t)rw << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_WRITE;
    assert_int_equal(dma(f, ctl, 9, BUF_GPA, DESC_GPA), FW_CFG_DMA_CTL_ERROR);
    ctl = (uint32_t)ro << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_WRITE;
    assert_int_equal(dma(f, ctl, 4, BUF_GPA, DESC_GPA), FW_CFG_DMA_CTL_ERROR);
}

static void test_dma_bad_addresses(void **state)
{
    Fixture *f = *state;
    uint32_t ctl = FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ;
    /* Buffer outside RAM, straddling its end, and wrapping around 2^64. */
    assert_int_equal(dma(f, ctl, 4, RAM_SIZE + 0x1000, DESC_GPA), FW_CFG_DMA_CTL_ERROR);
    assert_int_equal(dma(f, ctl, 4, RAM_SIZE - 2, DESC_GPA), FW_CFG_DMA_CTL_ERROR);
    assert_int_equal(dma(f, ctl, 0x100, UINT64_MAX - 0x10, DESC_GPA), FW_CFG_DMA_CTL_ERROR);
    /* A descriptor outside RAM: nothing to report into, nothing breaks. */
    io_dispatch_write(AS_PIO, FW_CFG_IO_BASE + 4, 4, bswap_32(0xffffffff));
    io_dispatch_write(AS_PIO, FW_CFG_IO_BASE + 8, 4, bswap_32(0xfffffff8));
    /* A descriptor straddling the end of RAM. */
    io_dispatch_write(AS_PIO, FW_CFG_IO_BASE + 8, 4, bswap_32(RAM_SIZE - 8));
    /* Still working afterwards. */
    assert_int_equal(dma(f, ctl, 4, BUF_GPA, DESC_GPA), 0);
    char sig[5] = { 0 };
    gmem_read(&f->mem, BUF_GPA, sig, 4);
    assert_string_equal(sig, "QEMU");
}

static void test_dma_large_transfer(void **state)
{
    Fixture *f = *state;
    size_t len = 6u << 20;
    uint8_t *data = xmalloc(len);
    for (size_t i = 0; i < len; i++) {
        data[i] = (i * 2654435761u) >> 24;
    }
    uint8_t *copy = xmalloc(len);
    memcpy(copy, data, len);
    assert_true(fw_cfg_add_file(f->fw, "opt/big", data, len, false, NULL));
    uint32_t size;
    int key = find_file("opt/big", &size);
    assert_int_equal(size, len);
    uint32_t ctl = (uint32_t)key << 16 | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ;
    assert_int_equal(dma(f, ctl, len, 0x100000, DESC_GPA), 0);
    assert_memory_equal(gmem_ptr(&f->mem, 0x100000, len), copy, len);
    free(copy);
}

static void test_garbage_port_access(void **state)
{
    /* Every width at every port of the window, both directions. */
    for (unsigned off = 0; off < FW_CFG_IO_SIZE; off++) {
        for (unsigned size = 1; size <= 8; size *= 2) {
            uint64_t v;
            io_dispatch_read(AS_PIO, FW_CFG_IO_BASE + off, size, &v);
            if (off != 8 && off != 4) {     /* those would start DMA at RAM 0 */
                io_dispatch_write(AS_PIO, FW_CFG_IO_BASE + off, size, 0xdeadbeefcafef00dULL);
            }
        }
    }
    char sig[5] = { 0 };
    read_item(FW_CFG_SIGNATURE, sig, 4);
    assert_string_equal(sig, "QEMU");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_signature_and_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dma_register_reads_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_reads_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_string_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_item_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dma_select_read_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dma_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dma_bad_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dma_large_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_port_access, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
