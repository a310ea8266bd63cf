/*
 * Boot loader and ACPI table tests: synthetic bzImage and PVH ELF kernels
 * (good and hostile), the zero page and e820 map the kernel gets, and the
 * structure and checksums of the generated ACPI tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "machine/acpi.h"
#include "machine/boot-linux.h"
#include "machine/layout.h"
#include "util/osdep.h"

#define RAM (64ULL << 20)

static char *write_temp(const void *data, size_t len)
{
    char *path = xstrdup("/tmp/vireo-boot-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* A minimal bzImage: one setup sector after the boot sector, then the payload. */
static uint8_t *fake_bzimage(size_t *len, uint16_t version, uint16_t xloadflags)
{
    *len = 1024 + 8192;
    uint8_t *k = xzalloc(*len);
    k[0x1f1] = 1;                       /* setup_sects */
    put16(k + 0x1fe, 0xaa55);
    k[0x200] = 0xeb;
    k[0x201] = 0x6a;                    /* header runs to 0x26c */
    put32(k + 0x202, 0x53726448);
    put16(k + 0x206, version);
    k[0x211] = 0x01;                    /* LOADED_HIGH */
    put32(k + 0x22c, 0x37ffffff);       /* initrd_addr_max */
    put16(k + 0x236, xloadflags);
    put32(k + 0x238, 255);              /* cmdline_size */
    put64(k + 0x258, 0x1000000);        /* pref_address */
    put32(k + 0x260, 4u << 20);         /* init_size */
    for (size_t i = 1024; i < *len; i++) {
        k[i] = i * 13;
    }
    return k;
}

typedef struct Env {
    GuestMemory mem;
} Env;

static int setup(void **state)
{
    Env *e = xzalloc(sizeof(*e));
    assert_true(guest_memory_create(&e->mem, RAM, LOWMEM_LIMIT, NULL));
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    Env *e = *state;
    guest_memory_destroy(&e->mem);
    free(e);
    return 0;
}

static void test_bzimage_load(void **state)
{
    Env *e = *state;
    size_t len;
    uint8_t *k = fake_bzimage(&len, 0x020f, 1);
    char *kpath = write_temp(k, len);
    uint8_t initrd[5000];
    memset(initrd, 0x5a, sizeof(initrd));
    char *ipath = write_temp(initrd, sizeof(initrd));

    LinuxLoader *l = linux_loader_open(kpath, ipath, "console=ttyS0 quiet", NULL);
    assert_non_null(l);
    BootEntry entry;
    assert_true(linux_loader_load(l, &e->mem, 0xe0000, &entry, NULL));
    assert_int_equal(entry.mode, BOOT_ENTRY_LINUX64);
    assert_int_equal(entry.entry, KERNEL_LOAD_ADDR + 0x200);
    assert_int_equal(entry.arg, BOOT_ZERO_PAGE_ADDR);
    assert_memory_equal(gmem_ptr(&e->mem, KERNEL_LOAD_ADDR, 8192), k + 1024, 8192);

    const uint8_t *bp = gmem_ptr(&e->mem, BOOT_ZERO_PAGE_ADDR, 4096);
    assert_int_equal(bp[0x210], 0xff);                          /* type_of_loader */
    assert_int_equal(get32(bp + 0x202), 0x53726448);            /* header copied */
    assert_int_equal(get32(bp + 0x228), BOOT_CMDLINE_ADDR);
    assert_string_equal(gmem_ptr(&e->mem, BOOT_CMDLINE_ADDR, 20), "console=ttyS0 quiet");
    uint32_t rd = get32(bp + 0x218);
    assert_int_equal(get32(bp + 0x21c), sizeof(initrd));
    assert_int_equal(rd & 0xfff, 0);
    assert_true(rd + sizeof(initrd) <= RAM && rd >= 0x1000000 + (4u << 20));
    assert_memory_equal(gmem_ptr(&e->mem, rd, sizeof(initrd)), initrd, sizeof(initrd));
    assert_int_equal(get64(bp + 0x070), 0xe0000);               /* acpi_rsdp_addr */
    /* e820: usable low RAM, the reserved BIOS hole, RAM from 1 MiB to the end. */
    unsigned n = bp[0x1e8];
    assert_true(n >= 3);
    const E820Entry *map = (const E820Entry *)(bp + 0x2d0);
    assert_int_equal(map[0].addr, 0);
    assert_int_equal(map[0].type, E820_RAM);
    assert_int_equal(map[1].type, E820_RESERVED);
    assert_int_equal(map[2].addr, 0x100000);
    assert_int_equal(map[2].addr + map[2].size, RAM);
    /* Identity page tables for the 64-bit entry: 2 MiB pages from 0. */
    assert_int_equal(*(uint64_t *)gmem_ptr(&e->mem, BOOT_PD_ADDR + 8, 8), (2ULL << 20) | 0x83);

    linux_loader_close(l);
    unlink(kpath);
    unlink(ipath);
    free(kpath);
    free(ipath);
    free(k);
}

