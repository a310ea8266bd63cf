/*
 * libFuzzer targets for the request handlers of vireo's virtio devices, one
 * executable per device (FVD_DEVICE at build time):
 *   1 fuzz-virtio-net      virtio-net rx and tx queues; tx frames go to a
 *                          -netdev socket whose other end the harness drains,
 *                          rx frames come from the input through that socket
 *                          into the buffers the driver posted (mergeable rx
 *                          buffers and the vnet header when negotiated)
 *   2 fuzz-virtio-serial   virtio-serial control queues and the port queues
 *                          of a virtconsole and two virtserialports (null
 *                          chardevs; host-to-guest bytes enter through the
 *                          chardev's front-end handlers, as its back-end does)
 *   3 fuzz-virtio-rng      virtio-rng with a byte quota and its refill timer
 *   4 fuzz-virtio-balloon  virtio-balloon inflate, deflate and stats (polled
 *                          by its timer) queues, and new targets from the host
 * Each device is a real virtio-*-pci on the real PCI host bridge; the
 * harness is its driver, through the modern BAR's common configuration,
 * device configuration and notify doorbells, with rings and buffers in
 * guest RAM.
 *
 * Input: byte 0 picks the driver features out of the offered ones (per
 * device list below; bit 0 set keeps VERSION_1 off), byte 1 the queue size
 * (1 << (b & 7), capped at the device's unless bit 3 asks for more: then the
 * driver is hostile). Then operations, each an opcode byte (low 3 bits):
 *   0 chain: queue byte, shape byte (bits 0-2: descriptors - 1, bit 3 an
 *     indirect table, bit 4 no kick), then per descriptor a flags byte (bit 0
 *     device-writable) and a u16 length (at most 4096); readable ones take
 *     their bytes from the input
 *   1 kick: queue byte
 *   2 device configuration: offset byte, size byte (1, 2, 4), u32; bit 3 of
 *     the opcode: write, else read
 *   3 reset and set-up again
 *   4 raw: u16 offset into the rings, 8 bytes written there (hostile)
 *   5 back-end: net: a frame (u16 length, bytes) arrives from the netdev
 *     (read by the netdev's watch in the harness's main-loop pass); serial: bytes (port byte, u16 length, bytes) from a
 *     port's chardev; rng, balloon: the virtual clock runs to the next timer
 *   6 net: drain the sink; balloon: a new target (u32 pages below RAM) and a
 *     stats polling interval; serial, rng: ISR read
 *   7 ISR read (clears the interrupt)
 *
 * Checks besides the sanitizers: while the driver behaves, every used entry
 * names a chain that is outstanding, and its length is at most the chain's
 * writable bytes.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chardev/chardev-internal.h"
#include "core/main-loop.h"
#include "virtio/virtio-balloon.h"
#include "virtio/virtio.h"
#include "fuzz-loop.h"
#include "fuzz-pci-dev.h"

#ifndef FVD_DEVICE
#error FVD_DEVICE must be set
#endif

#define COMMON      (FPD_MMIO_BAR4 + 0x0000)
#define ISR         (FPD_MMIO_BAR4 + 0x1000)
#define DEVCFG      (FPD_MMIO_BAR4 + 0x2000)
#define NOTIFY      (FPD_MMIO_BAR4 + 0x3000)
enum {
    C_DFSELECT = 0, C_DF = 4, C_GFSELECT = 8, C_GF = 12, C_NUMQ = 18, C_STATUS = 20,
    C_Q_SELECT = 22, C_Q_SIZE = 24, C_Q_ENABLE = 28, C_Q_NOFF = 30,
    C_Q_DESCLO = 32, C_Q_DESCHI = 36, C_Q_AVAILLO = 40, C_Q_AVAILHI = 44,
    C_Q_USEDLO = 48, C_Q_USEDHI = 52,
};

/* Guest RAM: 8 KiB of rings per queue, indirect tables, then buffers. */
#define MAXQ        12u
#define MAXQSIZE    128u
#define RINGS       0x8000u
#define RING(q)     (RINGS + 0x2000u * (q))
#define AVAIL_OFF   0x1000u
#define USED_OFF    0x1800u
#define INDIRECT    0x20000u            /* 16 tables of 8 descriptors */
#define BUFS        0x21000u
#define BUFS_END    (FPD_RAM_SIZE - 0x1000u)
#define MAX_LEN     4096u

