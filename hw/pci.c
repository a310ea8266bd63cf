/*
 * PCI host bridge, configuration space and interrupts. See hw/pci.h.
 */
#include "hw/pci.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "hw/irq.h"
#include "util/osdep.h"

#define CONFIG_ADDR_ENABLE  0x80000000u
#define PCI_HEADER_END      0x40
#define PCI_BAR_SPACE_IO    0x01
#define PCI_BAR_MEM_TYPE_64 0x04
#define PCI_BAR_MEM_PREFETCH 0x08
#define PCI_NUM_GSIS        24

/* MSI capability (64-bit address, no per-vector mask). */
#define MSI_CAP_SIZE        14
#define MSI_FLAGS           2
#define MSI_ADDR_LO         4
#define MSI_ADDR_HI         8
#define MSI_DATA            12
#define MSI_FLAGS_ENABLE    0x0001
#define MSI_FLAGS_64BIT     0x0080

/* MSI-X capability and table. */
#define MSIX_CAP_SIZE       12
#define MSIX_FLAGS          2
#define MSIX_TABLE          4
#define MSIX_PBA            8
#define MSIX_FLAGS_MASKALL  0x4000
#define MSIX_FLAGS_ENABLE   0x8000
#define MSIX_ENTRY_SIZE     16
#define MSIX_ENTRY_DATA     8
#define MSIX_ENTRY_CTRL     12
#define MSIX_CTRL_MASKED    0x1
#define MSIX_MAX_VECTORS    2048

/* An eventfd bound to an MSI-X vector (pci_msix_set_eventfd). */
typedef struct MsixEventfd {
    struct PciDevice *dev;
    unsigned vector;
    int fd;                 /* -1: none */
    int irqfd;              /* back-end handle while routed in the kernel, else -1 */
    bool watched;           /* vireo polls fd (masked, or no irqfd path) */
} MsixEventfd;

typedef struct PciBar {
    PciBarType type;
    uint64_t size;          /* 0: not implemented */
    bool upper_half;        /* the high dword of the 64-bit BAR below */
    const IoOps *ops;
    void *opaque;
    IoRegion *region;       /* non-NULL while mapped */
    uint64_t mapped_at;
    uint8_t *ram;           /* RAM BAR: host memory behind it, else NULL */
    int ram_slot;           /* accelerator mapping while mapped, else -1 */
} PciBar;

struct PciDevice {
    PciHost *host;
    unsigned slot;
    PciDeviceInfo info;
    void *opaque;
    uint8_t config[PCI_CONFIG_SIZE];
    uint8_t wmask[PCI_CONFIG_SIZE];     /* bits the guest may write */
    uint8_t w1cmask[PCI_CONFIG_SIZE];   /* bits a guest 1 clears */
    PciBar bars[PCI_NUM_BARS];
    uint8_t next_cap;                   /* where the next capability goes */
    bool intx_level;                    /* what the device asks for */
    bool intx_asserted;                 /* what it drives on the line */
    int msi_cap;                        /* offset, 0 = none */
    int msix_cap;
    unsigned msix_vectors;
    unsigned msix_bar;
    uint8_t *msix_table;                /* msix_vectors entries */
    uint8_t *msix_pba;                  /* pending bits */
    uint32_t msix_pba_offset;           /* inside the BAR */
    MsixEventfd *msix_eventfds;         /* msix_vectors entries */
};

struct PciHost {
    PciHostConfig cfg;
    IoRegion *addr_io, *data_io;
    uint32_t config_address;
    PciDevice *slots[PCI_MAX_SLOTS];
    unsigned gsi_users[PCI_NUM_GSIS];   /* asserted INTx inputs per line */
};

static uint16_t cfg_get16(const PciDevice *d, unsigned off)
{
    return d->config[off] | (uint16_t)d->config[off + 1] << 8;
}

static uint32_t cfg_get32(const PciDevice *d, unsigned off)
{
    return cfg_get16(d, off) | (uint32_t)cfg_get16(d, off + 2) << 16;
}

static void set16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void set32(uint8_t *p, uint32_t v) { set16(p, v); set16(p + 2, v >> 16); }

