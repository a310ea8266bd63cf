/*
 * A PCI device of vireo's, on the real PCI host bridge, for fuzz targets
 * that act as the guest: configuration space through ports 0xcf8/0xcfc,
 * BARs through the port and MMIO dispatch, as KVM exits deliver them.
 */
#ifndef VIREO_FUZZ_PCI_DEV_H
#define VIREO_FUZZ_PCI_DEV_H

#include <stdint.h>

#include "core/vm-config.h"
#include "hw/pci.h"
#include "memory/guest-memory.h"

#define FPD_RAM_SIZE    (256u << 10)
#define FPD_IO_BAR0     0xc000u             /* legacy I/O BAR */
#define FPD_MMIO_BAR1   0xfe000000ull       /* MSI-X */
#define FPD_MMIO_BAR4   0xfe100000ull       /* modern virtio (64-bit) */

extern GuestMemory fpd_mem;

/* Guest RAM and the host bridge only (once; later calls return the same host). */
PciHost *fpd_init_bus(void);
/* Create guest RAM, the host bridge and the device (-device @opts); exits on error. */
void fpd_init(const char *opts);
/* The same with several -device strings (the first a PCI device, then for
 * instance its serial ports) and the -netdev/-object lists of @vmc. */
void fpd_init_devices(const VmConfig *vmc, const char *const *opts);
/* The device's slot (found by scanning the bus, as a guest would). */
unsigned fpd_slot(void);

uint32_t fpd_cfg_read(unsigned slot, unsigned off, unsigned size);
void fpd_cfg_write(unsigned slot, unsigned off, unsigned size, uint32_t val);
/* Power-on state (pci_host_reset), then BARs 0, 1 and 4 placed, I/O, memory
 * and bus mastering on. */
void fpd_reset_and_map(void);

uint64_t fpd_mmio_read(uint64_t addr, unsigned size);
void fpd_mmio_write(uint64_t addr, unsigned size, uint64_t val);
uint64_t fpd_pio_read(uint64_t addr, unsigned size);
void fpd_pio_write(uint64_t addr, unsigned size, uint64_t val);

#endif
