/*
 * libFuzzer target for fw_cfg (hw/fw-cfg.c) as a hostile guest drives it:
 * the input is a program of port accesses and guest RAM writes, run
 * against the device through the real port dispatch (memory/
 * address-space.c), with DMA descriptors and buffers in guest RAM
 * (memory/guest-memory.c). Each input gets a fresh device holding the
 * fixed items, a command line, a read-only file and a writable one, as
 * vireo's board adds them.
 *
 * Program: one opcode byte, then its operands:
 *   0 select:  key (2 bytes, little-endian), written to the selector port
 *   1 read:    n (1 byte): n data-port reads of width 1, 2 or 4 (opcode bits 4-5)
 *   2 dma:     descriptor address (2 bytes, in RAM or just past it), control,
 *              length and buffer address (big-endian, 4 + 4 + 8 bytes):
 *              the descriptor is stored there and started with the two
 *              32-bit register writes Linux makes (opcode bit 4: one 64-bit write)
 *   3 out:     port offset (1 byte, mod 12), value (8 bytes), width from bits 4-5
 *   4 in:      port offset (1 byte, mod 12), width from bits 4-5
 *   5 poke:    RAM address (2 bytes), n (1 byte), n bytes
 *   6 reset
 *
 * Checks besides the sanitizers: the read-only file never changes, whatever
 * DMA writes the guest tries; the signature reads "QEMU" through the data
 * port after every program.
 */
#include <byteswap.h>
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/fw-cfg.h"
#include "memory/address-space.h"
#include "memory/guest-memory.h"
#include "util/osdep.h"

#define RAM_SIZE    (64u << 10)
#define RO_LEN      300
#define RW_LEN      64
#define MAX_STEPS   256

static GuestMemory mem;
static uint8_t ro_contents[RO_LEN];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-fw-cfg: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    if (!guest_memory_create_private(&mem, RAM_SIZE, RAM_SIZE, &err)) {
        fprintf(stderr, "fuzz-fw-cfg: %s\n", error_get_pretty(err));
        exit(1);
    }
    for (size_t i = 0; i < RO_LEN; i++) {
        ro_contents[i] = (uint8_t)(i * 7 + 1);
    }
    return 0;
}

static FwCfg *make_device(void)
{
    FwCfg *fw = fw_cfg_create(FW_CFG_IO_BASE, &mem, NULL);
    if (!fw) {
        fail("fw_cfg_create failed");
    }
    static const char cmdline[] = "console=ttyS0 root=/dev/vda";
    fw_cfg_add_u32(fw, FW_CFG_CMDLINE_SIZE, sizeof(cmdline), NULL);
    fw_cfg_add_bytes(fw, FW_CFG_CMDLINE_DATA, cmdline, sizeof(cmdline), NULL);
    fw_cfg_add_u64(fw, FW_CFG_RAM_SIZE, RAM_SIZE, NULL);
    fw_cfg_add_u16(fw, FW_CFG_NB_CPUS, 2, NULL);
    uint8_t *ro = xmalloc(RO_LEN);
    memcpy(ro, ro_contents, RO_LEN);
    uint8_t *rw = xzalloc(RW_LEN);
    if (!fw_cfg_add_file(fw, "etc/fuzz-ro", ro, RO_LEN, false, NULL) ||
        !fw_cfg_add_file(fw, "etc/fuzz-rw", rw, RW_LEN, true, NULL)) {
        fail("adding the files failed");
    }
    FwCfgOption user = { .name = "opt/vireo/fuzz", .string = "fuzzing" };
    if (!fw_cfg_add_user_items(fw, &user, NULL)) {
        fail("adding the user item failed");
    }
    return fw;
}

static uint64_t port_in(unsigned off, unsigned size)
{
    uint64_t v = 0;
    io_dispatch_read(AS_PIO, FW_CFG_IO_BASE + off, size, &v);
    return v;
}

