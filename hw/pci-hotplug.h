/*
 * ACPI PCI hotplug for bus 0, with the register block QEMU's PIIX4 machine
 * offers its DSDT at 0xae00 (all registers 32-bit, one bit per slot):
 *   +0x00 up      (read)   slots the guest should check for a new device;
 *                          reading clears it
 *   +0x04 down    (read)   slots whose device management asked to remove
 *   +0x08 eject   (write)  the guest's _EJ0: eject the devices of these slots
 *   +0x0c removable (read) slots that take hotplug
 *   +0x10 bus select (r/w) only bus 0 exists
 *   +0x14 acpi-index (read) 0: no ACPI index
 * A change of up or down sets the PCI hotplug GPE (hw/acpi-pm.h), whose
 * handler in the DSDT reads up/down and notifies the slots' ACPI devices.
 */
#ifndef VIREO_HW_PCI_HOTPLUG_H
#define VIREO_HW_PCI_HOTPLUG_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/acpi-pm.h"
#include "util/error.h"

#define PCI_HOTPLUG_IO_BASE     0xae00
#define PCI_HOTPLUG_IO_SIZE     0x18
#define PCI_HOTPLUG_UP          0x00
#define PCI_HOTPLUG_DOWN        0x04
#define PCI_HOTPLUG_EJECT       0x08
#define PCI_HOTPLUG_REMOVABLE   0x0c
#define PCI_HOTPLUG_BUS_SELECT  0x10
#define PCI_HOTPLUG_ACPI_INDEX  0x14
/* Slot 0 is the host bridge; every other slot of bus 0 takes hotplug. */
#define PCI_HOTPLUG_SLOTS_MASK  0xfffffffeu

typedef struct PciHotplug PciHotplug;

typedef struct PciHotplugOps {
    /* The guest ejected slot; called from the main loop, never from a vCPU exit. */
    void (*eject)(void *opaque, unsigned slot);
    void *opaque;
} PciHotplugOps;

PciHotplug *pci_hotplug_create(uint16_t io_base, AcpiPm *pm, const PciHotplugOps *ops,
                               Error **errp);
void pci_hotplug_destroy(PciHotplug *hp);
void pci_hotplug_reset(PciHotplug *hp);
/* A device arrived in slot: tell the guest (up bit, GPE). */
void pci_hotplug_plugged(PciHotplug *hp, unsigned slot);
/* Ask the guest to eject the device in slot (down bit, GPE). */
void pci_hotplug_request_unplug(PciHotplug *hp, unsigned slot);
/* The device in slot is gone (ejected or removed otherwise): forget its bits. */
void pci_hotplug_slot_cleared(PciHotplug *hp, unsigned slot);

#endif
