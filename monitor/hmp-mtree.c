/*
 * info mtree: the guest's memory map as vireo's memory layer holds it, in
 * QEMU 7.2's line shape ("  START-END (prio P, KIND): NAME"). Two address
 * spaces: "memory" (guest RAM regions, shown as windows into the one RAM
 * block they are carved from, and every MMIO region a device decodes: PCI
 * BARs where the guest placed them, fw_cfg DMA...) and "I/O" (the port
 * regions). The RAM block follows as a memory-region of its own.
 *
 * What the accelerator emulates in the kernel (KVM's local APICs, IOAPIC,
 * PIC and PIT) is no region of vireo's and is not listed.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/vm-config.h"
#include "machine/machine.h"
#include "memory/address-space.h"
#include "monitor/hmp-commands.h"
#include "util/osdep.h"

typedef struct MapLine {
    uint64_t base, size;
    bool ram;
    char *name;             /* what follows "): " */
} MapLine;

typedef struct MapList {
    MapLine *lines;
    size_t n, cap;
} MapList;

static void add_line(MapList *l, uint64_t base, uint64_t size, bool ram, char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->lines = xrealloc(l->lines, l->cap * sizeof(*l->lines));
    }
    l->lines[l->n++] = (MapLine){ base, size, ram, name };
}

static void add_io_region(void *ctx, const char *name, uint64_t base, uint64_t size)
{
    if (size) {
        add_line(ctx, base, size, false, xstrdup(name));
    }
}

static int by_base(const void *a, const void *b)
{
    const MapLine *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

static void print_range(StrBuf *out, const char *indent, uint64_t base, uint64_t size,
                        const char *kind, const char *name)
{
    strbuf_printf(out, "%s%016" PRIx64 "-%016" PRIx64 " (prio 0, %s): %s\n",
                  indent, base, base + size - 1, kind, name);
}

static void print_list(StrBuf *out, MapList *l)
{
    if (l->n) {
        qsort(l->lines, l->n, sizeof(*l->lines), by_base);
    }
    for (size_t i = 0; i < l->n; i++) {
        print_range(out, "    ", l->lines[i].base, l->lines[i].size,
                    l->lines[i].ram ? "ram" : "i/o", l->lines[i].name);
        free(l->lines[i].name);
    }
    free(l->lines);
    *l = (MapList){ 0 };
}

/* The RAM block's name: its memory backend's id, or the board's default. */
static const char *ram_block_name(void)
{
    if (vm_config.ram_memdev) {
        return vm_config.ram_memdev;
    }
    return machine_board_of(&vm_config) == MACHINE_BOARD_NONE ? "ram" : "pc.ram";
}

void hmp_info_mtree(StrBuf *out, int argc, char **argv, Error **errp)
{
    (void)argc; (void)argv; (void)errp;
    const GuestMemory *mem = machine_guest_memory();
    const char *block = ram_block_name();
    MapList l = { 0 };

    strbuf_printf(out, "address-space: memory\n");
    strbuf_printf(out, "  %016" PRIx64 "-%016" PRIx64 " (prio 0, i/o): system\n",
                  (uint64_t)0, UINT64_MAX);
    for (int i = 0; mem && i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (!r->size) {
            continue;
        }
        add_line(&l, r->gpa, r->size, true,
                 xasprintf("alias %s @%s %016" PRIx64 "-%016" PRIx64,
                           r->gpa < (1ULL << 32) ? "ram-below-4g" : "ram-above-4g", block,
                           r->fd_offset, r->fd_offset + r->size - 1));
    }
    io_region_foreach(AS_MMIO, add_io_region, &l);
    print_list(out, &l);

    strbuf_printf(out, "\naddress-space: I/O\n");
    strbuf_printf(out, "  %016" PRIx64 "-%016" PRIx64 " (prio 0, i/o): io\n",
                  (uint64_t)0, (uint64_t)0xffff);
    io_region_foreach(AS_PIO, add_io_region, &l);
    print_list(out, &l);

    if (mem && mem->ram_size) {
        strbuf_printf(out, "\nmemory-region: %s\n", block);
        print_range(out, "  ", 0, mem->ram_size, "ram", block);
    }
    strbuf_printf(out, "\n");
}