static bool ranges_touch(unsigned a, unsigned alen, unsigned b, unsigned blen)
{
    return a < b + blen && b < a + alen;
}

/* ---- INTx ---- */

static void update_intx(PciDevice *d)
{
    if (!d->info.intx_pin) {
        return;
    }
    bool assert = d->intx_level && !(cfg_get16(d, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
    if (assert == d->intx_asserted) {
        return;
    }
    d->intx_asserted = assert;
    unsigned gsi = d->host->cfg.intx_gsi(d->slot, d->info.intx_pin - 1);
    if (gsi >= PCI_NUM_GSIS) {
        return;
    }
    /* Several devices share a line: it is high while any of them asserts. */
    unsigned *users = &d->host->gsi_users[gsi];
    bool was_high = *users > 0;
    *users += assert ? 1 : -1;
    if ((*users > 0) != was_high) {
        irq_set_level(gsi, *users > 0);
    }
}

void pci_set_irq(PciDevice *d, bool level)
{
    d->intx_level = level;
    uint16_t status = cfg_get16(d, PCI_STATUS);
    set16(d->config + PCI_STATUS, level ? status | PCI_STATUS_INTERRUPT
                                        : status & ~PCI_STATUS_INTERRUPT);
    update_intx(d);
}

/* ---- BAR mapping ---- */

static uint64_t bar_programmed_address(const PciDevice *d, unsigned i)
{
    const PciBar *b = &d->bars[i];
    uint32_t lo = cfg_get32(d, PCI_BASE_ADDRESS_0 + i * 4);
    if (b->type == PCI_BAR_IO) {
        return lo & ~0x3u;
    }
    uint64_t addr = lo & ~0xfu;
    if (b->type == PCI_BAR_MEM64) {
        addr |= (uint64_t)cfg_get32(d, PCI_BASE_ADDRESS_0 + (i + 1) * 4) << 32;
    }
    return addr;
}

/* A programmed address the bridge will decode: enabled, non-zero, in range. */
static bool bar_decodable(const PciDevice *d, unsigned i, uint64_t addr)
{
    const PciBar *b = &d->bars[i];
    uint16_t cmd = cfg_get16(d, PCI_COMMAND);
    bool enabled = b->type == PCI_BAR_IO ? (cmd & PCI_COMMAND_IO) : (cmd & PCI_COMMAND_MEMORY);
    uint64_t limit = b->type == PCI_BAR_IO ? 0x10000 : UINT64_MAX;
    return enabled && addr != 0 && range_within(addr, b->size, limit);
}

static void unmap_bar(PciBar *b)
{
    if (b->ram) {
        ram_slot_del(b->ram_slot);
        b->ram_slot = -1;
    }
    io_region_del(b->region);
    b->region = NULL;
}

static void update_bar(PciDevice *d, unsigned i)
{
    PciBar *b = &d->bars[i];
    if (!b->size) {
        return;
    }
    uint64_t addr = bar_programmed_address(d, i);
    bool want = bar_decodable(d, i, addr);
    if (b->region && (!want || b->mapped_at != addr)) {
        unmap_bar(b);
    }
    if (want && !b->region) {
        char name[64];
        snprintf(name, sizeof(name), "%s-bar%u", d->info.name, i);
        AddressSpaceId as = b->type == PCI_BAR_IO ? AS_PIO : AS_MMIO;
        /* A BAR placed over another region stays unmapped: the guest's mistake. */
        b->region = io_region_add(as, name, addr, b->size, b->ops, b->opaque, NULL);
        b->mapped_at = addr;
        /* RAM BARs also become guest memory where the accelerator can do it. */
        if (b->region && b->ram) {
            b->ram_slot = ram_slot_add(addr, b->size, b->ram);
        }
    }
}

static void update_bars(PciDevice *d)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        update_bar(d, i);
    }
}

uint64_t pci_bar_address(const PciDevice *d, unsigned bar)
{
    if (bar >= PCI_NUM_BARS || !d->bars[bar].region) {
        return PCI_BAR_UNMAPPED;
    }
    return d->bars[bar].mapped_at;
}

static bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static bool bar_free(const PciDevice *d, unsigned bar)
{
    return bar < PCI_NUM_BARS && !d->bars[bar].size && !d->bars[bar].upper_half;
}

bool pci_bar_register(PciDevice *d, unsigned bar, PciBarType type, bool prefetchable,
                      uint64_t size, const IoOps *ops, void *opaque, Error **errp)
{
    unsigned slots = type == PCI_BAR_MEM64 ? 2 : 1;
    uint64_t min = type == PCI_BAR_IO ? 4 : 16;
    uint64_t max = type == PCI_BAR_IO ? 256 : type == PCI_BAR_MEM32 ? (1ULL << 31) : (1ULL << 40);
    if (!bar_free(d, bar) || (slots == 2 && !bar_free(d, bar + 1)) ||
        !is_pow2(size) || size < min || size > max) {
        error_setg(errp, "%s: invalid BAR %u (size 0x%llx)", d->info.name, bar,
                   (unsigned long long)size);
        return false;
    }
    d->bars[bar] = (PciBar){ .type = type, .size = size, .ops = ops, .opaque = opaque };
    uint32_t flags = type == PCI_BAR_IO ? PCI_BAR_SPACE_IO :
                     (type == PCI_BAR_MEM64 ? PCI_BAR_MEM_TYPE_64 : 0) |
                     (prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
    unsigned off = PCI_BASE_ADDRESS_0 + bar * 4;
    set32(d->config + off, flags);
    /* The size is what the guest learns by writing all ones and reading back. */
    set32(d->wmask + off, (uint32_t)~(size - 1) & (type == PCI_BAR_IO ? ~0x3u : ~0xfu));
    if (slots == 2) {
        set32(d->config + off + 4, 0);
        set32(d->wmask + off + 4, (uint32_t)(~(size - 1) >> 32));
        d->bars[bar + 1].upper_half = true;     /* no region of its own */
    }
    return true;
}

/*
 * RAM BARs: under an accelerator without memory slots (qtest) every access
 * comes here, bounds-checked by the dispatcher against the BAR size.
 */
static uint64_t ram_bar_read(void *opaque, uint64_t off, unsigned size)
{
    const PciBar *b = opaque;
    uint64_t val = 0;
    memcpy(&val, b->ram + off, size);
    return le64toh(val);
}

static void ram_bar_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    PciBar *b = opaque;
    uint64_t le = htole64(value);
    memcpy(b->ram + off, &le, size);
}

static const IoOps ram_bar_ops = { .read = ram_bar_read, .write = ram_bar_write };

bool pci_bar_register_ram(PciDevice *d, unsigned bar, bool prefetchable, uint64_t size,
                          void *hva, Error **errp)
{
    if (!pci_bar_register(d, bar, PCI_BAR_MEM64, prefetchable, size, &ram_bar_ops, NULL, errp)) {
        return false;
    }
    PciBar *b = &d->bars[bar];
    b->opaque = b;
    b->ram = hva;
    b->ram_slot = -1;
    return true;
}

/* ---- capabilities ---- */

int pci_capability_add(PciDevice *d, uint8_t cap_id, uint8_t size, Error **errp)
{
    unsigned off = ROUND_UP(d->next_cap, 4);
    if (size < 2 || off + size > PCI_CONFIG_SIZE) {
        error_setg(errp, "%s: no room for capability 0x%x", d->info.name, cap_id);
        return -1;
    }
    d->config[off] = cap_id;
    d->config[off + 1] = d->config[PCI_CAPABILITY_LIST];   /* push on the list head */
    d->config[PCI_CAPABILITY_LIST] = off;
    set16(d->config + PCI_STATUS, cfg_get16(d, PCI_STATUS) | PCI_STATUS_CAP_LIST);
    d->next_cap = off + size;
    return off;
}

/* ---- MSI ---- */

