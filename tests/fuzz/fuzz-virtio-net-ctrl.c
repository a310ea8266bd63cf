/*
 * libFuzzer target for the virtio-net control queue (virtio/virtio-net.c):
 * rx mode, MAC table and address, VLAN filter, announce, multiqueue and
 * guest offload commands, as a hostile driver sends them. The device is a
 * real virtio-net-pci (no back-end: its cable is out) on the real PCI host
 * bridge; the harness is its driver, going through configuration space,
 * the modern BAR's common configuration and the notify doorbell, and
 * writing rings and buffers into guest RAM.
 *
 * Input: byte 0 the driver features it accepts out of the offered ones
 * (bit 0 VERSION_1 kept off: legacy-style header, bit 1 indirect, bit 2
 * event index, bit 3 CTRL_RX, bit 4 CTRL_VLAN, bit 5 MQ, bit 6
 * CTRL_MAC_ADDR, bit 7 GUEST_ANNOUNCE), byte 1 the queue size (1 << (b & 7),
 * so 1..128, over the device's 64 too: then only the sanitizers check). Then commands, each a flags byte,
 * the out length (u16 little-endian, at most 4096) and the payload (class,
 * command, data); flags: bit 0 split the payload over two descriptors,
 * bit 1 through an indirect table, bit 2 no writable ack byte, bit 3 the
 * next 8 input bytes overwrite a descriptor's address and length, bit 4
 * ring the doorbell before adding the chain, bit 5 reset the device
 * first (status 0 and set-up again).
 *
 * Checks besides the sanitizers: while the driver behaves, every chain is
 * used, its ack is 0 or 1 and the used length is the one byte written.
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/pci.h"
#include "virtio/virtio.h"
#include "fuzz-pci-dev.h"

/* Modern BAR layout (virtio/virtio-pci.c), found through the capabilities
 * by a real driver; fixed here. */
#define COMMON      (FPD_MMIO_BAR4 + 0x0000)
#define NOTIFY      (FPD_MMIO_BAR4 + 0x3000)
enum {
    C_DFSELECT = 0, C_DF = 4, C_GFSELECT = 8, C_GF = 12, C_STATUS = 20,
    C_Q_SELECT = 22, C_Q_SIZE = 24, C_Q_ENABLE = 28, C_Q_NOFF = 30,
    C_Q_DESCLO = 32, C_Q_DESCHI = 36, C_Q_AVAILLO = 40, C_Q_AVAILHI = 44,
    C_Q_USEDLO = 48, C_Q_USEDHI = 52,
};
#define CTRL_Q      2           /* rx0, tx0, ctrl */

/* Guest RAM layout. */
#define DESC        0x1000u
#define AVAIL       0x3000u
#define USED        0x4000u
#define INDIRECT    0x6000u
#define BUFS        0x8000u
#define ACK_AT      0x7000u
#define MAX_OUT     4096u

static const unsigned feature_bits[8] = {
    32 /* VERSION_1 */, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX, 18, 19, 22, 23, 21,
};

static unsigned qsize, avail_idx, next_desc;
static bool driver_ok, size_ok;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-virtio-net-ctrl: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fpd_init("virtio-net-pci,id=net0");
    fpd_reset_and_map();
    return 0;
}

static void common_w(unsigned off, unsigned size, uint64_t v)
{
    fpd_mmio_write(COMMON + off, size, v);
}

static uint64_t common_r(unsigned off, unsigned size)
{
    return fpd_mmio_read(COMMON + off, size);
}

