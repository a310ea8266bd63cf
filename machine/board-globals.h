/*
 * -global for the devices the PC board builds itself, under QEMU's type
 * names, with the properties vireo really has:
 *   kvm-pit.lost_tick_policy   delay (the in-kernel PIT re-injects missed
 *                              ticks, KVM's default) or discard (it does not)
 *   PIIX4_PM.disable_s3 / disable_s4
 *                              vireo's ACPI PM block (hw/acpi-pm.c: PM1 and
 *                              GPE registers as on a PIIX4, not a PCI
 *                              function) offers no S3 or S4 sleep state, so
 *                              only a non-zero value (disabled) is accepted
 *   isa-serial                 refused: the UARTs are set up from -serial and
 *                              -device isa-serial as the command line is read
 * The same tables answer device-list-properties for these types. A global
 * naming another property of these types fails as QEMU's does.
 */
#ifndef VIREO_MACHINE_BOARD_GLOBALS_H
#define VIREO_MACHINE_BOARD_GLOBALS_H

#include <stdbool.h>

#include "util/error.h"
#include "util/keyval.h"

typedef struct BoardGlobals {
    bool pit_reinject;      /* kvm-pit.lost_tick_policy=delay */
} BoardGlobals;

/*
 * The -global settings of the board's devices; kvm: the in-kernel PIT
 * exists; serial: the board has a UART (isa-serial globals are refused).
 */
bool board_globals_read(bool kvm, bool serial, BoardGlobals *out, Error **errp);

const OptParam *kvm_pit_params(void);
const OptParam *piix4_pm_params(void);

#endif
