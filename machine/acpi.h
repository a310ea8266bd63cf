/*
 * ACPI tables for the vireo x86 machine, built at start-up and copied into
 * guest RAM at ACPI_TABLES_ADDR: RSDP, XSDT, FADT (+FACS), MADT and a DSDT
 * describing the PCI host bridge (with hotpluggable slots and the GPE
 * handler that notifies them), serial ports, RTC and fw_cfg.
 */
#ifndef VIREO_MACHINE_ACPI_H
#define VIREO_MACHINE_ACPI_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/guest-memory.h"
#include "util/error.h"

#define ACPI_MAX_SERIAL 4

typedef struct AcpiSerialPort {
    uint16_t io_base;
    uint8_t irq;
} AcpiSerialPort;

typedef struct AcpiConfig {
    unsigned nr_cpus;
    AcpiSerialPort serial[ACPI_MAX_SERIAL];
    unsigned nr_serial;
    bool has_pci;               /* host bridge with config mechanism #1 */
    unsigned pci_slots;         /* _PRT entries for slots 0..pci_slots-1 */
    uint16_t fw_cfg_port;       /* 0: no fw_cfg */
    uint16_t pci_hotplug_port;  /* ACPI PCI hotplug registers (hw/pci-hotplug.h); 0: none */
} AcpiConfig;

/* Build the tables, write them to guest RAM; returns the RSDP address (0 on error). */
uint64_t acpi_build_tables(const AcpiConfig *cfg, const GuestMemory *mem, Error **errp);

/* The GSI a PCI slot's INTx pin (0 = INTA) is wired to; matches the DSDT _PRT. */
unsigned acpi_pci_intx_gsi(unsigned slot, unsigned pin);

#endif