bool pci_msi_init(PciDevice *d, Error **errp)
{
    int cap = pci_capability_add(d, PCI_CAP_ID_MSI, MSI_CAP_SIZE, errp);
    if (cap < 0) {
        return false;
    }
    d->msi_cap = cap;
    set16(d->config + cap + MSI_FLAGS, MSI_FLAGS_64BIT);
    set16(d->wmask + cap + MSI_FLAGS, MSI_FLAGS_ENABLE);
    set32(d->wmask + cap + MSI_ADDR_LO, 0xfffffffc);
    set32(d->wmask + cap + MSI_ADDR_HI, 0xffffffff);
    set16(d->wmask + cap + MSI_DATA, 0xffff);
    return true;
}

bool pci_msi_enabled(const PciDevice *d)
{
    return d->msi_cap && (cfg_get16(d, d->msi_cap + MSI_FLAGS) & MSI_FLAGS_ENABLE);
}

void pci_msi_notify(PciDevice *d)
{
    if (!pci_msi_enabled(d) || !(cfg_get16(d, PCI_COMMAND) & PCI_COMMAND_MASTER)) {
        return;
    }
    uint64_t addr = cfg_get32(d, d->msi_cap + MSI_ADDR_LO) |
                    (uint64_t)cfg_get32(d, d->msi_cap + MSI_ADDR_HI) << 32;
    msi_send(addr, cfg_get16(d, d->msi_cap + MSI_DATA));
}

/* ---- MSI-X ---- */

static void msix_eventfd_sync(PciDevice *d, unsigned v);
static void msix_eventfd_sync_all(PciDevice *d);

bool pci_msix_enabled(const PciDevice *d)
{
    return d->msix_cap && (cfg_get16(d, d->msix_cap + MSIX_FLAGS) & MSIX_FLAGS_ENABLE);
}

static bool msix_function_masked(const PciDevice *d)
{
    return cfg_get16(d, d->msix_cap + MSIX_FLAGS) & MSIX_FLAGS_MASKALL;
}

bool pci_msix_masked(const PciDevice *d, unsigned v)
{
    if (!d->msix_cap || v >= d->msix_vectors) {
        return true;
    }
    return msix_function_masked(d) ||
           (d->msix_table[v * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL] & MSIX_CTRL_MASKED);
}

bool pci_msix_message(const PciDevice *d, unsigned v, uint64_t *addr, uint32_t *data)
{
    if (!d->msix_cap || v >= d->msix_vectors) {
        return false;
    }
    const uint8_t *e = d->msix_table + v * MSIX_ENTRY_SIZE;
    uint32_t lo, hi, dat;
    memcpy(&lo, e, 4);
    memcpy(&hi, e + 4, 4);
    memcpy(&dat, e + MSIX_ENTRY_DATA, 4);
    *addr = le32toh(lo) | (uint64_t)le32toh(hi) << 32;
    *data = le32toh(dat);
    return true;
}

static void set_pending(PciDevice *d, unsigned v, bool pending)
{
    uint8_t bit = 1u << (v % 8);
    d->msix_pba[v / 8] = pending ? d->msix_pba[v / 8] | bit : d->msix_pba[v / 8] & ~bit;
}

static bool is_pending(const PciDevice *d, unsigned v)
{
    return d->msix_pba[v / 8] & (1u << (v % 8));
}

void pci_msix_notify(PciDevice *d, unsigned v)
{
    if (!pci_msix_enabled(d) || v >= d->msix_vectors) {
        return;
    }
    if (pci_msix_masked(d, v)) {
        set_pending(d, v, true);
        return;
    }
    uint64_t addr;
    uint32_t data;
    pci_msix_message(d, v, &addr, &data);
    if (cfg_get16(d, PCI_COMMAND) & PCI_COMMAND_MASTER) {
        msi_send(addr, data);
    }
}

/* Deliver what became deliverable after an unmask. */
static void msix_flush_pending(PciDevice *d, unsigned first, unsigned count)
{
    for (unsigned v = first; v < first + count && v < d->msix_vectors; v++) {
        if (is_pending(d, v) && !pci_msix_masked(d, v) && pci_msix_enabled(d)) {
            set_pending(d, v, false);
            pci_msix_notify(d, v);
        }
    }
}