#if FVD_DEVICE == 1
#define NAME "fuzz-virtio-net"
/* VERSION_1, INDIRECT, EVENT_IDX, MRG_RXBUF, CTRL_VQ, CTRL_RX, GUEST_CSUM, STATUS */
static const unsigned feature_bits[8] = { 32, 28, 29, 15, 17, 18, 1, 16 };
#elif FVD_DEVICE == 2
#define NAME "fuzz-virtio-serial"
/* VERSION_1, INDIRECT, EVENT_IDX, MULTIPORT, CONSOLE_SIZE, EMERG_WRITE,
 * NOTIFY_ON_EMPTY, ANY_LAYOUT */
static const unsigned feature_bits[8] = { 32, 28, 29, 1, 0, 2, 24, 27 };
#elif FVD_DEVICE == 3
#define NAME "fuzz-virtio-rng"
/* VERSION_1, INDIRECT, EVENT_IDX, NOTIFY_ON_EMPTY, ANY_LAYOUT, RING_RESET,
 * and two the device does not offer (RING_PACKED, ACCESS_PLATFORM) */
static const unsigned feature_bits[8] = { 32, 28, 29, 24, 27, 40, 34, 33 };
#elif FVD_DEVICE == 4
#define NAME "fuzz-virtio-balloon"
/* VERSION_1, INDIRECT, EVENT_IDX, MUST_TELL_HOST, STATS_VQ, DEFLATE_ON_OOM,
 * PAGE_POISON, REPORTING */
static const unsigned feature_bits[8] = { 32, 28, 29, 0, 1, 2, 4, 5 };
#endif

typedef struct Queue {
    unsigned size, avail_idx, next_desc, used_seen;
    /* per head: the chain's writable bytes, +1 (0: not outstanding), and
     * the descriptor slots it holds from the head on */
    uint32_t outstanding[MAXQSIZE];
    uint8_t slots[MAXQSIZE];
    bool busy[MAXQSIZE];        /* slot held by an outstanding chain */
} Queue;

static Queue queues[MAXQ];
static unsigned nq, buf_next, ind_next;
static bool honest;
#if FVD_DEVICE == 1
static int sink = -1, netfd = -1;       /* the harness's end, vireo's end */
#endif

static void fail(const char *what)
{
    fprintf(stderr, NAME ": %s\n", what);
    abort();
}

static void common_w(unsigned off, unsigned size, uint64_t v)
{
    fpd_mmio_write(COMMON + off, size, v);
}

static uint64_t common_r(unsigned off, unsigned size)
{
    return fpd_mmio_read(COMMON + off, size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static VmConfig vmc;
    clock_virtual_set_manual(true);
#if FVD_DEVICE == 1
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0) {
        fail("socketpair");
    }
    sink = sv[0];
    netfd = sv[1];
    fcntl(sink, F_SETFL, O_NONBLOCK);
    static char netdev[64];
    static DeviceOption nd;
    snprintf(netdev, sizeof(netdev), "socket,id=n0,fd=%d", netfd);
    nd.opts = netdev;
    vmc.netdevs = &nd;
    const char *const devs[] = { "virtio-net-pci,id=net0,netdev=n0", NULL };
#elif FVD_DEVICE == 2
    Error *err = NULL;
    const char *const chrs[] = { "null,id=c0", "null,id=c1", "null,id=c2" };
    for (unsigned i = 0; i < 3; i++) {
        if (!chardev_new_from_opts(chrs[i], &err)) {
            fail(error_get_pretty(err));
        }
    }
    const char *const devs[] = {
        "virtio-serial-pci,id=ser0,max_ports=4",
        "virtconsole,bus=ser0.0,chardev=c0,id=con0",
        "virtserialport,bus=ser0.0,chardev=c1,name=org.vireo.p1,id=p1",
        "virtserialport,bus=ser0.0,chardev=c2,nr=3,id=p3",
        NULL,
    };
#elif FVD_DEVICE == 3
    static char obj[] = "rng-random,id=rng0,filename=/dev/urandom";
    static DeviceOption o = { .opts = obj };
    vmc.objects = &o;
    const char *const devs[] = {
        "virtio-rng-pci,id=r0,rng=rng0,max-bytes=2048,period=100", NULL,
    };
#elif FVD_DEVICE == 4
    const char *const devs[] = {
        "virtio-balloon-pci,id=b0,deflate-on-oom=on", NULL,
    };
#endif
    fpd_init_devices(&vmc, devs);
    fpd_reset_and_map();
    return 0;
}

