/* See fuzz-pci-dev.h. */
#include <stdio.h>
#include <stdlib.h>

#include "core/vm-config.h"
#include "hw/pci.h"
#include "memory/address-space.h"
#include "virtio/virtio-pci.h"
#include "fuzz-pci-dev.h"

GuestMemory fpd_mem;
static PciHost *host;
static unsigned slot = ~0u;

static unsigned intx_gsi(unsigned s, unsigned pin)
{
    return 16 + (s + pin) % 8;
}

static void die(const char *what, Error *err)
{
    fprintf(stderr, "fuzz-pci-dev: %s: %s\n", what, err ? error_get_pretty(err) : "failed");
    exit(1);
}

void fpd_init(const char *opts)
{
    static VmConfig vmc;
    const char *const list[] = { opts, NULL };
    fpd_init_devices(&vmc, list);
}

PciHost *fpd_init_bus(void)
{
    static const PciHostConfig cfg = { .intx_gsi = intx_gsi };
    Error *err = NULL;
    if (host) {
        return host;
    }
    if (!guest_memory_create_private(&fpd_mem, FPD_RAM_SIZE, FPD_RAM_SIZE, &err)) {
        die("guest RAM", err);
    }
    if (!(host = pci_host_create(&cfg, &err))) {
        die("PCI host", err);
    }
    return host;
}

void fpd_init_devices(const VmConfig *vmc, const char *const *opts)
{
    Error *err = NULL;
    fpd_init_bus();
    VirtioCreateContext ctx = { .cfg = vmc, .pci = host, .mem = &fpd_mem };
    for (; *opts; opts++) {
        if (!virtio_pci_create_device(&ctx, *opts, &err)) {
            die(*opts, err);
        }
    }
    for (unsigned s = 0; s < 32; s++) {
        if ((fpd_cfg_read(s, 0, 4) & 0xffff) == 0x1af4) {
            slot = s;
            break;
        }
    }
    if (slot == ~0u) {
        die("no virtio device on the bus", NULL);
    }
}

unsigned fpd_slot(void)
{
    return slot;
}

uint32_t fpd_cfg_read(unsigned s, unsigned off, unsigned size)
{
    uint64_t v;
    io_dispatch_write(AS_PIO, PCI_CONFIG_ADDRESS_PORT, 4,
                      0x80000000u | (s & 31) << 11 | (off & 0xfc));
    io_dispatch_read(AS_PIO, PCI_CONFIG_DATA_PORT + (off & 3), size, &v);
    return (uint32_t)v;
}

void fpd_cfg_write(unsigned s, unsigned off, unsigned size, uint32_t val)
{
    io_dispatch_write(AS_PIO, PCI_CONFIG_ADDRESS_PORT, 4,
                      0x80000000u | (s & 31) << 11 | (off & 0xfc));
    io_dispatch_write(AS_PIO, PCI_CONFIG_DATA_PORT + (off & 3), size, val);
}

void fpd_reset_and_map(void)
{
    pci_host_reset(host);
    fpd_cfg_write(slot, PCI_BASE_ADDRESS_0, 4, FPD_IO_BAR0);
    fpd_cfg_write(slot, PCI_BASE_ADDRESS_0 + 4, 4, (uint32_t)FPD_MMIO_BAR1);
    fpd_cfg_write(slot, PCI_BASE_ADDRESS_0 + 16, 4, (uint32_t)FPD_MMIO_BAR4);
    fpd_cfg_write(slot, PCI_BASE_ADDRESS_0 + 20, 4, (uint32_t)(FPD_MMIO_BAR4 >> 32));
    fpd_cfg_write(slot, PCI_COMMAND, 2,
                  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

uint64_t fpd_mmio_read(uint64_t addr, unsigned size)
{
    uint64_t v;
    io_dispatch_read(AS_MMIO, addr, size, &v);
    return v;
}

void fpd_mmio_write(uint64_t addr, unsigned size, uint64_t val)
{
    io_dispatch_write(AS_MMIO, addr, size, val);
}

uint64_t fpd_pio_read(uint64_t addr, unsigned size)
{
    uint64_t v;
    io_dispatch_read(AS_PIO, addr, size, &v);
    return v;
}

void fpd_pio_write(uint64_t addr, unsigned size, uint64_t val)
{
    io_dispatch_write(AS_PIO, addr, size, val);
}