static uint64_t msix_bar_read(void *opaque, uint64_t off, unsigned size)
{
    PciDevice *d = opaque;
    uint64_t table_len = (uint64_t)d->msix_vectors * MSIX_ENTRY_SIZE;
    uint64_t pba_len = ROUND_UP(d->msix_vectors, 64) / 8;
    const uint8_t *src = NULL;
    if (range_within(off, size, table_len)) {
        src = d->msix_table + off;
    } else if (off >= d->msix_pba_offset && range_within(off - d->msix_pba_offset, size, pba_len)) {
        src = d->msix_pba + (off - d->msix_pba_offset);
    }
    uint64_t val = 0;
    if (src) {
        memcpy(&val, src, size);
    }
    return le64toh(val);
}

static void msix_bar_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    PciDevice *d = opaque;
    uint64_t table_len = (uint64_t)d->msix_vectors * MSIX_ENTRY_SIZE;
    if (!range_within(off, size, table_len)) {
        return;     /* the PBA and the gaps are read-only */
    }
    uint64_t le = htole64(value);
    memcpy(d->msix_table + off, &le, size);
    /* Only the mask bit of the vector control word is defined. */
    unsigned first = off / MSIX_ENTRY_SIZE, last = (off + size - 1) / MSIX_ENTRY_SIZE;
    for (unsigned v = first; v <= last; v++) {
        uint8_t *ctrl = d->msix_table + v * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL;
        ctrl[0] &= MSIX_CTRL_MASKED;
        ctrl[1] = ctrl[2] = ctrl[3] = 0;
        msix_eventfd_sync(d, v);
        if (d->info.msix_vector_changed) {
            d->info.msix_vector_changed(d, d->opaque, v);
        }
    }
    msix_flush_pending(d, first, last - first + 1);
}

static const IoOps msix_bar_ops = { .read = msix_bar_read, .write = msix_bar_write };

/* ---- MSI-X vectors driven by eventfds ---- */

static bool vector_deliverable(const PciDevice *d, unsigned v)
{
    return pci_msix_enabled(d) && !pci_msix_masked(d, v) &&
           (cfg_get16(d, PCI_COMMAND) & PCI_COMMAND_MASTER);
}

/* vireo consumes a signal itself: deliver it, or leave it pending. */
static void msix_eventfd_readable(void *opaque)
{
    MsixEventfd *e = opaque;
    uint64_t count;
    if (read(e->fd, &count, sizeof(count)) == sizeof(count)) {
        pci_msix_notify(e->dev, e->vector);
    }
}

static void watch_eventfd(MsixEventfd *e, bool on)
{
    if (e->watched != on) {
        e->watched = on;
        main_loop_set_fd_handler(e->fd, on ? msix_eventfd_readable : NULL, NULL, e);
    }
}

/* Put one bound vector on the right path after anything that affects it. */
static void msix_eventfd_sync(PciDevice *d, unsigned v)
{
    MsixEventfd *e = &d->msix_eventfds[v];
    if (e->fd < 0) {
        return;
    }
    if (!vector_deliverable(d, v)) {
        msi_irqfd_remove(e->irqfd);         /* signals now become pending bits */
        e->irqfd = -1;
        watch_eventfd(e, true);
        return;
    }
    uint64_t addr;
    uint32_t data;
    pci_msix_message(d, v, &addr, &data);
    if (e->irqfd >= 0 && !msi_irqfd_update(e->irqfd, addr, data)) {
        msi_irqfd_remove(e->irqfd);
        e->irqfd = -1;
    }
    if (e->irqfd < 0) {
        e->irqfd = msi_irqfd_add(e->fd, addr, data);
    }
    /* With an irqfd the kernel picks up any count left in the eventfd. */
    watch_eventfd(e, e->irqfd < 0);
}

static void msix_eventfd_sync_all(PciDevice *d)
{
    for (unsigned v = 0; d->msix_eventfds && v < d->msix_vectors; v++) {
        msix_eventfd_sync(d, v);
    }
}