/* Reset and bring the device up as a driver does. */
static void setup(uint8_t fbyte, uint8_t sbyte)
{
    common_w(C_STATUS, 1, 0);
    gmem_fill(&fpd_mem, RINGS, 0, INDIRECT - RINGS);
    common_w(C_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    uint64_t offered = 0;
    for (unsigned sel = 0; sel < 2; sel++) {
        common_w(C_DFSELECT, 4, sel);
        offered |= common_r(C_DF, 4) << (32 * sel);
    }
    uint64_t want = offered;
    for (unsigned i = 0; i < 8; i++) {
        bool on = i == 0 ? !(fbyte & 1) : fbyte >> i & 1;
        if (!on) {
            want &= ~(1ULL << feature_bits[i]);
        }
    }
    for (unsigned sel = 0; sel < 2; sel++) {
        common_w(C_GFSELECT, 4, sel);
        common_w(C_GF, 4, (uint32_t)(want >> (32 * sel)));
    }
    common_w(C_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
             VIRTIO_CONFIG_S_FEATURES_OK);
    nq = (unsigned)common_r(C_NUMQ, 2);
    nq = nq > MAXQ ? MAXQ : nq;
    honest = true;
    for (unsigned q = 0; q < nq; q++) {
        Queue *Q = &queues[q];
        memset(Q, 0, sizeof(*Q));
        common_w(C_Q_SELECT, 2, q);
        unsigned max = (unsigned)common_r(C_Q_SIZE, 2);
        unsigned size = 1u << (sbyte & 7);
        if (size > max && !(sbyte & 8)) {
            size = max;
        }
        if (size > max || (size & (size - 1)) || size > MAXQSIZE) {
            honest = false;     /* more than offered: the device may refuse or break */
        }
        common_w(C_Q_SIZE, 2, size);
        Q->size = (unsigned)common_r(C_Q_SIZE, 2);
        Q->size = Q->size > MAXQSIZE ? MAXQSIZE : Q->size;
        common_w(C_Q_DESCLO, 4, RING(q));
        common_w(C_Q_DESCHI, 4, 0);
        common_w(C_Q_AVAILLO, 4, RING(q) + AVAIL_OFF);
        common_w(C_Q_AVAILHI, 4, 0);
        common_w(C_Q_USEDLO, 4, RING(q) + USED_OFF);
        common_w(C_Q_USEDHI, 4, 0);
        common_w(C_Q_ENABLE, 2, 1);
    }
    common_w(C_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
             VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    if (!(common_r(C_STATUS, 1) & VIRTIO_CONFIG_S_DRIVER_OK)) {
        honest = false;
    }
    buf_next = BUFS;
    ind_next = 0;
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

/* What the device put in the used ring since the last look, checked. */
static void check_used(unsigned q)
{
    Queue *Q = &queues[q];
    uint16_t used_idx = 0;
    gmem_read_u16(&fpd_mem, RING(q) + USED_OFF + 2, &used_idx);
    used_idx = le16toh(used_idx);
    while (Q->size && (uint16_t)Q->used_seen != used_idx) {
        uint64_t e = RING(q) + USED_OFF + 4 + 8ull * (Q->used_seen % Q->size);
        uint32_t id = 0, len = 0;
        gmem_read_u32(&fpd_mem, e, &id);
        gmem_read_u32(&fpd_mem, e + 4, &len);
        id = le32toh(id);
        len = le32toh(len);
        Q->used_seen++;
        if (!honest) {
            continue;
        }
        if (id >= Q->size || !Q->outstanding[id]) {
            fail("the device used a chain the driver did not make available");
        }
        if (len > Q->outstanding[id] - 1) {
            fail("used length over the chain's writable bytes");
        }
        Q->outstanding[id] = 0;
        for (unsigned k = 0; k < Q->slots[id]; k++) {
            Q->busy[(id + k) % Q->size] = false;
        }
    }
}

/* A main-loop pass (back-end descriptors, scheduled work), then the used rings. */
static void settle(void)
{
    fuzz_loop_pump(8);
    for (unsigned i = 0; i < nq; i++) {
        check_used(i);
    }
}

static void kick(unsigned q)
{
    common_w(C_Q_SELECT, 2, q);
    unsigned noff = (unsigned)common_r(C_Q_NOFF, 2);
    fpd_mmio_write(NOTIFY + 4ull * noff, 2, q);
    settle();
}

static uint32_t take_buf(unsigned len)
{
    if (buf_next + len > BUFS_END) {
        buf_next = BUFS;
    }
    uint32_t at = buf_next;
    buf_next += (len + 15) & ~15u;
    return at;
}

typedef struct Input {
    const uint8_t *data;
    size_t size, pos;
} Input;

static unsigned get8(Input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static unsigned get16(Input *in)
{
    unsigned lo = get8(in);
    return lo | get8(in) << 8;
}

static uint32_t get32(Input *in)
{
    uint32_t lo = get16(in);
    return lo | (uint32_t)get16(in) << 16;
}

/* Up to @len input bytes into guest RAM at @at; returns how many. */
static unsigned get_bytes(Input *in, uint64_t at, unsigned len)
{
    if (len > in->size - in->pos) {
        len = (unsigned)(in->size - in->pos);
    }
    gmem_write(&fpd_mem, at, in->data + in->pos, len);
    in->pos += len;
    return len;
}

/*
 * An inflate buffer lists page frames the driver gives to the host, which
 * drops their contents.  A driver that gives away the pages holding its
 * own rings and buffers is not honest: what the device reads there next
 * is zeros, not what the driver made available.  @out is the chain's
 * readable bytes in order, as the device sees them.
 */
static bool gives_away_own_pages(unsigned q, const uint8_t *out, unsigned len)
{
#if FVD_DEVICE == 4
    for (unsigned off = 0; q == 0 && off + 4 <= len; off += 4) {
        uint32_t pfn;
        memcpy(&pfn, out + off, 4);
        uint64_t addr = (uint64_t)le32toh(pfn) << 12;
        if (addr + 0x1000 > RINGS && addr < FPD_RAM_SIZE) {
            return true;
        }
    }
#else
    (void)q, (void)out, (void)len;
#endif
    return false;
}

static void op_chain(Input *in)
{
    unsigned q = get8(in) % (nq ? nq : 1);
    unsigned shape = get8(in);
    unsigned n = (shape & 7) + 1;
    bool ind = shape & 8;
    Queue *Q = &queues[q];
    if (!nq || !Q->size || (!ind && n > Q->size)) {
        return;
    }
    uint64_t table = ind ? INDIRECT + 16u * 8 * (ind_next++ % 16) : RING(q);
    unsigned first = ind ? 0 : Q->next_desc;
    uint32_t writable = 0;
    bool seen_writable = false;
    static uint8_t out[8 * MAX_LEN];
    unsigned out_len = 0;
    for (unsigned k = 0; k < n; k++) {
        unsigned fl = get8(in);
        unsigned len = get16(in) % (MAX_LEN + 1);
        bool w = fl & 1;
        uint32_t at = take_buf(len ? len : 1);
        if (w) {
            gmem_fill(&fpd_mem, at, 0xa5, len);
            writable += len;
            seen_writable = true;
        } else {
            if (seen_writable) {
                honest = false;     /* readable after writable: the device may refuse */
            }
            len = get_bytes(in, at, len);
            memcpy(out + out_len, in->data + in->pos - len, len);
            out_len += len;
        }
        unsigned idx = ind ? k : (first + k) % Q->size;
        unsigned nxt = ind ? k + 1 : (first + k + 1) % Q->size;
        put_desc(table, idx, at, len, (k + 1 < n ? 1 : 0) | (w ? 2 : 0), (uint16_t)nxt);
    }
    if (gives_away_own_pages(q, out, out_len)) {
        honest = false;
    }
    unsigned head = ind ? Q->next_desc : first, nslots = ind ? 1 : n;
    for (unsigned k = 0; k < nslots; k++) {
        if (Q->busy[(head + k) % Q->size]) {
            honest = false;     /* the driver reuses descriptors still in flight */
        }
        Q->busy[(head + k) % Q->size] = true;
    }
    if (ind) {
        put_desc(RING(q), head, table, 16 * n, 4 /* INDIRECT */, 0);
    }
    Q->next_desc = (Q->next_desc + nslots) % Q->size;
    Q->outstanding[head] = writable + 1;
    Q->slots[head] = (uint8_t)nslots;
    gmem_write_u16(&fpd_mem, RING(q) + AVAIL_OFF + 4 + 2 * (Q->avail_idx % Q->size),
                   htole16((uint16_t)head));
    Q->avail_idx++;
    gmem_write_u16(&fpd_mem, RING(q) + AVAIL_OFF + 2, htole16((uint16_t)Q->avail_idx));
    if (!(shape & 16)) {
        kick(q);
    }
}

static void op_config(Input *in, unsigned op)
{
    unsigned off = get8(in) & 0x7f;
    unsigned size = 1u << (get8(in) & 3);
    uint32_t val = get32(in);
    size = size > 4 ? 4 : size;
    if (op & 8) {
        fpd_mmio_write(DEVCFG + off, size, val);
    } else {
        fpd_mmio_read(DEVCFG + off, size);
    }
}

static void op_raw(Input *in)
{
    unsigned off = get16(in) % (INDIRECT - RINGS);
    uint8_t bytes[8] = { 0 };
    for (unsigned i = 0; i < 8; i++) {
        bytes[i] = (uint8_t)get8(in);
    }
    gmem_write(&fpd_mem, RINGS + off, bytes, 8);
    honest = false;
}

#if FVD_DEVICE == 1
static void drain_sink(void)
{
    static uint8_t frame[70000];
    while (recv(sink, frame, sizeof(frame), MSG_DONTWAIT) >= 0) {
    }
}

static void op_backend(Input *in)
{
    static uint8_t frame[MAX_LEN];
    unsigned len = get16(in) % (MAX_LEN + 1);
    if (len > in->size - in->pos) {
        len = (unsigned)(in->size - in->pos);
    }
    memcpy(frame, in->data + in->pos, len);
    in->pos += len;
    if (send(sink, frame, len, MSG_DONTWAIT) < 0 && errno != EAGAIN) {
        fail("sending to the netdev");
    }
    settle();   /* the netdev's watch reads it while rx has buffers */
}

static void op_other(Input *in)
{
    drain_sink();
    settle();   /* room in the socket: what waited to be sent goes */
}

/* Frames left over from this input must not reach the next one. */
static void end_input(void)
{
    static uint8_t frame[70000];
    drain_sink();
    while (recv(netfd, frame, sizeof(frame), MSG_DONTWAIT) >= 0) {
    }
}
#elif FVD_DEVICE == 2
static void op_backend(Input *in)
{
    static const char *const ids[] = { "c0", "c1", "c2" };
    Chardev *chr = chardev_find(ids[get8(in) % 3]);
    unsigned len = get16(in) % (MAX_LEN + 1);
    if (len > in->size - in->pos) {
        len = (unsigned)(in->size - in->pos);
    }
    /* As the chardev core hands a back-end's input over: no more than the
     * front-end has room for. */
    if (chr && chr->fe && chr->fe->can_read) {
        size_t room = chr->fe->can_read(chr->fe_opaque);
        if (len > room) {
            len = (unsigned)room;
        }
        if (len && chr->fe->read) {
            chr->fe->read(chr->fe_opaque, in->data + in->pos, len);
        }
    }
    in->pos += len;
    settle();
}

static void op_other(Input *in)
{
    fpd_mmio_read(ISR, 1);
}

static void end_input(void)
{
}
#else
static void op_backend(Input *in)
{
    int64_t next = clock_virtual_next_deadline();
    if (next >= 0) {
        clock_virtual_warp(next);
    }
    settle();
}

#if FVD_DEVICE == 4
static void op_other(Input *in)
{
    uint32_t pages = get32(in) % (FPD_RAM_SIZE / 4096 + 1);
    unsigned secs = get8(in) % 4;
    Error *err = NULL;
    if (!virtio_balloon_set_target((int64_t)FPD_RAM_SIZE - (int64_t)pages * 4096, &err)) {
        error_free(err);
        err = NULL;
    }
    if (!virtio_balloon_set_poll_interval(secs, &err)) {
        error_free(err);
    }
}

static void end_input(void)
{
    Error *err = NULL;
    if (!virtio_balloon_set_poll_interval(0, &err)) {
        error_free(err);
    }
}
#else
static void op_other(Input *in)
{
    fpd_mmio_read(ISR, 1);
}

static void end_input(void)
{
}
#endif
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    Input in = { data, size, 2 };
    setup(data[0], data[1]);
    unsigned ops = 0;
    while (in.pos < in.size && ops++ < 256) {
        unsigned op = get8(&in);
        switch (op & 7) {
        case 0:
            op_chain(&in);
            break;
        case 1:
            if (nq) {
                kick(get8(&in) % nq);
            }
            break;
        case 2:
            op_config(&in, op);
            break;
        case 3:
            setup(data[0], data[1]);
            break;
        case 4:
            op_raw(&in);
            break;
        case 5:
            op_backend(&in);
            break;
        case 6:
            op_other(&in);
            break;
        default:
            fpd_mmio_read(ISR, 1);
            break;
        }
    }
    common_w(C_STATUS, 1, 0);
    end_input();
    return 0;
}
