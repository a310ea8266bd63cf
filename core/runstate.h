/*
 * VM run state (QAPI RunState): prelaunch, preconfig, running, paused,
 * shutdown, ... and the requests that change it. stop/cont/quit from the
 * monitor, guest shutdown and reset from devices all come through here, so
 * the STOP/RESUME/SHUTDOWN/RESET/POWERDOWN events are sent in one place.
 */
#ifndef VIREO_CORE_RUNSTATE_H
#define VIREO_CORE_RUNSTATE_H

#include <stdbool.h>

#include "qapi/qapi-types.h"

RunState runstate_get(void);
void runstate_set(RunState state);
bool runstate_is_running(void);

/* What the accelerator does to pause and resume its vCPUs. */
typedef struct VcpuControl {
    void (*pause_all)(void *opaque);    /* returns once every vCPU is out of the guest */
    void (*resume_all)(void *opaque);
    void *opaque;
} VcpuControl;
void runstate_set_vcpu_control(const VcpuControl *ctl);

/* Monitor-level transitions. */
void vm_stop(RunState reason);          /* sends STOP if it was running */
void vm_start(void);                    /* sends RESUME */

/*
 * Requests from any thread (a vCPU exiting on a reset port write, the ACPI
 * PM device, a signal handler). They are acted on by the main loop.
 */
void system_shutdown_request(ShutdownCause cause);
void system_reset_request(ShutdownCause cause);
void system_powerdown_request(void);

/* Reset handlers run, in registration order, on every system reset. */
void register_reset_handler(void (*fn)(void *opaque), void *opaque);
/* Called by vm_start() before the vCPUs resume, in registration order. */
void register_vm_start_handler(void (*fn)(void *opaque), void *opaque);
/* Called by vm_stop() once the vCPUs are paused, in registration order
 * (back-ends that run rings outside vireo take them back). */
void register_vm_stop_handler(void (*fn)(void *opaque), void *opaque);
/* The machine's power button (ACPI), pressed by system_powerdown. */
void register_powerdown_handler(void (*fn)(void *opaque), void *opaque);

/* -no-reboot / -no-shutdown */
extern bool no_reboot;
extern bool no_shutdown;

#endif