static void msix_eventfd_unbind(MsixEventfd *e)
{
    if (e->fd >= 0) {
        msi_irqfd_remove(e->irqfd);
        watch_eventfd(e, false);
    }
    e->fd = e->irqfd = -1;
}

bool pci_msix_set_eventfd(PciDevice *d, unsigned vector, int eventfd, Error **errp)
{
    if (!d->msix_cap || vector >= d->msix_vectors) {
        error_setg(errp, "%s: no MSI-X vector %u", d->info.name, vector);
        return false;
    }
    MsixEventfd *e = &d->msix_eventfds[vector];
    msix_eventfd_unbind(e);
    e->fd = eventfd;
    msix_eventfd_sync(d, vector);
    return true;
}

static void msix_reset_table(PciDevice *d)
{
    memset(d->msix_table, 0, (size_t)d->msix_vectors * MSIX_ENTRY_SIZE);
    memset(d->msix_pba, 0, ROUND_UP(d->msix_vectors, 64) / 8);
    for (unsigned v = 0; v < d->msix_vectors; v++) {
        d->msix_table[v * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL] = MSIX_CTRL_MASKED;
    }
}

bool pci_msix_init(PciDevice *d, unsigned nr_vectors, unsigned bar, Error **errp)
{
    if (d->msix_cap || nr_vectors == 0 || nr_vectors > MSIX_MAX_VECTORS) {
        error_setg(errp, "%s: invalid MSI-X set-up (%u vectors)", d->info.name, nr_vectors);
        return false;
    }
    uint32_t table_len = nr_vectors * MSIX_ENTRY_SIZE;
    uint32_t pba_offset = ROUND_UP(table_len, 0x800);
    uint32_t pba_len = ROUND_UP(nr_vectors, 64) / 8;
    uint64_t bar_size = 0x1000;
    while (bar_size < pba_offset + pba_len) {
        bar_size <<= 1;
    }
    if (!pci_bar_register(d, bar, PCI_BAR_MEM32, false, bar_size, &msix_bar_ops, d, errp)) {
        return false;
    }
    int cap = pci_capability_add(d, PCI_CAP_ID_MSIX, MSIX_CAP_SIZE, errp);
    if (cap < 0) {
        return false;
    }
    d->msix_cap = cap;
    d->msix_vectors = nr_vectors;
    d->msix_bar = bar;
    d->msix_pba_offset = pba_offset;
    d->msix_table = xzalloc(table_len);
    d->msix_pba = xzalloc(pba_len);
    d->msix_eventfds = xzalloc(nr_vectors * sizeof(MsixEventfd));
    for (unsigned v = 0; v < nr_vectors; v++) {
        d->msix_eventfds[v] = (MsixEventfd){ .dev = d, .vector = v, .fd = -1, .irqfd = -1 };
    }
    msix_reset_table(d);
    set16(d->config + cap + MSIX_FLAGS, nr_vectors - 1);
    set16(d->wmask + cap + MSIX_FLAGS, MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL);
    set32(d->config + cap + MSIX_TABLE, 0 | bar);
    set32(d->config + cap + MSIX_PBA, pba_offset | bar);
    return true;
}

/* ---- configuration space ---- */

static uint32_t config_read(PciDevice *d, unsigned off, unsigned size)
{
    uint32_t val = 0;
    for (unsigned i = 0; i < size; i++) {
        val |= (uint32_t)d->config[off + i] << (i * 8);
    }
    return val;
}

static void config_write(PciDevice *d, unsigned off, uint32_t val, unsigned size)
{
    bool msix_was_on = pci_msix_enabled(d) && !msix_function_masked(d);
    for (unsigned i = 0; i < size; i++) {
        uint8_t b = val >> (i * 8);
        unsigned o = off + i;
        d->config[o] = (d->config[o] & ~d->wmask[o]) | (b & d->wmask[o]);
        d->config[o] &= ~(b & d->w1cmask[o]);
    }
    if (ranges_touch(off, size, PCI_COMMAND, 2) ||
        ranges_touch(off, size, PCI_BASE_ADDRESS_0, PCI_NUM_BARS * 4)) {
        update_bars(d);
        update_intx(d);
    }
    if (d->msix_cap && (ranges_touch(off, size, d->msix_cap + MSIX_FLAGS, 2) ||
                        ranges_touch(off, size, PCI_COMMAND, 2))) {
        bool on = pci_msix_enabled(d) && !msix_function_masked(d);
        msix_eventfd_sync_all(d);
        if (on && !msix_was_on) {
            msix_flush_pending(d, 0, d->msix_vectors);
        }
    }
    if (d->info.config_written) {
        d->info.config_written(d, d->opaque, off, size);
    }
}