static void expect_open_error(const void *data, size_t len, const char *cmdline,
                              const char *needle)
{
    char *path = write_temp(data, len);
    Error *err = NULL;
    LinuxLoader *l = linux_loader_open(path, NULL, cmdline, &err);
    assert_null(l);
    assert_non_null(err);
    if (!strstr(error_get_pretty(err), needle)) {
        fail_msg("'%s' lacks '%s'", error_get_pretty(err), needle);
    }
    error_free(err);
    unlink(path);
    free(path);
}

static void test_bzimage_rejects(void **state)
{
    size_t len;
    uint8_t junk[4096];
    memset(junk, 0x90, sizeof(junk));
    expect_open_error(junk, 100, "", "too small");
    expect_open_error(junk, sizeof(junk), "", "not a Linux kernel");

    uint8_t *k = fake_bzimage(&len, 0x0200, 1);
    expect_open_error(k, len, "", "no 64-bit entry");
    free(k);
    k = fake_bzimage(&len, 0x020f, 0);
    expect_open_error(k, len, "", "no 64-bit entry");
    free(k);
    k = fake_bzimage(&len, 0x020f, 1);
    k[0x1f1] = 200;                     /* setup longer than the file */
    expect_open_error(k, len, "", "truncated");
    k[0x1f1] = 1;
    char longline[300];
    memset(longline, 'a', sizeof(longline) - 1);
    longline[299] = 0;
    expect_open_error(k, len, longline, "command line is too long");
    free(k);

    Error *err = NULL;
    assert_null(linux_loader_open("/nonexistent/kernel", NULL, "", &err));
    assert_non_null(strstr(error_get_pretty(err), "/nonexistent/kernel"));
    error_free(err);
}

static void test_ram_too_small(void **state)
{
    Env *e = *state;
    size_t len;
    uint8_t *k = fake_bzimage(&len, 0x020f, 1);
    put32(k + 0x260, 60u << 20);        /* needs 16 + 60 MiB > 64 MiB of RAM */
    char *kpath = write_temp(k, len);
    LinuxLoader *l = linux_loader_open(kpath, NULL, "", NULL);
    BootEntry entry;
    Error *err = NULL;
    assert_false(linux_loader_load(l, &e->mem, 0, &entry, &err));
    assert_non_null(strstr(error_get_pretty(err), "too small"));
    error_free(err);
    linux_loader_close(l);

    /* An initrd bigger than what is left. */
    put32(k + 0x260, 4u << 20);
    FILE *f = fopen(kpath, "wb");
    fwrite(k, 1, len, f);
    fclose(f);
    char *ipath = xstrdup("/tmp/vireo-initrd-XXXXXX");
    int fd = mkstemp(ipath);
    assert_int_equal(ftruncate(fd, 50 << 20), 0);
    close(fd);
    l = linux_loader_open(kpath, ipath, "", NULL);
    err = NULL;
    assert_false(linux_loader_load(l, &e->mem, 0, &entry, &err));
    assert_non_null(strstr(error_get_pretty(err), "does not fit"));
    error_free(err);
    linux_loader_close(l);
    unlink(kpath);
    unlink(ipath);
    free(kpath);
    free(ipath);
    free(k);
}

/* ELF64 with one PT_LOAD and a PT_NOTE carrying the PVH entry. */
static uint8_t *fake_elf(size_t *len, uint64_t paddr, bool with_note, uint64_t load_off)
{
    *len = 4096;
    uint8_t *f = xzalloc(*len);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)f;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_machine = EM_X86_64;
    eh->e_phoff = sizeof(*eh);
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 2;
    Elf64_Phdr *ph = (Elf64_Phdr *)(f + sizeof(*eh));
    ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = load_off, .p_paddr = paddr,
                          .p_filesz = 256, .p_memsz = 1024 };
    ph[1] = (Elf64_Phdr){ .p_type = with_note ? PT_NOTE : PT_NULL, .p_offset = 512, .p_filesz = 20 };
    uint32_t note[5] = { 4, 4, 18, 0, (uint32_t)paddr + 0x10 };
    memcpy(note + 3, "Xen", 4);
    memcpy(f + 512, note, sizeof(note));
    for (int i = 0; i < 256; i++) {
        f[1024 + i] = i;
    }
    return f;
}

