/*
 * PCI: one host bridge (bus 0, configuration mechanism #1 at 0xcf8/0xcfc)
 * and the API PCI devices (virtio-pci, ...) are built on.
 *
 * A device is added with its identity (PciDeviceInfo), then declares its
 * BARs and capabilities. The bridge owns configuration space: it keeps the
 * standard header, sizes BARs and maps each one into the PIO or MMIO
 * address space (machine/address-space.h) whenever the guest programs it
 * and enables decoding in the command register; a BAR's IoOps then see
 * offsets relative to the BAR. Interrupts: legacy INTx (wired to GSIs as
 * the ACPI _PRT says), MSI, and MSI-X with the table and PBA in a BAR the
 * bridge emulates. Everything runs under the big lock.
 *
 * Typical virtio-pci device:
 *     PciDevice *d = pci_device_add(host, -1, &info, me, errp);
 *     pci_bar_register(d, 4, PCI_BAR_MEM64, true, 0x4000, &regs_ops, me, errp);
 *     pci_msix_init(d, nr_queues + 1, 1, errp);
 *     int cap = pci_capability_add(d, PCI_CAP_ID_VENDOR, 16, errp);
 *     ... fill pci_device_config(d)[cap + 2 ...] ...
 *     later: pci_msix_notify(d, vector);  or  pci_set_irq(d, true/false);
 */
#ifndef VIREO_HW_PCI_H
#define VIREO_HW_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/address-space.h"
#include "util/error.h"

#define PCI_CONFIG_ADDRESS_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT    0xcfc
#define PCI_MAX_SLOTS           32
#define PCI_CONFIG_SIZE         256
#define PCI_NUM_BARS            6
#define PCI_BAR_UNMAPPED        UINT64_MAX

/* Standard header offsets used by devices. */
#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define PCI_STATUS              0x06
#define PCI_CLASS_REVISION      0x08
#define PCI_BASE_ADDRESS_0      0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID        0x2e
#define PCI_CAPABILITY_LIST     0x34
#define PCI_INTERRUPT_LINE      0x3c
#define PCI_INTERRUPT_PIN       0x3d

#define PCI_COMMAND_IO          0x0001
#define PCI_COMMAND_MEMORY      0x0002
#define PCI_COMMAND_MASTER      0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT    0x0008
#define PCI_STATUS_CAP_LIST     0x0010

#define PCI_CAP_ID_MSI          0x05
#define PCI_CAP_ID_VENDOR       0x09
#define PCI_CAP_ID_MSIX         0x11

typedef struct PciHost PciHost;
typedef struct PciDevice PciDevice;

typedef struct PciHostConfig {
    /* The GSI a slot's INTx pin (0 = INTA) drives; must match the ACPI _PRT. */
    unsigned (*intx_gsi)(unsigned slot, unsigned pin);
} PciHostConfig;

/* The bridge itself appears as device 00.0 (Red Hat 1b36:0008, host bridge class). */
PciHost *pci_host_create(const PciHostConfig *cfg, Error **errp);
void pci_host_destroy(PciHost *host);
/* Power-on state for every device: decoding off, BARs unmapped, MSI/MSI-X off. */
void pci_host_reset(PciHost *host);

typedef struct PciDeviceInfo {
    const char *name;           /* for error messages and region names */
    uint16_t vendor_id, device_id;
    uint16_t subsystem_vendor_id, subsystem_id;
    uint32_t class_code;        /* base class << 16 | subclass << 8 | prog-if */
    uint8_t revision;
    uint8_t intx_pin;           /* 0: no INTx, 1..4: INTA..INTD */
    /* Optional callbacks (opaque is the one given to pci_device_add): */
    void (*reset)(PciDevice *dev, void *opaque);
    /* After the bridge applied a guest write to [offset, offset+size). */
    void (*config_written)(PciDevice *dev, void *opaque, unsigned offset, unsigned size);
    /* The guest changed MSI-X vector's message or mask (irqfd users re-route). */
    void (*msix_vector_changed)(PciDevice *dev, void *opaque, unsigned vector);
} PciDeviceInfo;

/* slot -1 picks the first free one. */
PciDevice *pci_device_add(PciHost *host, int slot, const PciDeviceInfo *info,
                          void *opaque, Error **errp);
void pci_device_remove(PciDevice *dev);
unsigned pci_device_slot(const PciDevice *dev);
/* Raw configuration space, for device-specific fields (e.g. capability bodies). */
uint8_t *pci_device_config(PciDevice *dev);
/* Make config bytes [offset, offset+len) guest-writable (device-specific registers). */
void pci_config_set_writable(PciDevice *dev, unsigned offset, unsigned len);

typedef enum PciBarType {
    PCI_BAR_IO,                 /* port I/O, size 4 .. 256 */
    PCI_BAR_MEM32,
    PCI_BAR_MEM64,              /* takes bar and bar + 1 */
} PciBarType;

/* size: a power of two (at least 16 for memory, 4 for I/O). */
bool pci_bar_register(PciDevice *dev, unsigned bar, PciBarType type, bool prefetchable,
                      uint64_t size, const IoOps *ops, void *opaque, Error **errp);
/*
 * A 64-bit memory BAR that is host memory (ivshmem's shared memory): on KVM
 * it becomes a memory slot wherever the guest maps it, so accesses run at
 * memory speed; otherwise accesses are copied to and from hva. The memory
 * must stay mapped while the device exists. size: a power of two.
 */
bool pci_bar_register_ram(PciDevice *dev, unsigned bar, bool prefetchable, uint64_t size,
                          void *hva, Error **errp);
/* Where the guest mapped the BAR, or PCI_BAR_UNMAPPED. */
uint64_t pci_bar_address(const PciDevice *dev, unsigned bar);

/* Reserve size bytes for a capability and link it; returns its offset or -1. */
int pci_capability_add(PciDevice *dev, uint8_t cap_id, uint8_t size, Error **errp);

/* Legacy interrupt pin level (ignored while the guest set INTX_DISABLE). */
void pci_set_irq(PciDevice *dev, bool level);

/* MSI with one vector and a 64-bit address. */
bool pci_msi_init(PciDevice *dev, Error **errp);
bool pci_msi_enabled(const PciDevice *dev);
void pci_msi_notify(PciDevice *dev);

/* MSI-X: nr_vectors entries; the table (at 0) and PBA fill BAR `bar` (32-bit memory). */
bool pci_msix_init(PciDevice *dev, unsigned nr_vectors, unsigned bar, Error **errp);
bool pci_msix_enabled(const PciDevice *dev);
bool pci_msix_masked(const PciDevice *dev, unsigned vector);
/* The message a vector currently holds; false for a bad vector number. */
bool pci_msix_message(const PciDevice *dev, unsigned vector, uint64_t *addr, uint32_t *data);
/* Deliver vector now, or mark it pending while masked. */
void pci_msix_notify(PciDevice *dev, unsigned vector);

/*
 * Let an eventfd raise a vector: each signal is one pci_msix_notify, but
 * while the vector is deliverable it goes straight from the kernel to the
 * guest through an irqfd (KVM), re-routed whenever the guest rewrites the
 * message; while masked, signals become pending bits. Without an irqfd
 * back-end (qtest) vireo watches the eventfd itself. eventfd -1 unbinds.
 * The device keeps ownership of the descriptor.
 */
bool pci_msix_set_eventfd(PciDevice *dev, unsigned vector, int eventfd, Error **errp);

#endif