static PciDevice *addressed_device(PciHost *h, unsigned *reg)
{
    uint32_t a = h->config_address;
    unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 0x7;
    /* Bits 27:24 carry extended offsets (>= 256): conventional PCI has none. */
    unsigned ext = (a >> 24) & 0xf;
    if (!(a & CONFIG_ADDR_ENABLE) || bus != 0 || fn != 0 || ext) {
        return NULL;
    }
    /*
     * The latch keeps its two low bits, as QEMU's i440FX and Q35 do: they are
     * ORed with the data port offset, so a byte or word at an unaligned
     * register is reachable through either (libqos relies on the latch).
     */
    *reg = a & 0xff;
    return h->slots[slot];
}

/* Bytes of an access at @reg that stay inside configuration space. */
static unsigned config_access_size(unsigned reg, unsigned size)
{
    return MIN(size, PCI_CONFIG_SIZE - reg);
}

static uint64_t config_addr_read(void *opaque, uint64_t off, unsigned size)
{
    PciHost *h = opaque;
    return size == 4 ? h->config_address : UINT32_MAX >> (32 - size * 8);
}

static void config_addr_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    PciHost *h = opaque;
    if (size == 4) {
        h->config_address = value;  /* only dword accesses reach the address latch */
    }
}

static uint64_t config_data_read(void *opaque, uint64_t off, unsigned size)
{
    unsigned reg;
    PciDevice *d = addressed_device(opaque, &reg);
    if (!d || size > 4) {
        return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
    }
    reg |= off;
    return config_read(d, reg, config_access_size(reg, size));
}

static void config_data_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    unsigned reg;
    PciDevice *d = addressed_device(opaque, &reg);
    if (d && size <= 4) {
        reg |= off;
        config_write(d, reg, value, config_access_size(reg, size));
    }
}

static const IoOps config_addr_ops = { .read = config_addr_read, .write = config_addr_write };
static const IoOps config_data_ops = { .read = config_data_read, .write = config_data_write };

/* ---- devices ---- */

static void init_header(PciDevice *d)
{
    const PciDeviceInfo *i = &d->info;
    set16(d->config + PCI_VENDOR_ID, i->vendor_id);
    set16(d->config + PCI_DEVICE_ID, i->device_id);
    set32(d->config + PCI_CLASS_REVISION, i->class_code << 8 | i->revision);
    set16(d->config + PCI_SUBSYSTEM_VENDOR_ID, i->subsystem_vendor_id);
    set16(d->config + PCI_SUBSYSTEM_ID, i->subsystem_id);
    d->config[PCI_INTERRUPT_PIN] = i->intx_pin;
    if (i->intx_pin) {
        d->config[PCI_INTERRUPT_LINE] = d->host->cfg.intx_gsi(d->slot, i->intx_pin - 1);
    }
    set16(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                  0x0040 /* parity */ | 0x0100 /* SERR */ |
                                  PCI_COMMAND_INTX_DISABLE);
    set16(d->w1cmask + PCI_STATUS, 0xf900);     /* error bits */
    d->wmask[0x0c] = 0xff;                      /* cache line size */
    d->wmask[0x0d] = 0xff;                      /* latency timer */
    d->wmask[PCI_INTERRUPT_LINE] = 0xff;
    d->next_cap = PCI_HEADER_END;
}