/* Reset and bring the device up as a driver does. */
static void setup(uint8_t fbyte, uint8_t sbyte)
{
    common_w(C_STATUS, 1, 0);
    /* Fresh rings before the queue goes live (the device may look at once). */
    gmem_fill(&fpd_mem, 0, 0, BUFS + MAX_OUT);
    common_w(C_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    uint64_t offered = 0;
    for (unsigned sel = 0; sel < 2; sel++) {
        common_w(C_DFSELECT, 4, sel);
        offered |= common_r(C_DF, 4) << (32 * sel);
    }
    uint64_t want = offered & ~0ULL;
    for (unsigned i = 0; i < 8; i++) {
        bool on = i == 0 ? !(fbyte & 1) : fbyte >> i & 1;
        if (!on) {
            want &= ~(1ULL << feature_bits[i]);
        }
    }
    want |= offered & (1ULL << 17);     /* CTRL_VQ, or there is no control queue */
    for (unsigned sel = 0; sel < 2; sel++) {
        common_w(C_GFSELECT, 4, sel);
        common_w(C_GF, 4, (uint32_t)(want >> (32 * sel)));
    }
    common_w(C_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
             VIRTIO_CONFIG_S_FEATURES_OK);
    common_w(C_Q_SELECT, 2, CTRL_Q);
    qsize = 1u << (sbyte & 7);
    size_ok = qsize <= common_r(C_Q_SIZE, 2);      /* more than offered: the device breaks */
    common_w(C_Q_SIZE, 2, qsize);
    qsize = (unsigned)common_r(C_Q_SIZE, 2);
    common_w(C_Q_DESCLO, 4, DESC);
    common_w(C_Q_DESCHI, 4, 0);
    common_w(C_Q_AVAILLO, 4, AVAIL);
    common_w(C_Q_AVAILHI, 4, 0);
    common_w(C_Q_USEDLO, 4, USED);
    common_w(C_Q_USEDHI, 4, 0);
    common_w(C_Q_ENABLE, 2, 1);
    common_w(C_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
             VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    driver_ok = common_r(C_STATUS, 1) & VIRTIO_CONFIG_S_DRIVER_OK;
    avail_idx = next_desc = 0;
}

static void put_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint64_t d = table + 16ull * i;
    gmem_write_u64(&fpd_mem, d, htole64(addr));
    gmem_write_u32(&fpd_mem, d + 8, htole32(len));
    gmem_write_u16(&fpd_mem, d + 12, htole16(flags));
    gmem_write_u16(&fpd_mem, d + 14, htole16(next));
}

static void kick(void)
{
    common_w(C_Q_SELECT, 2, CTRL_Q);
    unsigned noff = (unsigned)common_r(C_Q_NOFF, 2);
    fpd_mmio_write(NOTIFY + 4ull * noff, 2, CTRL_Q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    setup(data[0], data[1]);
    size_t pos = 2;
    bool honest = true;
    while (pos + 3 <= size && qsize) {
        uint8_t flags = data[pos];
        unsigned len = (data[pos + 1] | data[pos + 2] << 8) % (MAX_OUT + 1);
        pos += 3;
        if (len > size - pos) {
            len = (unsigned)(size - pos);
        }
        if (flags & 0x20) {
            setup(data[0], data[1]);
        }
        gmem_write(&fpd_mem, BUFS, data + pos, len);
        pos += len;
        gmem_fill(&fpd_mem, ACK_AT, 0xee, 1);

        /* Descriptors: the payload (one or two), then the ack byte. */
        bool split = (flags & 1) && len >= 2, ind = flags & 2, noack = flags & 4;
        unsigned n = (split ? 2 : 1) + !noack;
        uint64_t table = ind ? INDIRECT : DESC;
        unsigned first = ind ? 0 : next_desc;
        if (!ind && n > qsize) {
            continue;
        }
        if ((ind && !(data[0] & 2)) || len == 0) {
            honest = false;     /* indirect without the feature, or an empty buffer: */
        }                       /* the device rightly breaks */
        unsigned idx[3];
        for (unsigned k = 0; k < n; k++) {
            idx[k] = ind ? k : (first + k) % qsize;
        }
        unsigned k = 0, part = split ? len / 2 : len;
        put_desc(table, idx[k], BUFS, part, k + 1 < n ? 1 : 0, (uint16_t)idx[(k + 1) % n]);
        k++;
        if (split) {
            put_desc(table, idx[k], BUFS + part, len - part, k + 1 < n ? 1 : 0,
                     (uint16_t)idx[(k + 1) % n]);
            k++;
        }
        if (!noack) {
            put_desc(table, idx[k], ACK_AT, 1, 2 /* WRITE */, 0);
        }
        unsigned head = first;
        if (ind) {
            head = next_desc;
            put_desc(DESC, head, INDIRECT, 16 * n, 4 /* INDIRECT */, 0);
            next_desc = (next_desc + 1) % qsize;
        } else {
            next_desc = (next_desc + n) % qsize;
        }
        if ((flags & 8) && pos + 8 <= size) {
            uint32_t a, l;
            memcpy(&a, data + pos, 4);
            memcpy(&l, data + pos + 4, 4);
            pos += 8;
            put_desc(table, idx[a % n], a & 0xfffff, l, (uint16_t)(l >> 16) & 7,
                     (uint16_t)(a >> 20));
            honest = false;
        }
        if (flags & 0x10) {
            kick();
        }
        uint16_t used_before = 0;
        gmem_read_u16(&fpd_mem, USED + 2, &used_before);
        gmem_write_u16(&fpd_mem, AVAIL + 4 + 2 * (avail_idx % qsize), htole16((uint16_t)head));
        avail_idx++;
        gmem_write_u16(&fpd_mem, AVAIL + 2, htole16((uint16_t)avail_idx));
        kick();

        if (!honest || !driver_ok || !size_ok) {
            continue;
        }
        uint16_t used_idx = 0;
        uint32_t used_len = 0;
        gmem_read_u16(&fpd_mem, USED + 2, &used_idx);
        if ((uint16_t)(used_idx - used_before) != 1) {
            fail("a well-formed control command was not used exactly once");
        }
        gmem_read_u32(&fpd_mem, USED + 4 + 8 * ((used_idx - 1u) % qsize) + 4, &used_len);
        uint8_t ack = 0xee;
        gmem_read(&fpd_mem, ACK_AT, &ack, 1);
        if (noack ? used_len != 0 : (used_len != 1 || ack > 1)) {
            fail("bad ack or used length for a control command");
        }
    }
    return 0;
}
