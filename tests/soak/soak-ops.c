/*
 * The hostile guest program's operations: buffers, rings and descriptor
 * tables that point anywhere a device must refuse, and the attacks on each
 * device and on the legacy ports (soak.h says what lives where).
 */
#include "soak.h"

/* ---- hostile addresses ---- */

/* A buffer for device d: ours (maybe with a huge length), or outside RAM or on MMIO. */
static void gen_buf(Rng *r, Dev *d, uint64_t *addr, uint32_t *len)
{
    unsigned k = below(r, 100);
    if (d && d->balloon && k < 70) {
        uint64_t off = GENERAL_SIZE + below(r, SAFE_SIZE);
        *addr = dpa(off);
        *len = 1 + below(r, HUGE_SIZE - off);
    } else if (k < 60) {
        uint64_t off = below(r, GENERAL_SIZE);
        *addr = dpa(off);
        *len = chance(r, 70) ? 1 + below(r, 4096) : 1 + below(r, GENERAL_SIZE - off);
        if (*len > GENERAL_SIZE - off) {
            *len = GENERAL_SIZE - off;
        }
    } else if (k < 68) {
        *addr = dpa(below(r, GENERAL_SIZE));
        *len = 0;
    } else if (k < 78) {
        /* From our page across the end of RAM: must be refused whole. */
        *addr = dpa(below(r, GENERAL_SIZE));
        *len = ram_end + below(r, 1u << 20) > 0xffffffffull ? 0xffffffffu
               : (uint32_t)(ram_end + below(r, 1u << 20));
    } else if (k < 88) {
        static const uint64_t far[] = { 0xfee00000, 0xfec00000, 0xffffffffffff0000ull,
                                        1ull << 40, 0x100000000ull, 0xfffff000 };
        *addr = chance(r, 50) ? far[below(r, 6)] : ram_end - below(r, 64) + (chance(r, 50) ? 0 : 4096);
        *len = 1 + below(r, 0x10000);
        if (*addr < ram_end && *addr + *len <= ram_end) {
            *addr = ram_end;    /* never a buffer inside RAM that is not ours */
        }
    } else {
        /* On a BAR: device memory, never RAM. */
        Dev *t = &devs[below(r, ndevs)];
        Bar *b = &t->bar[below(r, 6)];
        *addr = b->present && !b->io ? b->pa + below(r, b->len) : 0xfebf0000;
        *len = 1 + below(r, 8192);
    }
}

