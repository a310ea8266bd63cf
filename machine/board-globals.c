/*
 * -global for the PC board's own devices: see machine/board-globals.h.
 */
#include "machine/board-globals.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"

/* -device isa-serial's table (core/options-compat.c) */
const OptParam *isa_serial_params_table(void);

static const OptParam kvm_pit[] = {
    { "lost_tick_policy", OPT_STRING, "delay or discard (missed PIT ticks)", "delay" },
    { NULL },
};

static const OptParam piix4_pm[] = {
    { "disable_s3", OPT_NUMBER, "S3 (suspend to RAM) off: vireo has none", "1" },
    { "disable_s4", OPT_NUMBER, "S4 (suspend to disk) off: vireo has none", "1" },
    { NULL },
};

const OptParam *kvm_pit_params(void)
{
    return kvm_pit;
}

const OptParam *piix4_pm_params(void)
{
    return piix4_pm;
}

static bool read_pit(BoardGlobals *out, Error **errp)
{
    if (!globals_check_board("kvm-pit", kvm_pit, errp)) {
        return false;
    }
    const char *v = global_value("kvm-pit", "lost_tick_policy");
    if (!v || !strcmp(v, "delay")) {
        out->pit_reinject = true;
    } else if (!strcmp(v, "discard")) {
        out->pit_reinject = false;
    } else if (!strcmp(v, "slew")) {
        error_setg(errp, "kvm-pit: Unsupported lost tick policy.");
        return false;
    } else {
        error_setg(errp, "can't apply global kvm-pit.lost_tick_policy=%s: Parameter "
                   "'lost_tick_policy' does not accept value '%s'", v, v);
        return false;
    }
    return true;
}

static bool read_sleep_state(const char *prop, const char *state, Error **errp)
{
    const char *v = global_value("PIIX4_PM", prop);
    if (!v) {
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 0);
    if (!*v || *end || errno) {
        error_setg(errp, "can't apply global PIIX4_PM.%s=%s: Parameter '%s' expects uint64",
                   prop, v, prop);
        return false;
    }
    if (v[0] == '-' || n > 255) {
        error_setg(errp, "can't apply global PIIX4_PM.%s=%s: Parameter '%s' expects uint8_t",
                   prop, v, prop);
        return false;
    }
    if (n == 0) {
        error_setg(errp, "can't apply global PIIX4_PM.%s=%s: vireo's ACPI has no %s sleep "
                   "state", prop, v, state);
        return false;
    }
    return true;
}

/*
 * The UARTs are set up from -serial and -device isa-serial when the command
 * line is read, before -global is known: a default for them has no place to
 * go, so it is refused rather than dropped.
 */
static bool check_serial(Error **errp)
{
    if (!globals_check_board("isa-serial", isa_serial_params_table(), errp)) {
        return false;
    }
    const OptParam *p = isa_serial_params_table();
    for (; p->name; p++) {
        const char *v = global_value("isa-serial", p->name);
        if (v) {
            error_setg(errp, "can't apply global isa-serial.%s=%s: vireo's UARTs take their "
                       "settings from -serial or -device isa-serial only", p->name, v);
            return false;
        }
    }
    return true;
}

bool board_globals_read(bool kvm, bool serial, BoardGlobals *out, Error **errp)
{
    out->pit_reinject = true;
    /* QEMU applies a global only to a device that is built: kvm-pit needs KVM */
    if ((kvm && !read_pit(out, errp)) || (serial && !check_serial(errp))) {
        return false;
    }
    return globals_check_board("PIIX4_PM", piix4_pm, errp) &&
           read_sleep_state("disable_s3", "S3 (suspend to RAM)", errp) &&
           read_sleep_state("disable_s4", "S4 (suspend to disk)", errp);
}