static void port_out(unsigned off, unsigned size, uint64_t v)
{
    io_dispatch_write(AS_PIO, FW_CFG_IO_BASE + off, size, v);
}

static void read_item(uint16_t key, uint8_t *buf, size_t len)
{
    port_out(0, 2, key);
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)port_in(1, 1);
    }
}

/* The key of @name from the file directory, as a guest finds it. */
static uint16_t find_file(const char *name)
{
    uint8_t count[4];
    read_item(FW_CFG_FILE_DIR, count, 4);
    uint32_t n = (uint32_t)count[0] << 24 | count[1] << 16 | count[2] << 8 | count[3];
    for (uint32_t i = 0; i < n && i < FW_CFG_FILE_SLOTS; i++) {
        uint8_t e[64];
        for (size_t j = 0; j < sizeof(e); j++) {
            e[j] = (uint8_t)port_in(1, 1);
        }
        if (!strncmp((const char *)e + 8, name, FW_CFG_MAX_FILE_PATH)) {
            return (uint16_t)(e[4] << 8 | e[5]);
        }
    }
    fail("a file is missing from the directory");
    return 0;
}

static unsigned width(uint8_t op)
{
    static const unsigned w[4] = { 1, 2, 4, 8 };
    return w[(op >> 4) & 3];
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) {
        return -1;
    }
    gmem_fill(&mem, 0, 0, RAM_SIZE);
    FwCfg *fw = make_device();
    uint16_t ro_key = find_file("etc/fuzz-ro");
    fw_cfg_reset(fw);

    const uint8_t *p = data, *end = data + size;
    for (unsigned step = 0; p < end && step < MAX_STEPS; step++) {
        uint8_t op = *p++;
        size_t left = (size_t)(end - p);
        switch (op & 7) {
        case 0:
            if (left < 2) {
                goto done;
            }
            port_out(0, 2, get_le(p, 2));
            p += 2;
            break;
        case 1: {
            if (left < 1) {
                goto done;
            }
            unsigned w = width(op) == 8 ? 1 : width(op);
            for (unsigned i = 0; i < *p; i++) {
                port_in(1, w);
            }
            p++;
            break;
        }
        case 2: {
            if (left < 18) {
                goto done;
            }
            uint64_t desc = get_le(p, 2) * 4 % (RAM_SIZE + 64);
            gmem_write(&mem, desc, p + 2, 16);     /* already big-endian */
            if (op & 0x10) {
                port_out(4, 8, bswap_64(desc));
            } else {
                port_out(4, 4, bswap_32((uint32_t)(desc >> 32)));
                port_out(8, 4, bswap_32((uint32_t)desc));
            }
            p += 18;
            break;
        }
        case 3:
            if (left < 9) {
                goto done;
            }
            port_out(p[0] % FW_CFG_IO_SIZE, width(op), get_le(p + 1, 8));
            p += 9;
            break;
        case 4:
            if (left < 1) {
                goto done;
            }
            port_in(p[0] % FW_CFG_IO_SIZE, width(op));
            p++;
            break;
        case 5: {
            if (left < 3) {
                goto done;
            }
            uint64_t gpa = get_le(p, 2);
            size_t n = p[2] < left - 3 ? p[2] : left - 3;
            gmem_write(&mem, gpa, p + 3, n);
            p += 3 + n;
            break;
        }
        case 6:
            fw_cfg_reset(fw);
            break;
        default:
            break;
        }
    }
done:;
    uint8_t now[RO_LEN], sig[4];
    read_item(ro_key, now, RO_LEN);
    if (memcmp(now, ro_contents, RO_LEN)) {
        fail("the guest changed a read-only file");
    }
    read_item(FW_CFG_SIGNATURE, sig, 4);
    if (memcmp(sig, "QEMU", 4)) {
        fail("the signature changed");
    }
    fw_cfg_destroy(fw);
    return 0;
}
