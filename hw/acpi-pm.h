/*
 * ACPI fixed hardware: the PM1a event block (status, enable) and the PM1a
 * control block, in one port window. There is no PM timer: guests have
 * kvmclock, and every timer read would be a VM exit. The guest powers
 * off by writing SLP_TYP = ACPI_PM_SLP_TYP_S5 with SLP_EN; the power
 * button sets PWRBTN_STS and raises the SCI when the guest enabled it.
 * The window layout is what machine/acpi.c writes into the FADT.
 *
 * General-purpose events: one GPE0 block (status bytes, then enable
 * bytes) at ACPI_GPE0_IO_BASE, as on QEMU's PIIX4; a status bit set
 * while its enable bit is set raises the SCI. Bit ACPI_GPE_PCI_HOTPLUG
 * runs the DSDT's \_GPE._E01 (PCI hotplug, hw/pci-hotplug.h).
 */
#ifndef VIREO_HW_ACPI_PM_H
#define VIREO_HW_ACPI_PM_H

#include <stdint.h>

#include "util/error.h"

#define ACPI_PM_IO_BASE     0x600
#define ACPI_PM_IO_SIZE     6
#define ACPI_PM1_EVT_OFFSET 0       /* status (2 bytes) then enable (2 bytes) */
#define ACPI_PM1_EVT_LEN    4
#define ACPI_PM1_CNT_OFFSET 4
#define ACPI_PM1_CNT_LEN    2
#define ACPI_SCI_GSI        9
#define ACPI_GPE0_IO_BASE   0xafe0
#define ACPI_GPE0_LEN       4       /* 2 status bytes, 2 enable bytes */
#define ACPI_GPE_PCI_HOTPLUG 1

/* The SLP_TYP value the DSDT's \_S5 package names. */
#define ACPI_PM_SLP_TYP_S5  5

typedef struct AcpiPm AcpiPm;

typedef struct AcpiPmOps {
    void (*power_off)(void *opaque);    /* the guest entered S5 */
    void *opaque;
} AcpiPmOps;

AcpiPm *acpi_pm_create(uint16_t io_base, unsigned sci_gsi, const AcpiPmOps *ops,
                       Error **errp);
void acpi_pm_destroy(AcpiPm *pm);
void acpi_pm_reset(AcpiPm *pm);
/* Press the power button (system_powerdown). */
void acpi_pm_power_button(AcpiPm *pm);
/* Set GPE0 status bit (0..15); the SCI follows status & enable. */
void acpi_pm_gpe_raise(AcpiPm *pm, unsigned bit);

#endif
