/*
 * ACPI PCI hotplug register block. See hw/pci-hotplug.h.
 */
#include "hw/pci-hotplug.h"

#include <stdlib.h>

#include "core/main-loop.h"
#include "memory/address-space.h"
#include "util/osdep.h"

struct PciHotplug {
    IoRegion *io;
    AcpiPm *pm;
    PciHotplugOps ops;
    uint32_t up, down;
    uint32_t bus_select;
    uint32_t eject_pending;     /* written by the guest, served by the main loop */
    bool eject_scheduled;
};

static uint32_t reg_read(PciHotplug *hp, unsigned reg)
{
    if (hp->bus_select != 0 && reg != PCI_HOTPLUG_BUS_SELECT) {
        return 0;               /* no other bus has slots */
    }
    switch (reg) {
    case PCI_HOTPLUG_UP: {
        uint32_t v = hp->up;
        hp->up = 0;
        return v;
    }
    case PCI_HOTPLUG_DOWN:
        return hp->down;
    case PCI_HOTPLUG_REMOVABLE:
        return PCI_HOTPLUG_SLOTS_MASK;
    case PCI_HOTPLUG_BUS_SELECT:
        return hp->bus_select;
    default:
        return 0;               /* eject reads 0; no ACPI indexes */
    }
}

/* The registers are 32 bits wide; narrower accesses see their bytes. */
static uint64_t hp_read(void *opaque, uint64_t offset, unsigned size)
{
    unsigned reg = offset & ~3u, shift = (offset & 3) * 8;
    uint64_t v = reg_read(opaque, reg) >> shift;
    return size >= 4 ? v : v & ((1u << (size * 8)) - 1);
}

static void run_ejects(void *opaque)
{
    PciHotplug *hp = opaque;
    hp->eject_scheduled = false;
    while (hp->eject_pending) {
        unsigned slot = __builtin_ctz(hp->eject_pending);
        hp->eject_pending &= ~(1u << slot);
        hp->down &= ~(1u << slot);
        if (hp->ops.eject) {
            hp->ops.eject(hp->ops.opaque, slot);
        }
    }
}

static void hp_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    PciHotplug *hp = opaque;
    unsigned reg = offset & ~3u;
    uint32_t v = (uint32_t)(value << ((offset & 3) * 8));
    if (reg == PCI_HOTPLUG_BUS_SELECT) {
        hp->bus_select = v;
        return;
    }
    if (reg != PCI_HOTPLUG_EJECT || hp->bus_select != 0) {
        return;                 /* the other registers are read-only */
    }
    v &= PCI_HOTPLUG_SLOTS_MASK;
    if (!v) {
        return;
    }
    /* Tearing a device down is main-loop work: a vCPU exit only records it. */
    hp->eject_pending |= v;
    if (!hp->eject_scheduled) {
        hp->eject_scheduled = true;
        main_loop_schedule(run_ejects, hp);
    }
}

static const IoOps hp_ops = { .read = hp_read, .write = hp_write };

PciHotplug *pci_hotplug_create(uint16_t io_base, AcpiPm *pm, const PciHotplugOps *ops,
                               Error **errp)
{
    PciHotplug *hp = xzalloc(sizeof(*hp));
    hp->pm = pm;
    hp->ops = *ops;
    hp->io = io_region_add(AS_PIO, "acpi-pci-hotplug", io_base, PCI_HOTPLUG_IO_SIZE,
                           &hp_ops, hp, errp);
    if (!hp->io) {
        free(hp);
        return NULL;
    }
    return hp;
}

void pci_hotplug_destroy(PciHotplug *hp)
{
    if (!hp) {
        return;
    }
    io_region_del(hp->io);
    hp->io = NULL;
    hp->ops.eject = NULL;
    if (hp->eject_scheduled) {
        return;         /* run_ejects still holds it; the process is ending */
    }
    free(hp);
}

/*
 * At reset the guest rescans the bus from scratch, so nothing is left to
 * announce; a device waiting for its eject stays until the guest (or the
 * next OS after reset) ejects it, as on QEMU.
 */
void pci_hotplug_reset(PciHotplug *hp)
{
    hp->up = 0;
    hp->bus_select = 0;
}

void pci_hotplug_plugged(PciHotplug *hp, unsigned slot)
{
    if (slot < 32) {
        hp->up |= 1u << slot;
        hp->down &= ~(1u << slot);
        acpi_pm_gpe_raise(hp->pm, ACPI_GPE_PCI_HOTPLUG);
    }
}

void pci_hotplug_request_unplug(PciHotplug *hp, unsigned slot)
{
    if (slot < 32) {
        hp->down |= 1u << slot;
        acpi_pm_gpe_raise(hp->pm, ACPI_GPE_PCI_HOTPLUG);
    }
}

void pci_hotplug_slot_cleared(PciHotplug *hp, unsigned slot)
{
    if (slot < 32) {
        hp->up &= ~(1u << slot);
        hp->down &= ~(1u << slot);
        hp->eject_pending &= ~(1u << slot);
    }
}