void put_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
              uint16_t next)
{
    uint8_t *p = table + i * 16;
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

/* Fill a whole descriptor table of n entries (in our page) with hostile chains. */
static void fill_table(Rng *r, Dev *d, uint8_t *table, unsigned n, bool allow_indirect)
{
    unsigned style = below(r, 6);
    for (unsigned i = 0; i < n; i++) {
        uint64_t addr;
        uint32_t len;
        gen_buf(r, d, &addr, &len);
        uint16_t flags = below(r, 8) & 3, next = below(r, n + 2);
        switch (style) {
        case 0: /* a loop through every entry */
            flags |= 1;
            next = (i + 1) % n;
            break;
        case 1: /* a self loop */
            flags |= 1;
            next = i;
            break;
        case 2: /* well formed: out buffers then in buffers, short chains */
            flags = (i % 4 < 2 ? 0 : 2) | (i % 4 != 3 ? 1 : 0);
            next = i + 1 < n ? i + 1 : 0;
            break;
        default:
            break;
        }
        if (allow_indirect && chance(r, 10)) {
            /* An indirect table: ours and garbage-filled, or on MMIO / outside RAM. */
            unsigned m = 1 + below(r, 64);
            uint64_t off = below(r, GENERAL_SIZE - m * 16) & ~15ull;
            if (chance(r, 70)) {
                fill_table(r, d, dma_va + off, m, false);
                addr = dpa(off);
                /* Exact, or a length the device must refuse: never one that
                 * would make it read past what was written here. */
                len = chance(r, 80) ? m * 16 : chance(r, 50) ? m * 16 + 1 + below(r, 15)
                                                           : 16 * 1024 + 16 + below(r, 1u << 20);
            } else {
                gen_buf(r, NULL, &addr, &len);
                if (addr >= dma_pa && addr < dma_pa + HUGE_SIZE) {
                    addr = ram_end;
                }
            }
            flags = 4 | (chance(r, 10) ? 1 : 0) | (chance(r, 5) ? 2 : 0);
        }
        if (addr >= dpa(GENERAL_SIZE) && addr < dpa(HUGE_SIZE)) {
            flags &= ~2;    /* the balloon's page numbers are read, never written */
        }
        put_desc(table, i, addr, len, flags, next);
    }
}

/* A ring area: ours (aligned or not), or somewhere it must be refused. */
static uint64_t gen_ring(Rng *r, uint64_t need, uint64_t *off_out)
{
    *off_out = UINT64_MAX;
    unsigned k = below(r, 100);
    if (k < 75 && need < GENERAL_SIZE) {
        uint64_t room = need > RING_ROOM ? need : RING_ROOM;
        uint64_t off = below(r, GENERAL_SIZE - room) & (chance(r, 90) ? ~15ull : ~0ull);
        *off_out = off;
        return dpa(off);
    }
    if (k < 85) {
        return ram_end - below(r, need);    /* across the end of RAM */
    }
    if (k < 92) {
        Dev *t = &devs[below(r, ndevs)];
        return t->bar[4].present ? t->bar[4].pa : 0xfee00000;
    }
    return rnd(r) | 1ull << 48;
}

/* ---- the operations ---- */

const char *op_names[OP_NUM] = { "queue", "reset-mid-request", "bar", "config-space",
                                 "doorbell", "status", "legacy", "ports", "device-config",
                                 "queue-reset", "bar-move" };

static void note_status(Dev *d)
{
    if (C8(d, C_STATUS) & S_NEEDS_RESET) {
        __atomic_add_fetch(&needs_reset_seen, 1, __ATOMIC_RELAXED);
    }
}

void kick(Dev *d, unsigned q)
{
    if (!d->notify) {
        return;
    }
    uint64_t off = (uint64_t)q * d->notify_mult;
    if (off + 2 <= d->notify_len) {
        *(volatile uint16_t *)(d->notify + off) = q;
    }
}

/* Set a queue up with hostile rings and contents, then kick it. */
static void op_queue(Rng *r, Dev *d, bool proper_status)
{
    unsigned nq = d->numq ? d->numq : 1;
    unsigned q = chance(r, 90) ? below(r, nq) : below(r, 0x10000);
    if (proper_status || chance(r, 70)) {
        C8(d, C_STATUS) = 0;
        C8(d, C_STATUS) = S_ACK | S_DRIVER;
        C32(d, C_GFSEL) = 1;
        C32(d, C_GF) = chance(r, 90) ? 1 : rnd(r);  /* VERSION_1 */
        C32(d, C_GFSEL) = 0;
        C32(d, C_GF) = chance(r, 50) ? (1u << 28 | 1u << 29) : rnd(r);
        C8(d, C_STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK;
    }
    C16(d, C_QSEL) = q;
    uint16_t dflt = C16(d, C_QSIZE);
    unsigned n = dflt && dflt <= 1024 ? dflt : 256;
    unsigned k = below(r, 10);
    uint16_t size = k < 6 ? n : k < 8 ? n >> below(r, 4) : rnd(r);
    C16(d, C_QSIZE) = size;
    unsigned real = size && size <= 1024 ? size : 1024;
    uint64_t doff, aoff, uoff;
    uint64_t desc = gen_ring(r, real * 16ull, &doff);
    uint64_t avail = gen_ring(r, 6 + 2ull * real, &aoff);
    uint64_t used = gen_ring(r, 6 + 8ull * real, &uoff);
    if (doff != UINT64_MAX) {
        fill_table(r, d, dma_va + doff, real, true);
    }
    if (aoff != UINT64_MAX) {
        uint16_t *av = (uint16_t *)(dma_va + aoff);
        av[0] = below(r, 2);
        for (unsigned i = 0; i < real + 1; i++) {
            av[2 + i] = chance(r, 90) ? below(r, real) : rnd(r);
        }
        av[1] = chance(r, 70) ? 1 + below(r, real) : rnd(r);  /* an index jump */
    }
    set_q64(d, C_QDESC, desc);
    set_q64(d, C_QAVAIL, avail);
    set_q64(d, C_QUSED, used);
    if (chance(r, 50)) {
        C16(d, C_QMSIX) = chance(r, 50) ? 0xffff : below(r, 8);
    }
    C16(d, C_QENABLE) = chance(r, 95) ? 1 : rnd(r);
    C8(d, C_STATUS) = chance(r, 90) ? (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK) : rnd(r);
    for (unsigned i = below(r, 4); i < 4; i++) {
        kick(d, q);
        if (aoff != UINT64_MAX && chance(r, 30)) {
            ((uint16_t *)(dma_va + aoff))[1] += below(r, 3 * real);   /* jump again */
        }
    }
    note_status(d);
}

/* A well-formed request in flight, then the device reset under it. */
static void op_reset_mid(Rng *r, Dev *d)
{
    C8(d, C_STATUS) = 0;
    C8(d, C_STATUS) = S_ACK | S_DRIVER;
    C32(d, C_GFSEL) = 1;
    C32(d, C_GF) = 1;
    C8(d, C_STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK;
    unsigned q = request_queue(d);
    C16(d, C_QSEL) = q;
    unsigned n = C16(d, C_QSIZE);
    if (!n || n > 1024) {
        return;
    }
    /* Rings in a fixed 64 KiB slot per thread. */
    uint64_t base = thread_id ? 0x80000 : 0x40000;
    uint8_t *desc = dma_va + base;
    uint16_t *avail = (uint16_t *)(dma_va + base + 0x4000);
    memset(dma_va + base, 0, 0x10000);
    uint64_t data = dpa(base + 0x9000);
    unsigned chains = 1 + below(r, n / 3 < 32 ? n / 3 : 32);
    for (unsigned c = 0; c < chains && c * 3 + 2 < n; c++) {
        uint32_t hdr[4] = { chance(r, 50) ? 0 : 1, 0, (uint32_t)below(r, 4096), 0 };
        memcpy(dma_va + base + 0x9000 + c * 64, hdr, 16);
        put_desc(desc, c * 3, data + c * 64, 16, 1, c * 3 + 1);
        put_desc(desc, c * 3 + 1, dpa(base + 0xa000 + c * 512), 512, 1 | 2 * chance(r, 50),
                 c * 3 + 2);
        put_desc(desc, c * 3 + 2, data + c * 64 + 32, 1, 2, 0);
        avail[2 + c] = c * 3;
    }
    for (unsigned i = chains * 3; i < n; i++) {
        put_desc(desc, i, dpa(base + 0xf000), 16, 2, 0);
    }
    avail[1] = chains;
    C16(d, C_QSIZE) = n;
    set_q64(d, C_QDESC, dpa(base));
    set_q64(d, C_QAVAIL, dpa(base + 0x4000));
    set_q64(d, C_QUSED, dpa(base + 0x6000));
    C16(d, C_QENABLE) = 1;
    C8(d, C_STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
    kick(d, q);
    for (unsigned spin = below(r, 2000); spin; spin--) {
        __asm__ volatile("pause");
    }
    if (chance(r, 50)) {
        C8(d, C_STATUS) = 0;
    } else {
        C16(d, C_QRESET) = 1;
    }
}

/* Random accesses to one BAR; the MSI-X table keeps every vector masked. */
static void op_bar(Rng *r, Dev *d)
{
    Bar *b = &d->bar[below(r, 6)];
    if (!b->map) {
        return;
    }
    for (unsigned i = 0; i < 16; i++) {
        unsigned size = 1u << below(r, 4);
        uint64_t off = below(r, b->len) & ~(uint64_t)(size - 1);
        volatile uint8_t *p = b->map + off;
        if (chance(r, 30)) {
            mmio_read(p, size);
            continue;
        }
        uint64_t v = rnd(r);
        if (d->msix_table && p >= d->msix_table && p < d->msix_table + d->msix_len) {
            /* MSI-X: an unmasked random vector could INIT a vCPU; keep it masked. */
            unsigned e = (p - d->msix_table) / 16;
            volatile uint32_t *ctrl = (volatile uint32_t *)(d->msix_table + e * 16 + 12);
            *ctrl = 1;
            if ((off & 15) + size > 12) {
                continue;
            }
        }
        mmio_write(p, v, size);
    }
}

/* Random configuration-space writes, BARs and command restored afterwards. */
static void op_cfg(Rng *r, Dev *d)
{
    pthread_mutex_lock(&d->cfg_lock);
    for (unsigned i = 0; i < 8; i++) {
        unsigned size = 1u << below(r, 3);
        unsigned off = (chance(r, 50) ? below(r, 0x40) : 0x40 + below(r, 0xc0)) & ~(size - 1);
        if (off < 4) {
            continue;
        }
        uint32_t v = rnd(r);
        if (d->msix_table && chance(r, 70)) {
            v &= ~0x8000u;      /* mostly keep MSI-X off */
        }
        cfg_write(d, off, v, size);
        cfg_read(d, below(r, 256) & ~3u, 4);
    }
    /* What the attack moved comes back, so the guest keeps its view. */
    cfg_write(d, 4, d->saved_cfg[4] | d->saved_cfg[5] << 8, 2);
    for (unsigned off = 0x10; off < 0x28; off += 4) {
        uint32_t v;
        memcpy(&v, d->saved_cfg + off, 4);
        cfg_write(d, off, v, 4);
    }
    uint32_t rom;
    memcpy(&rom, d->saved_cfg + 0x30, 4);
    cfg_write(d, 0x30, rom, 4);
    cfg_write(d, 4, d->saved_cfg[4] | d->saved_cfg[5] << 8, 2);
    pthread_mutex_unlock(&d->cfg_lock);
}

/*
 * Move a memory BAR onto RAM, onto another BAR, onto the local or I/O APIC,
 * onto our own page or anywhere; touch both places; put it back.
 */
static void op_bar_move(Rng *r, Dev *d)
{
    unsigned i = below(r, 6);
    Bar *b = &d->bar[i];
    if (!b->present || b->io) {
        return;
    }
    pthread_mutex_lock(&d->cfg_lock);
    uint32_t lo = cfg_read(d, 0x10 + 4 * i, 4);
    bool is64 = (lo & 6) == 4 && i < 5;
    uint32_t hi = is64 ? cfg_read(d, 0x14 + 4 * i, 4) : 0;
    uint64_t target;
    switch (below(r, 6)) {
    case 0: target = below(r, ram_end) & ~(b->len - 1); break;
    case 1: {
        Bar *t = &devs[below(r, ndevs)].bar[below(r, 6)];
        target = t->present && !t->io ? t->pa + (chance(r, 50) ? 0 : below(r, t->len)) : 0;
        break;
    }
    /* (A RAM BAR over the I/O APIC would hide it from the guest: its own harm.) */
    case 2: target = d->device == 0x1110 ? dma_pa : 0xfee00000; break;
    case 3: target = d->device == 0x1110 ? dma_pa : 0xfec00000; break;
    case 4: target = dma_pa; break;
    default: target = rnd(r) & (chance(r, 50) ? 0xffffffffull : ~0ull); break;
    }
    cfg_write(d, 0x10 + 4 * i, (uint32_t)target | (lo & 0xf), 4);
    if (is64) {
        cfg_write(d, 0x14 + 4 * i, target >> 32, 4);
    }
    if (b->map) {
        mmio_read(b->map + below(r, b->len) / 4 * 4, 4);
    }
    (void)*(volatile uint32_t *)(dma_va + below(r, HUGE_SIZE) / 4 * 4);
    cfg_write(d, 0x10 + 4 * i, lo, 4);
    if (is64) {
        cfg_write(d, 0x14 + 4 * i, hi, 4);
    }
    pthread_mutex_unlock(&d->cfg_lock);
}

static void op_doorbell(Rng *r, Dev *d)
{
    if (!d->notify) {
        return;
    }
    for (unsigned i = 0; i < 200; i++) {
        uint64_t off = chance(r, 80) ? below(r, d->numq + 1) * d->notify_mult : below(r, d->notify_len);
        unsigned size = 1u << below(r, 3);
        if (off + size <= d->notify_len) {
            mmio_write(d->notify + off, chance(r, 80) ? below(r, d->numq + 1) : rnd(r), size);
        }
    }
}

static void op_status(Rng *r, Dev *d)
{
    static const uint8_t seq[] = { 0, S_ACK, S_ACK | S_DRIVER, S_ACK | S_DRIVER | S_FEATURES_OK,
                                   S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK, 0x80, 0x40 };
    for (unsigned i = 0; i < 8; i++) {
        C8(d, C_STATUS) = chance(r, 80) ? seq[below(r, sizeof(seq))] : rnd(r);
        if (chance(r, 30)) {
            C16(d, C_QSEL) = below(r, d->numq + 2);
            C16(d, C_QSIZE) = rnd(r);
        }
        if (chance(r, 30)) {
            C16(d, C_QENABLE) = 1;
        }
        if (chance(r, 20)) {
            C32(d, C_DFSEL) = below(r, 4);
            (void)C32(d, C_DF);
            C32(d, C_GFSEL) = below(r, 4);
            C32(d, C_GF) = rnd(r);
        }
        if (chance(r, 10)) {
            C16(d, C_MSIX) = rnd(r);
        }
        if (d->isr && chance(r, 30)) {
            (void)*d->isr;
        }
    }
    note_status(d);
}

/* The legacy I/O BAR: rings by page number, ours (room for any size) or not RAM. */
static void op_legacy(Rng *r, Dev *d)
{
    if (!have_io || !d->io_base) {
        return;
    }
    uint16_t b = d->io_base;
    for (unsigned i = 0; i < 12; i++) {
        switch (below(r, 8)) {
        case 0: outb(below(r, 2) ? S_ACK | S_DRIVER | S_DRIVER_OK : rnd(r), b + L_STATUS); break;
        case 1: outw(below(r, 4), b + L_QSEL); break;
        case 2: {
            uint32_t pfn = chance(r, 70) ? (uint32_t)(dpa(below(r, GENERAL_SIZE - 0x20000)) >> 12)
                                         : (uint32_t)(ram_end >> 12) + below(r, 1u << 20);
            outl(chance(r, 10) ? 0 : pfn, b + L_PFN);
            if (((uint64_t)pfn << 12) >= dma_pa && ((uint64_t)pfn << 12) < dma_pa + GENERAL_SIZE) {
                uint64_t off = ((uint64_t)pfn << 12) - dma_pa;
                unsigned n = inw(b + L_QNUM);
                if (n && n <= 1024) {
                    fill_table(r, d, dma_va + off, n, true);
                    uint16_t *av = (uint16_t *)(dma_va + off + n * 16);
                    av[1] = 1 + below(r, 2 * n);
                    for (unsigned k = 0; k < n; k++) {
                        av[2 + k] = below(r, n + 1);
                    }
                }
            }
            break;
        }
        case 3: outw(below(r, d->numq + 2), b + L_QNOTIFY); break;
        case 4: outl(rnd(r), b + L_GF); break;
        case 5: (void)inb(b + L_ISR); break;
        case 6: {
            unsigned off = 20 + below(r, 12);
            outb(rnd(r), b + off);
            break;
        }
        default: (void)inl(b + (below(r, L_LEN) & ~3u)); break;
        }
    }
    note_status(d);
}

/*
 * COM1 as Linux leaves it while idle. Linux keeps its own copy of IER and
 * counts on the THRE interrupt that follows its setting IER's THRE bit: the
 * attack's IIR reads take that interrupt, and a restored IER that differs
 * from Linux's copy hides the next one, either way stalling the guest's
 * console for good, as on real hardware. So the attack starts only once the
 * console is quiet, and every UART operation puts back the idle state.
 */
static struct { uint8_t lcr, ier, mcr, dll, dlm; } uart_idle;

void uart_save(void)
{
    uart_idle.lcr = inb(0x3fb);
    uart_idle.ier = inb(0x3f9) & ~0x02;     /* idle: no THRE wanted */
    uart_idle.mcr = inb(0x3fc);
    outb(uart_idle.lcr | 0x80, 0x3fb);
    uart_idle.dll = inb(0x3f8);
    uart_idle.dlm = inb(0x3f9);
    outb(uart_idle.lcr, 0x3fb);
}

static void uart_restore(void)
{
    outb(0x80, 0x3fb);
    outb(uart_idle.dll, 0x3f8);
    outb(uart_idle.dlm, 0x3f9);
    outb(uart_idle.lcr & 0x7f, 0x3fb);
    outb(0xc7, 0x3fa);
    outb(uart_idle.mcr, 0x3fc);
    outb(uart_idle.ier, 0x3f9);
}

/* UART, RTC, i8042 and fw_cfg (with DMA into our page or outside RAM). */
static void op_ports(Rng *r)
{
    if (!have_io) {
        return;
    }
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    switch (below(r, 4)) {
    case 0: {   /* COM1, put back as Linux left it while idle */
        for (unsigned i = 0; i < 16; i++) {
            unsigned reg = below(r, 8);
            if (chance(r, 50)) {
                outb(rnd(r), 0x3f8 + reg);
            } else {
                (void)inb(0x3f8 + reg);
            }
        }
        uart_restore();
        break;
    }
    case 1: {   /* RTC/CMOS, control registers A and B put back */
        outb(0x0a, 0x70);
        uint8_t a = inb(0x71);
        outb(0x0b, 0x70);
        uint8_t bb = inb(0x71);
        for (unsigned i = 0; i < 16; i++) {
            outb(below(r, 256), 0x70);
            if (chance(r, 50)) {
                outb(rnd(r), 0x71);
            } else {
                (void)inb(0x71);
            }
        }
        outb(0x0a, 0x70);
        outb(a, 0x71);
        outb(0x0b, 0x70);
        outb(bb, 0x71);
        outb(0x0c, 0x70);
        (void)inb(0x71);
        break;
    }
    case 2: {   /* i8042: anything but the commands that pull the reset line */
        for (unsigned i = 0; i < 8; i++) {
            uint8_t cmd = rnd(r);
            if (chance(r, 40)) {
                /* no reset pulses, no bytes injected as keyboard or mouse input */
                if (cmd >= 0xf0 || cmd == 0xd1 || cmd == 0xd2 || cmd == 0xd3) {
                    cmd = 0x20;
                }
                outb(cmd, 0x64);
            } else if (chance(r, 50)) {
                outb(cmd, 0x60);
            } else {
                (void)inb(chance(r, 50) ? 0x60 : 0x64);
            }
        }
        break;
    }
    default: {  /* fw_cfg: selector, data, DMA */
        for (unsigned i = 0; i < 8; i++) {
            switch (below(r, 4)) {
            case 0: outw(chance(r, 70) ? below(r, 0x40) : rnd(r), 0x510); break;
            case 1: for (unsigned k = below(r, 64); k; k--) { (void)inb(0x511); } break;
            case 2: outb(rnd(r), 0x511 - below(r, 2)); break;
            default: {
                uint64_t coff = below(r, GENERAL_SIZE - 16) & ~15ull, addr;
                uint32_t len;
                gen_buf(r, NULL, &addr, &len);
                uint32_t ctl = __builtin_bswap32(chance(r, 80) ? (below(r, 4) << 16 | 8 | 2) : rnd(r));
                /* An item is copied up to the length asked: keep it inside our page. */
                bool ours = addr >= dma_pa && addr < dma_pa + GENERAL_SIZE;
                if (ours && len > dma_pa + GENERAL_SIZE - addr) {
                    len = dma_pa + GENERAL_SIZE - addr;
                }
                uint32_t blen = __builtin_bswap32(ours ? len : (uint32_t)rnd(r));
                uint64_t baddr = __builtin_bswap64(addr);
                memcpy(dma_va + coff, &ctl, 4);
                memcpy(dma_va + coff + 4, &blen, 4);
                memcpy(dma_va + coff + 8, &baddr, 8);
                uint64_t where = chance(r, 85) ? dpa(coff) : ram_end + below(r, 4096);
                outl(__builtin_bswap32(where >> 32), 0x514);
                outl(__builtin_bswap32((uint32_t)where), 0x518);
                break;
            }
            }
        }
        break;
    }
    }
    pthread_mutex_unlock(&lock);
}

static void op_devcfg(Rng *r, Dev *d)
{
    if (!d->devcfg || !d->devcfg_len) {
        return;
    }
    for (unsigned i = 0; i < 16; i++) {
        unsigned size = 1u << below(r, 4);
        uint64_t off = below(r, d->devcfg_len) & ~(uint64_t)(size - 1);
        if (off + size > d->devcfg_len) {
            continue;
        }
        if (chance(r, 50)) {
            mmio_write(d->devcfg + off, rnd(r), size);
        } else {
            mmio_read(d->devcfg + off, size);
        }
    }
}

static void op_qreset(Rng *r, Dev *d)
{
    C16(d, C_QSEL) = below(r, d->numq + 1);
    C16(d, C_QRESET) = chance(r, 80) ? 1 : rnd(r);
    if (chance(r, 50)) {
        C16(d, C_QENABLE) = 1;
    }
    note_status(d);
}

unsigned run_op(Rng *r, unsigned op, Dev *d)
{
    if (op != OP_PORTS && op != OP_BAR && op != OP_CFG && op != OP_BAR_MOVE && !d->common) {
        op = OP_BAR;
    }
    switch (op) {
    case OP_QUEUE: op_queue(r, d, false); break;
    case OP_RESET_MID: op_reset_mid(r, d); break;
    case OP_BAR: op_bar(r, d); break;
    case OP_CFG: op_cfg(r, d); break;
    case OP_DOORBELL: op_doorbell(r, d); break;
    case OP_STATUS: op_status(r, d); break;
    case OP_LEGACY: op_legacy(r, d); break;
    case OP_PORTS: op_ports(r); break;
    case OP_DEVCFG: op_devcfg(r, d); break;
    case OP_BAR_MOVE: op_bar_move(r, d); break;
    case OP_QRESET: op_qreset(r, d); break;
    default: break;
    }
    return op;
}

static const unsigned weights[OP_NUM] = { 30, 8, 10, 5, 6, 10, 8, 8, 8, 7, 5 };

unsigned pick_op(Rng *r)
{
    unsigned total = 0;
    for (unsigned i = 0; i < OP_NUM; i++) {
        total += weights[i];
    }
    unsigned x = below(r, total);
    for (unsigned i = 0; i < OP_NUM; i++) {
        if (x < weights[i]) {
            return i;
        }
        x -= weights[i];
    }
    return 0;
}
