#include "core/runstate.h"

#include <stdlib.h>

#include "core/main-loop.h"
#include "qapi/qapi-events.h"
#include "util/osdep.h"

bool no_reboot;
bool no_shutdown;

static RunState current_state = RUN_STATE_PRELAUNCH;
static VcpuControl vcpu_control;

typedef struct Handler {
    void (*fn)(void *opaque);
    void *opaque;
    struct Handler *next;
} Handler;

static Handler *reset_handlers, **reset_tail = &reset_handlers;
static Handler *start_handlers, **start_tail = &start_handlers;
static Handler *stop_handlers, **stop_tail = &stop_handlers;
static Handler powerdown_handler;

RunState runstate_get(void)
{
    return current_state;
}

void runstate_set(RunState state)
{
    current_state = state;
}

bool runstate_is_running(void)
{
    return current_state == RUN_STATE_RUNNING;
}

void runstate_set_vcpu_control(const VcpuControl *ctl)
{
    vcpu_control = *ctl;
}

void vm_stop(RunState reason)
{
    if (!runstate_is_running()) {
        /* Already stopped: only the recorded reason may change. */
        if (current_state != RUN_STATE_PRECONFIG) {
            current_state = reason;
        }
        return;
    }
    if (vcpu_control.pause_all) {
        vcpu_control.pause_all(vcpu_control.opaque);
    }
    clock_virtual_pause();
    current_state = reason;
    for (Handler *h = stop_handlers; h; h = h->next) {
        h->fn(h->opaque);
    }
    qapi_event_send_stop();
}

void vm_start(void)
{
    if (runstate_is_running()) {
        return;
    }
    current_state = RUN_STATE_RUNNING;
    for (Handler *h = start_handlers; h; h = h->next) {
        h->fn(h->opaque);
    }
    clock_virtual_resume();
    if (vcpu_control.resume_all) {
        vcpu_control.resume_all(vcpu_control.opaque);
    }
    qapi_event_send_resume();
}

static bool cause_is_guest(ShutdownCause cause)
{
    return cause == SHUTDOWN_CAUSE_GUEST_SHUTDOWN || cause == SHUTDOWN_CAUSE_GUEST_RESET ||
           cause == SHUTDOWN_CAUSE_GUEST_PANIC;
}

static void do_shutdown(void *opaque)
{
    ShutdownCause cause = (ShutdownCause)(intptr_t)opaque;
    qapi_event_send_shutdown(cause_is_guest(cause), cause);
    if (no_shutdown && cause != SHUTDOWN_CAUSE_HOST_QMP_QUIT &&
        cause != SHUTDOWN_CAUSE_HOST_SIGNAL) {
        vm_stop(RUN_STATE_SHUTDOWN);
        return;
    }
    main_loop_quit(0);
}

void system_shutdown_request(ShutdownCause cause)
{
    main_loop_schedule(do_shutdown, (void *)(intptr_t)cause);
}

static void do_reset(void *opaque)
{
    ShutdownCause cause = (ShutdownCause)(intptr_t)opaque;
    /* -no-reboot turns every reset but a subsystem's into a shutdown, as QEMU does. */
    if (no_reboot && cause != SHUTDOWN_CAUSE_SUBSYSTEM_RESET) {
        do_shutdown(opaque);
        return;
    }
    bool was_running = runstate_is_running();
    if (was_running && vcpu_control.pause_all) {
        vcpu_control.pause_all(vcpu_control.opaque);
    }
    for (Handler *h = reset_handlers; h; h = h->next) {
        h->fn(h->opaque);
    }
    qapi_event_send_reset(cause_is_guest(cause), cause);
    if (current_state == RUN_STATE_SHUTDOWN) {
        /* A reset after -no-shutdown stopped the VM brings it back to life. */
        vm_start();
    } else if (was_running && vcpu_control.resume_all) {
        vcpu_control.resume_all(vcpu_control.opaque);
    }
}

void system_reset_request(ShutdownCause cause)
{
    main_loop_schedule(do_reset, (void *)(intptr_t)cause);
}

static void do_powerdown(void *opaque)
{
    qapi_event_send_powerdown();
    if (powerdown_handler.fn) {
        powerdown_handler.fn(powerdown_handler.opaque);
    }
}

void system_powerdown_request(void)
{
    main_loop_schedule(do_powerdown, NULL);
}

static void add_handler(Handler ***tail, void (*fn)(void *opaque), void *opaque)
{
    Handler *h = xzalloc(sizeof(*h));
    h->fn = fn;
    h->opaque = opaque;
    **tail = h;
    *tail = &h->next;
}

void register_reset_handler(void (*fn)(void *opaque), void *opaque)
{
    add_handler(&reset_tail, fn, opaque);
}

void register_vm_start_handler(void (*fn)(void *opaque), void *opaque)
{
    add_handler(&start_tail, fn, opaque);
}

void register_vm_stop_handler(void (*fn)(void *opaque), void *opaque)
{
    add_handler(&stop_tail, fn, opaque);
}

void register_powerdown_handler(void (*fn)(void *opaque), void *opaque)
{
    powerdown_handler.fn = fn;
    powerdown_handler.opaque = opaque;
}