PciDevice *pci_device_add(PciHost *h, int slot, const PciDeviceInfo *info,
                          void *opaque, Error **errp)
{
    if (slot < 0) {
        for (slot = 0; slot < PCI_MAX_SLOTS && h->slots[slot]; slot++) {
        }
    }
    if (slot >= PCI_MAX_SLOTS || h->slots[slot] || info->intx_pin > 4) {
        error_setg(errp, "PCI: no free slot for %s", info->name);
        return NULL;
    }
    PciDevice *d = xzalloc(sizeof(*d));
    d->host = h;
    d->slot = slot;
    d->info = *info;
    d->opaque = opaque;
    init_header(d);
    h->slots[slot] = d;
    return d;
}

static void device_reset(PciDevice *d)
{
    pci_set_irq(d, false);
    set16(d->config + PCI_COMMAND, 0);
    set16(d->config + PCI_STATUS, cfg_get16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST);
    /* BAR addresses are exactly their writable bits; the type bits stay. */
    for (unsigned off = PCI_BASE_ADDRESS_0; off < PCI_BASE_ADDRESS_0 + PCI_NUM_BARS * 4; off++) {
        d->config[off] &= ~d->wmask[off];
    }
    d->config[PCI_INTERRUPT_LINE] = d->info.intx_pin ?
        d->host->cfg.intx_gsi(d->slot, d->info.intx_pin - 1) : 0;
    update_bars(d);
    if (d->msi_cap) {
        set16(d->config + d->msi_cap + MSI_FLAGS, MSI_FLAGS_64BIT);
    }
    if (d->msix_cap) {
        set16(d->config + d->msix_cap + MSIX_FLAGS, d->msix_vectors - 1);
        msix_reset_table(d);
        msix_eventfd_sync_all(d);
    }
    if (d->info.reset) {
        d->info.reset(d, d->opaque);
    }
}

void pci_device_remove(PciDevice *d)
{
    if (!d) {
        return;
    }
    pci_set_irq(d, false);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        unmap_bar(&d->bars[i]);
    }
    d->host->slots[d->slot] = NULL;
    for (unsigned v = 0; d->msix_eventfds && v < d->msix_vectors; v++) {
        msix_eventfd_unbind(&d->msix_eventfds[v]);
    }
    free(d->msix_eventfds);
    free(d->msix_table);
    free(d->msix_pba);
    free(d);
}

unsigned pci_device_slot(const PciDevice *d)
{
    return d->slot;
}

uint8_t *pci_device_config(PciDevice *d)
{
    return d->config;
}

void pci_config_set_writable(PciDevice *d, unsigned offset, unsigned len)
{
    for (unsigned i = offset; i < offset + len && i < PCI_CONFIG_SIZE; i++) {
        d->wmask[i] = 0xff;
    }
}

/* ---- the host bridge ---- */

static const PciDeviceInfo host_bridge_info = {
    .name = "pci-host", .vendor_id = 0x1b36, .device_id = 0x0008,
    .subsystem_vendor_id = 0x1af4, .subsystem_id = 0x1100,
    .class_code = 0x060000,
};

PciHost *pci_host_create(const PciHostConfig *cfg, Error **errp)
{
    PciHost *h = xzalloc(sizeof(*h));
    h->cfg = *cfg;
    h->addr_io = io_region_add(AS_PIO, "pci-config-address", PCI_CONFIG_ADDRESS_PORT, 4,
                               &config_addr_ops, h, errp);
    h->data_io = h->addr_io ? io_region_add(AS_PIO, "pci-config-data", PCI_CONFIG_DATA_PORT, 4,
                                            &config_data_ops, h, errp) : NULL;
    if (!h->data_io || !pci_device_add(h, 0, &host_bridge_info, NULL, errp)) {
        pci_host_destroy(h);
        return NULL;
    }
    return h;
}

void pci_host_reset(PciHost *h)
{
    h->config_address = 0;
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
        if (h->slots[s]) {
            device_reset(h->slots[s]);
        }
    }
}

void pci_host_destroy(PciHost *h)
{
    if (!h) {
        return;
    }
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
        pci_device_remove(h->slots[s]);
    }
    io_region_del(h->addr_io);
    io_region_del(h->data_io);
    free(h);
}