static void test_pvh_elf(void **state)
{
    Env *e = *state;
    size_t len;
    uint8_t *f = fake_elf(&len, 0x200000, true, 1024);
    char *path = write_temp(f, len);
    LinuxLoader *l = linux_loader_open(path, NULL, "pvh", NULL);
    assert_non_null(l);
    gmem_fill(&e->mem, 0x200000, 0xee, 1024);
    BootEntry entry;
    assert_true(linux_loader_load(l, &e->mem, 0xe0000, &entry, NULL));
    assert_int_equal(entry.mode, BOOT_ENTRY_PVH32);
    assert_int_equal(entry.entry, 0x200010);
    assert_int_equal(entry.arg, BOOT_PVH_INFO_ADDR);
    assert_memory_equal(gmem_ptr(&e->mem, 0x200000, 256), f + 1024, 256);
    const uint8_t *tail = gmem_ptr(&e->mem, 0x200100, 768);
    for (int i = 0; i < 768; i++) {
        assert_int_equal(tail[i], 0);   /* memsz beyond filesz is zeroed */
    }
    const uint8_t *si = gmem_ptr(&e->mem, BOOT_PVH_INFO_ADDR, 56);
    assert_int_equal(get32(si), 0x336ec578);
    assert_int_equal(get64(si + 24), BOOT_CMDLINE_ADDR);    /* cmdline */
    assert_int_equal(get64(si + 32), 0xe0000);              /* rsdp */
    linux_loader_close(l);
    unlink(path);
    free(path);
    free(f);

    f = fake_elf(&len, 0x200000, false, 1024);
    expect_open_error(f, len, "", "without a PVH entry");
    free(f);
    f = fake_elf(&len, 0x1000, true, 1024);                 /* below 1 MiB */
    expect_open_error(f, len, "", "invalid");
    free(f);
    f = fake_elf(&len, 0x200000, true, 4000);               /* data past the file */
    expect_open_error(f, len, "", "invalid");
    free(f);
    f = fake_elf(&len, 0x200000, true, 1024);
    ((Elf64_Ehdr *)f)->e_phnum = 0xffff;                    /* headers past the file */
    expect_open_error(f, len, "", "program header");
    free(f);
}

/*
 * A PT_LOAD segment whose file data fits in RAM but whose memsz runs past
 * its end passes the open-time checks (RAM is not known then); loading must
 * fail with an error, on every try, and leave RAM below it untouched.
 */
static void test_pvh_segment_past_ram(void **state)
{
    Env *e = *state;
    size_t len;
    uint8_t *f = fake_elf(&len, 0x200000, true, 1024);
    Elf64_Phdr *ph = (Elf64_Phdr *)(f + sizeof(Elf64_Ehdr));
    ph[0].p_memsz = 0xfe001000;
    char *path = write_temp(f, len);
    LinuxLoader *l = linux_loader_open(path, NULL, "", NULL);
    assert_non_null(l);
    gmem_fill(&e->mem, 0x200000, 0xee, 256);
    for (int i = 0; i < 2; i++) {
        Error *err = NULL;
        BootEntry entry;
        assert_false(linux_loader_load(l, &e->mem, 0, &entry, &err));
        assert_non_null(err);
        if (!strstr(error_get_pretty(err), "ELF segment 0")) {
            fail_msg("'%s' does not name the segment", error_get_pretty(err));
        }
        assert_non_null(strstr(error_get_pretty(err), "does not fit in guest RAM"));
        error_free(err);
    }
    assert_int_equal(*(uint8_t *)gmem_ptr(&e->mem, 0x200000, 1), 0xee);
    linux_loader_close(l);
    unlink(path);
    free(path);
    free(f);
}

/* ---- ACPI ---- */

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--) {
        s += *p++;
    }
    return s;
}

static const uint8_t *table_at(Env *e, uint64_t gpa, const char *sig)
{
    const uint8_t *h = gmem_ptr(&e->mem, gpa, 36);
    assert_non_null(h);
    assert_memory_equal(h, sig, 4);
    uint32_t len = get32(h + 4);
    assert_non_null(gmem_ptr(&e->mem, gpa, len));
    assert_int_equal(sum(h, len), 0);
    return h;
}

/* Decode an AML PkgLength at p; returns the length and sets *bytes. */
static size_t pkg_length(const uint8_t *p, unsigned *bytes)
{
    unsigned extra = p[0] >> 6;
    size_t len = extra ? p[0] & 0x0f : p[0] & 0x3f;
    for (unsigned i = 0; i < extra; i++) {
        len |= (size_t)p[1 + i] << (4 + 8 * i);
    }
    *bytes = extra + 1;
    return len;
}

