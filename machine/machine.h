/*
 * The vireo x86-64 machine ("vireo-pc"): what core/main.c calls to build,
 * run and tear down the virtual machine.
 *
 * Call order in main.c:
 *   1. parse the command line into vm_config; answer -machine help with
 *      machine_list_types() and reject unknown types with machine_type_valid();
 *   2. main_loop_init(); chardevs from -chardev (serial "chardev:ID" finds them);
 *   3. after --preconfig's x-exit-preconfig: machine_init(&vm_config, errp)
 *      (RAM, devices, ACPI, kernel; under KVM the vCPUs exist but are parked);
 *   4. machine_start() (vCPU threads), then vm_start() unless -S;
 *   5. main_loop_run(); the machine registers a reset handler (it holds and
 *      reloads its vCPUs by itself) and a powerdown handler (ACPI button);
 *   6. machine_cleanup() before exit (joins vCPU threads; big lock may be held).
 */
#ifndef VIREO_MACHINE_MACHINE_H
#define VIREO_MACHINE_MACHINE_H

#include <stdbool.h>
#include <stdio.h>

#include "core/vm-config.h"
#include "memory/guest-memory.h"
#include "util/error.h"

/* The PC board's name; "pc" and "vireo-pc" are aliases (machine-types.c). */
#define MACHINE_DEFAULT_TYPE "pc-i440fx-7.2"

/* The boards behind the machine type names. */
typedef enum MachineBoard {
    MACHINE_BOARD_PC,       /* pc-i440fx-7.2: RAM, legacy devices, pci.0, ACPI, kernel */
    MACHINE_BOARD_NONE,     /* no devices, no vCPUs; RAM only when -m is given */
} MachineBoard;

typedef struct MachineType {
    const char *name;
    const char *alias_of;   /* the type this name stands for, or NULL */
    const char *desc;
    MachineBoard board;
    unsigned max_cpus;
} MachineType;

/* -machine help: "Supported machines are:" and one line per type. */
void machine_list_types(FILE *out);
/* The type called name (or an alias of it); NULL: the default type. */
const MachineType *machine_type_find(const char *name);
/* NULL (the default) counts as valid. */
bool machine_type_valid(const char *type);
/* The board cfg asks for (an unknown type counts as the default). */
MachineBoard machine_board_of(const VmConfig *cfg);
/* Does the machine in cfg run vCPUs (a KVM accelerator and a board with CPUs)? */
bool machine_runs_vcpus(const VmConfig *cfg);

/*
 * Build the machine. cfg->accel "kvm" or NULL: a KVM VM with vCPUs, which
 * needs -kernel; "qtest": RAM and devices only (the qtest accelerator
 * installs its own interrupt back-end and drives the devices).
 */
bool machine_init(VmConfig *cfg, Error **errp);
/*
 * Start the vCPU threads (no-op under qtest); they enter the guest when the
 * run state is "running" (vm_start). A failure is reported and ends the VM.
 */
void machine_start(void);
void machine_cleanup(void);

GuestMemory *machine_guest_memory(void);
/* The host thread running vCPU index; 0 when none runs it (yet). */
int machine_vcpu_tid(unsigned index);

/*
 * device_add: create a device from its -device option string (driver is its
 * type) while the machine exists; a PCI device is announced to the guest
 * through ACPI PCI hotplug.
 */
bool machine_device_add(const char *opts, const char *driver, Error **errp);
/*
 * device_del: a PCI device is offered to the guest for ejection (it goes,
 * with DEVICE_DELETED, when the guest ejects it); others go at once.
 */
struct Device;
bool machine_device_del(struct Device *dev, Error **errp);

/* Can this host run a KVM guest at all (for choosing the default accelerator)? */
bool kvm_can_run_guest(void);

/* RTC_CHANGE's qom-path if the device tree could not name the RTC. */
#define MACHINE_RTC_QOM_PATH "/machine/unattached/device[0]"

#endif
