/*
 * libFuzzer target for PCI configuration space (hw/pci.c: the host
 * bridge's 0xcf8/0xcfc mechanism, BAR sizing and placement, the command
 * register, capabilities, MSI-X) and the virtio-pci transport's registers
 * (virtio/virtio-pci.c: common configuration, ISR, device configuration,
 * notify, the legacy I/O BAR, the MSI-X table and PBA) on a real
 * virtio-net-pci, as a hostile guest accesses them. Each input starts from
 * power-on with the BARs placed and decoding on.
 *
 * Input: operations of 8 bytes: kind, size (1 << (b & 3)), offset (u16
 * little-endian), value (u32 little-endian). Kinds (b % 10): 0/1 config
 * space read/write, 2/3 modern BAR read/write (offset mod 16 KiB), 4/5
 * MSI-X BAR read/write, 6/7 legacy I/O BAR read/write, 8 a config write
 * relative to the n-th capability (n = offset >> 8), found by walking the
 * list as a driver does, 9 back to power-on with the BARs placed.
 *
 * Checks besides the sanitizers: the vendor and device IDs and the header
 * type never change, the capability list stays inside the 256 bytes and
 * ends, and a read of 1, 2 or 4 bytes never yields bits beyond its size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/pci.h"
#include "fuzz-pci-dev.h"

#define MAX_OPS 512

static uint32_t ids;
static unsigned slot;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-pci-config: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fpd_init("virtio-net-pci,id=net0");
    slot = fpd_slot();
    ids = fpd_cfg_read(slot, 0, 4);
    return 0;
}

static void check_size(uint64_t v, unsigned size)
{
    if (size < 8 && v >> (8 * size)) {
        fail("a read returned more bits than its size");
    }
}

/* The n-th capability's offset, or 0; checks the list while walking it. */
static unsigned find_cap(unsigned n)
{
    unsigned off = fpd_cfg_read(slot, PCI_CAPABILITY_LIST, 1), seen = 0;
    while (off) {
        if (off < 0x40 || off > 0xfc) {
            fail("capability pointer outside the device-specific area");
        }
        if (++seen > 48) {
            fail("capability list does not end");
        }
        if (seen > n) {
            return off;
        }
        off = fpd_cfg_read(slot, off + 1, 1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fpd_reset_and_map();
    for (size_t pos = 0, ops = 0; pos + 8 <= size && ops < MAX_OPS; pos += 8, ops++) {
        unsigned kind = data[pos] % 10, sz = 1u << (data[pos + 1] & 3);
        unsigned off = data[pos + 2] | data[pos + 3] << 8;
        uint32_t val;
        memcpy(&val, data + pos + 4, 4);
        uint64_t v = 0;
        switch (kind) {
        case 0:
            v = fpd_cfg_read(slot, off & 0xfff, sz > 4 ? 4 : sz);
            check_size(v, sz > 4 ? 4 : sz);
            break;
        case 1:
            fpd_cfg_write(slot, off & 0xfff, sz > 4 ? 4 : sz, val);
            break;
        case 2:
            v = fpd_mmio_read(FPD_MMIO_BAR4 + (off & 0x3fff), sz);
            check_size(v, sz);
            break;
        case 3:
            fpd_mmio_write(FPD_MMIO_BAR4 + (off & 0x3fff), sz,
                           sz == 8 ? (uint64_t)val << 32 | val : val);
            break;
        case 4:
            v = fpd_mmio_read(FPD_MMIO_BAR1 + (off & 0xfff), sz);
            check_size(v, sz);
            break;
        case 5:
            fpd_mmio_write(FPD_MMIO_BAR1 + (off & 0xfff), sz, val);
            break;
        case 6:
            v = fpd_pio_read(FPD_IO_BAR0 + (off & 0x3f), sz > 4 ? 4 : sz);
            check_size(v, sz > 4 ? 4 : sz);
            break;
        case 7:
            fpd_pio_write(FPD_IO_BAR0 + (off & 0x3f), sz > 4 ? 4 : sz, val);
            break;
        case 8: {
            unsigned cap = find_cap(off >> 8);
            if (cap) {
                fpd_cfg_write(slot, (cap + (off & 0x1f)) & 0xff, sz > 4 ? 4 : sz, val);
            }
            break;
        }
        default:
            fpd_reset_and_map();
            break;
        }
        if (fpd_cfg_read(slot, 0, 4) != ids) {
            fail("vendor or device ID changed");
        }
        if ((fpd_cfg_read(slot, 0x0e, 1) & 0x7f) != 0) {
            fail("header type changed");
        }
    }
    find_cap(~0u);
    return 0;
}