static void test_acpi_tables(void **state)
{
    Env *e = *state;
    AcpiConfig cfg = { .nr_cpus = 3, .nr_serial = 1, .serial = { { 0x3f8, 4 } },
                       .has_pci = true, .pci_slots = 32, .fw_cfg_port = 0x510 };
    uint64_t rsdp_addr = acpi_build_tables(&cfg, &e->mem, NULL);
    assert_int_equal(rsdp_addr, ACPI_TABLES_ADDR);
    const uint8_t *rsdp = gmem_ptr(&e->mem, rsdp_addr, 36);
    assert_memory_equal(rsdp, "RSD PTR ", 8);
    assert_int_equal(sum(rsdp, 20), 0);
    assert_int_equal(sum(rsdp, 36), 0);
    assert_int_equal(rsdp[15], 2);

    const uint8_t *xsdt = table_at(e, get64(rsdp + 24), "XSDT");
    unsigned n = (get32(xsdt + 4) - 36) / 8;
    assert_int_equal(n, 2);
    const uint8_t *fadt = table_at(e, get64(xsdt + 36), "FACP");
    const uint8_t *madt = table_at(e, get64(xsdt + 44), "APIC");

    assert_int_equal(get32(fadt + 64), 0x604);              /* PM1a_CNT_BLK */
    assert_int_equal(get32(fadt + 76), 0);                  /* no PM timer */
    assert_int_equal(fadt[116 + 0], 1);                     /* reset register: I/O... */
    assert_int_equal(get64(fadt + 116 + 4), 0x64);          /* ...port 0x64 */
    assert_int_equal(fadt[128], 0xfe);
    assert_int_equal(get32(fadt + 40), get64(fadt + 140));  /* DSDT, both fields */
    const uint8_t *facs = gmem_ptr(&e->mem, get32(fadt + 36), 64);
    assert_memory_equal(facs, "FACS", 4);

    /* MADT: one enabled local APIC per CPU, an IOAPIC, the SCI override. */
    unsigned lapics = 0, ioapics = 0, overrides = 0;
    for (uint32_t off = 44; off < get32(madt + 4); off += madt[off + 1]) {
        assert_true(madt[off + 1] >= 2);
        lapics += madt[off] == 0 && (madt[off + 4] & 1);
        ioapics += madt[off] == 1;
        overrides += madt[off] == 2 && madt[off + 3] == 9;
    }
    assert_int_equal(lapics, 3);
    assert_int_equal(ioapics, 1);
    assert_int_equal(overrides, 1);

    /* DSDT: Name(\_S5) then Scope(\_SB) whose length ends exactly at the table end. */
    const uint8_t *dsdt = table_at(e, get32(fadt + 40), "DSDT");
    uint32_t dlen = get32(dsdt + 4);
    const uint8_t *body = dsdt + 36;
    assert_int_equal(body[0], 0x08);                        /* NameOp */
    assert_memory_equal(body + 1, "\\_S5_", 5);
    const uint8_t *scope = memchr(body, 0x10, dlen - 36);
    assert_non_null(scope);
    unsigned nb;
    size_t slen = pkg_length(scope + 1, &nb);
    assert_int_equal((scope + 1) + slen, dsdt + dlen);
    assert_non_null(memmem(dsdt, dlen, "QEMU0002", 8));
    assert_non_null(memmem(dsdt, dlen, "PCI0", 4));
    assert_non_null(memmem(dsdt, dlen, "FWCF", 4));
    static const uint8_t pnp0a03[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
    assert_non_null(memmem(dsdt, dlen, pnp0a03, sizeof(pnp0a03)));
}

static void test_e820_with_high_memory(void **state)
{
    GuestMemory mem;
    assert_true(guest_memory_create_private(&mem, 4ULL << 30, LOWMEM_LIMIT, NULL));
    E820Entry map[E820_MAX_ENTRIES];
    unsigned n = boot_e820_map(&mem, map);
    uint64_t ram = 0;
    for (unsigned i = 0; i < n; i++) {
        if (map[i].type == E820_RAM) {
            ram += map[i].size;
            /* No RAM in the PCI hole. */
            assert_true(map[i].addr + map[i].size <= LOWMEM_LIMIT || map[i].addr >= FOUR_GIB);
        }
    }
    assert_int_equal(ram, (4ULL << 30) - (HIGH_MEMORY_START - EBDA_START));
    assert_int_equal(map[n - 1].addr, FOUR_GIB);
    assert_int_equal(map[n - 1].size, (4ULL << 30) - LOWMEM_LIMIT);
    guest_memory_destroy(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bzimage_load, setup, teardown),
        cmocka_unit_test(test_bzimage_rejects),
        cmocka_unit_test_setup_teardown(test_ram_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pvh_elf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pvh_segment_past_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acpi_tables, setup, teardown),
        cmocka_unit_test(test_e820_with_high_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
