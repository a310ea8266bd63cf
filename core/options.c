#include "core/options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chardev/chardev-internal.h"
#include "config.h"
#include "core/iothread.h"
#include "core/runstate.h"
#include "core/secret.h"
#include "core/vm-config.h"
#include "memory/host-backend.h"
#include "qapi/qapi-commands.h"
#include "sandbox/sandbox.h"
#include "util/keyval.h"
#include "util/osdep.h"

VmConfig vm_config = {
    .ram_size = 128ULL << 20, .smp_cpus = 1,
    .boot_splash_time = -1, .boot_reboot_timeout = -1,
};
StartupOptions startup;

/* ---- parameter tables of key=value options ---- */

static const OptParam name_params[] = {
    { "guest", OPT_STRING, "the VM name" },
    { "process", OPT_STRING, "host process name (accepted, not applied)" },
    { "debug-threads", OPT_BOOL, "name host threads after their role", "off" },
    { NULL },
};
static const OptParam mon_params[] = {
    { "chardev", OPT_STRING, "id of the character device to serve on" },
    { "mode", OPT_STRING, "control (QMP) or readline (HMP)", "readline" },
    { "pretty", OPT_BOOL, "indent QMP replies", "off" },
    { "id", OPT_STRING, "the monitor's id" },
    { NULL },
};
static const OptParam add_fd_params[] = {
    { "fd", OPT_NUMBER, "descriptor inherited from the parent process" },
    { "set", OPT_NUMBER, "fd set to add it to" },
    { "opaque", OPT_STRING, "free-form text kept with it" },
    { NULL },
};
static const OptParam machine_params[] = {
    { "type", OPT_STRING, "machine type" },
    { "accel", OPT_STRING, "accelerator: kvm or qtest" },
    { "memory-backend", OPT_STRING, "ID of a memory backend used as guest RAM" },
    { "usb", OPT_BOOL, "USB controller (only off)", "off" },
    { "dump-guest-core", OPT_BOOL, "guest RAM in core dumps (only off)", "off" },
    { "acpi", OPT_STRING, "ACPI tables: on, off or auto", "auto" },
    { NULL },
};
static const OptParam numa_params[] = {
    { "type", OPT_STRING, "node" },
    { "memdev", OPT_STRING, "ID of the memory backend of this node" },
    { "nodeid", OPT_NUMBER, "node number (only node 0)" },
    { "cpus", OPT_STRING, "vCPUs of this node (all of them)" },
    { NULL },
};
static const OptParam accel_params[] = {
    { "accel", OPT_STRING, "accelerator: kvm or qtest" },
    { NULL },
};
static const OptParam memory_params[] = {
    { "size", OPT_SIZE, "RAM size", "128M" },
    { NULL },
};
static const OptParam smp_params[] = {
    { "cpus", OPT_NUMBER, "number of vCPUs", "1" },
    { "maxcpus", OPT_NUMBER, "maximum vCPUs (must equal cpus)" },
    { "sockets", OPT_NUMBER, "sockets" },
    { "cores", OPT_NUMBER, "cores per socket" },
    { "threads", OPT_NUMBER, "threads per core" },
    { NULL },
};
static const OptParam rtc_params[] = {
    { "base", OPT_STRING, "utc, localtime or a date (2006-06-17T16:01:21)", "utc" },
    { "clock", OPT_STRING, "host, rt or vm", "host" },
    { "driftfix", OPT_STRING, "none or slew (accepted, not applied)" },
    { NULL },
};
static const OptParam fw_cfg_params[] = {
    { "name", OPT_STRING, "item name (opt/... for user items)" },
    { "file", OPT_STRING, "file whose contents become the item" },
    { "string", OPT_STRING, "string that becomes the item" },
    { NULL },
};
static const OptParam boot_params[] = {
    { "menu", OPT_BOOL, "ask firmware for a boot menu", "off" },
    { "splash-time", OPT_NUMBER, "how long firmware shows its boot menu (ms)" },
    { "reboot-timeout", OPT_STRING, "ms before firmware retries a failed boot (-1: never)", "-1" },
    { "strict", OPT_BOOL, "boot only from listed devices (vireo boots -kernel, nothing else)",
      "off" },
    { NULL },
};
static const OptParam free_form_params[] = { { NULL } };

/* ---- handlers ---- */

static bool opt_name(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "guest", name_params, &kv, errp)) {
        return false;
    }
    const char *guest = keyval_get(&kv, "guest");
    free(vm_config.name);
    vm_config.name = guest ? xstrdup(guest) : NULL;
    keyval_free(&kv);
    return true;
}

static void add_monitor(const char *chardev, bool legacy, bool qmp, bool pretty)
{
    MonitorSpec *m = xzalloc(sizeof(*m));
    m->chardev = xstrdup(chardev);
    m->legacy = legacy;
    m->qmp = qmp;
    m->pretty = pretty;
    MonitorSpec **p = &startup.monitors;
    while (*p) {
        p = &(*p)->next;
    }
    *p = m;
}

static bool opt_qmp(const char *arg, Error **errp)
{
    add_monitor(arg, true, true, false);
    return true;
}

static bool opt_qmp_pretty(const char *arg, Error **errp)
{
    add_monitor(arg, true, true, true);
    return true;
}

static bool opt_monitor(const char *arg, Error **errp)
{
    if (strcmp(arg, "none") != 0) {
        add_monitor(arg, true, false, false);
    }
    return true;
}

static bool opt_mon(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "chardev", mon_params, &kv, errp)) {
        return false;
    }
    const char *chardev = keyval_get(&kv, "chardev");
    const char *mode = keyval_get(&kv, "mode");
    bool ok = true;
    if (!chardev) {
        error_setg(errp, "Parameter 'chardev' is missing");
        ok = false;
    } else if (mode && strcmp(mode, "control") != 0 && strcmp(mode, "readline") != 0) {
        error_setg(errp, "unknown monitor mode \"%s\"", mode);
        ok = false;
    } else {
        add_monitor(chardev, false, mode && !strcmp(mode, "control"),
                    keyval_get_bool(&kv, "pretty", false));
    }
    keyval_free(&kv);
    return ok;
}

static void push(char ***list, int *n, const char *arg)
{
    *list = xrealloc(*list, sizeof(char *) * (size_t)(*n + 1));
    (*list)[(*n)++] = xstrdup(arg);
}

static bool opt_chardev(const char *arg, Error **errp)
{
    KeyValList kv;   /* parse now so that errors name the option */
    if (!keyval_parse(arg, "backend", chardev_params, &kv, errp)) {
        return false;
    }
    keyval_free(&kv);
    push(&startup.chardevs, &startup.nr_chardevs, arg);
    return true;
}

static bool opt_add_fd(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, NULL, add_fd_params, &kv, errp)) {
        return false;
    }
    bool ok = keyval_get(&kv, "fd") && keyval_get(&kv, "set");
    if (!keyval_get(&kv, "fd")) {
        error_setg(errp, "fd option is required and must be non-negative");
    } else if (!keyval_get(&kv, "set")) {
        error_setg(errp, "set option is required and must be non-negative");
    }
    keyval_free(&kv);
    if (ok) {
        push(&startup.add_fds, &startup.nr_add_fds, arg);
    }
    return ok;
}

static void add_device_option(DeviceOption **list, const char *arg)
{
    DeviceOption *d = xzalloc(sizeof(*d));
    d->opts = xstrdup(arg);
    while (*list) {
        list = &(*list)->next;
    }
    *list = d;
}

/* Object types other than iothread, consumed by the devices that use them. */
static bool object_type_known(const char *type)
{
    static const char *const types[] = { "rng-random", "rng-builtin" };
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        if (!strcmp(type, types[i])) {
            return true;
        }
    }
    return false;
}

static bool opt_object(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "qom-type", NULL, &kv, errp)) {
        return false;
    }
    const char *type = keyval_get(&kv, "qom-type");
    bool ok = true;
    if (type && !strcmp(type, "iothread")) {
        keyval_free(&kv);
        if (!keyval_parse(arg, "qom-type", iothread_params, &kv, errp)) {
            return false;
        }
        push(&startup.iothreads, &startup.nr_iothreads, arg);
    } else if (type && host_backend_type_known(type)) {
        /* Created now, as QEMU creates -object before the machine. */
        ok = host_backend_create(arg, errp) != NULL;
        if (ok) {
            add_device_option(&vm_config.objects, arg);
        }
    } else if (type && !strcmp(type, "secret")) {
        ok = secret_create(arg, errp);      /* now: later -object secret may use it as a key */
    } else if (type && object_type_known(type)) {
        add_device_option(&vm_config.objects, arg);   /* created with the machine */
    } else {
        error_setg(errp, "invalid object type: %s", type ? type : "");
        ok = false;
    }
    keyval_free(&kv);
    return ok;
}

static bool set_accel(const char *name, Error **errp)
{
    if (strchr(name, ':')) {
        return compat_choose_accel(name, errp);
    }
    if (strcmp(name, "kvm") != 0 && strcmp(name, "qtest") != 0) {
        error_setg(errp, "invalid accelerator %s", name);
        return false;
    }
    free(vm_config.accel);
    vm_config.accel = xstrdup(name);
    return true;
}

static bool opt_accel(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "accel", accel_params, &kv, errp)) {
        return false;
    }
    const char *name = keyval_get(&kv, "accel");
    bool ok = name ? set_accel(name, errp) : true;
    if (!name) {
        error_setg(errp, "Parameter 'accel' is missing");
        ok = false;
    }
    keyval_free(&kv);
    return ok;
}

static bool opt_enable_kvm(const char *arg, Error **errp)
{
    return set_accel("kvm", errp);
}

static bool opt_qtest(const char *arg, Error **errp)
{
    free(startup.qtest_chardev);
    startup.qtest_chardev = xstrdup(arg);
    return vm_config.accel ? true : set_accel("qtest", errp);
}

/* Guest RAM comes from one backend; naming two different ones is an error. */
static bool set_ram_memdev(const char *id, Error **errp)
{
    if (vm_config.ram_memdev && strcmp(vm_config.ram_memdev, id) != 0) {
        error_setg(errp, "guest RAM can come from one memory backend only ('%s' or '%s')",
                   vm_config.ram_memdev, id);
        return false;
    }
    free(vm_config.ram_memdev);
    vm_config.ram_memdev = xstrdup(id);
    return true;
}

static bool opt_qtest_log(const char *arg, Error **errp)
{
    free(startup.qtest_log);
    startup.qtest_log = xstrdup(arg);
    return true;
}

static bool opt_machine(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "type", machine_params, &kv, errp)) {
        return false;
    }
    const char *type = keyval_get(&kv, "type");
    const char *accel = keyval_get(&kv, "accel");
    bool ok = true;
    if (type && !strcmp(type, "help")) {
        startup.machine_help = true;
    } else if (type) {
        free(vm_config.machine_type);
        vm_config.machine_type = xstrdup(type);
    }
    if (accel) {
        ok = set_accel(accel, errp);
    }
    if (ok && keyval_get(&kv, "memory-backend")) {
        ok = set_ram_memdev(keyval_get(&kv, "memory-backend"), errp);
    }
    if (ok) {
        ok = compat_machine_props(&kv, errp);
    }
    keyval_free(&kv);
    return ok;
}

/*
 * -numa node,memdev=ID: vireo has one NUMA node, so its memdev is guest
 * RAM exactly as -machine memory-backend=ID would make it (the form
 * management tools and QEMU's vhost-user documentation use).
 */
static bool opt_numa(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "type", numa_params, &kv, errp)) {
        return false;
    }
    const char *type = keyval_get(&kv, "type");
    const char *memdev = keyval_get(&kv, "memdev");
    bool ok = false;
    if (!type || strcmp(type, "node") != 0) {
        error_setg(errp, "-numa: only 'node' is supported");
    } else if (keyval_get_number(&kv, "nodeid", 0) != 0) {
        error_setg(errp, "-numa: vireo has a single NUMA node (nodeid=0)");
    } else if (!memdev) {
        error_setg(errp, "-numa node: memdev= is required");
    } else {
        ok = set_ram_memdev(memdev, errp);
    }
    keyval_free(&kv);
    return ok;
}

static bool opt_display(const char *arg, Error **errp)
{
    if (strcmp(arg, "none") != 0) {
        error_setg(errp, "vireo has no graphical display; only 'none' is accepted");
        return false;
    }
    return true;
}

static bool opt_nodefaults(const char *arg, Error **errp)
{
    vm_config.nodefaults = true;
    return true;
}

static bool opt_S(const char *arg, Error **errp)
{
    vm_config.start_paused = true;
    return true;
}

static bool opt_preconfig(const char *arg, Error **errp)
{
    vm_config.preconfig = true;
    return true;
}

static bool opt_daemonize(const char *arg, Error **errp)
{
    startup.daemonize = true;
    return true;
}

static bool opt_pidfile(const char *arg, Error **errp)
{
    free(startup.pidfile);
    startup.pidfile = xstrdup(arg);
    return true;
}

static bool opt_m(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "size", memory_params, &kv, errp)) {
        return false;
    }
    const char *size = keyval_get(&kv, "size");
    uint64_t bytes = 0;
    bool ok = size != NULL;
    if (!size) {
        error_setg(errp, "Parameter 'size' is missing");
    } else {
        /* A bare number means MiB, as in QEMU. */
        char *end;
        unsigned long long mib = strtoull(size, &end, 10);
        if (*end == '\0' && end != size) {
            ok = mib <= (UINT64_MAX >> 20);
            bytes = (uint64_t)mib << 20;
            if (!ok) {
                error_setg(errp, "invalid RAM size %s", size);
            }
        } else {
            ok = parse_size(size, &bytes, errp);
        }
    }
    if (ok && bytes == 0) {
        error_setg(errp, "RAM size must be greater than 0");
        ok = false;
    }
    if (ok) {
        vm_config.ram_size = bytes;
        vm_config.ram_size_given = true;
    }
    keyval_free(&kv);
    return ok;
}

static bool opt_smp(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "cpus", smp_params, &kv, errp)) {
        return false;
    }
    uint64_t cpus = keyval_get_number(&kv, "cpus", 1);
    uint64_t max = keyval_get_number(&kv, "maxcpus", cpus);
    keyval_free(&kv);
    if (cpus == 0) {
        error_setg(errp, "Invalid CPU topology: CPU count must be greater than 0");
        return false;
    }
    /* APIC id 255 is the broadcast address, so 254 vCPUs at most. */
    if (cpus > 254 || max != cpus) {
        error_setg(errp, "Invalid CPU topology: vireo supports 1 to 254 CPUs and no hot-plug");
        return false;
    }
    vm_config.smp_cpus = (unsigned)cpus;
    return true;
}

#define STRING_OPTION(fn, field)                         \
    static bool fn(const char *arg, Error **errp)        \
    {                                                    \
        free(vm_config.field);                           \
        vm_config.field = xstrdup(arg);                  \
        return true;                                     \
    }
STRING_OPTION(opt_kernel, kernel)
STRING_OPTION(opt_initrd, initrd)
STRING_OPTION(opt_append, append)

static void push(char ***list, int *n, const char *arg);
static void add_monitor(const char *chardev, bool legacy, bool qmp, bool pretty);

/* "mon:stdio": the serial port and an HMP monitor share the terminal. */
static bool add_muxed_serial(const char *backend, Error **errp)
{
    if (strcmp(backend, "stdio") != 0) {
        error_setg(errp, "mon: is supported with stdio only");
        return false;
    }
    char *id = xasprintf("compat_mux%d", vm_config.nr_serial);
    char *chardev = xasprintf("stdio,id=%s,mux=on,signal=off", id);
    push(&startup.chardevs, &startup.nr_chardevs, chardev);
    add_monitor(id, false, false, false);
    vm_config.serial[vm_config.nr_serial++] = xasprintf("chardev:%s", id);
    free(chardev);
    free(id);
    return true;
}

static bool opt_serial(const char *arg, Error **errp)
{
    if (vm_config.nr_serial >= VM_MAX_SERIAL) {
        error_setg(errp, "too many serial ports (at most %d)", VM_MAX_SERIAL);
        return false;
    }
    if (!strncmp(arg, "mon:", 4)) {
        return add_muxed_serial(arg + 4, errp);
    }
    vm_config.serial[vm_config.nr_serial++] = xstrdup(arg);
    return true;
}

/*
 * vireo boots Linux itself, but what -boot tells firmware is still handed
 * to the guest through fw_cfg (as QEMU does), for firmware loaded as a
 * kernel and for tools that read it.
 */
static bool opt_boot(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, NULL, boot_params, &kv, errp)) {
        return false;
    }
    bool ok = true;
    uint64_t splash = keyval_get_number(&kv, "splash-time", UINT64_MAX);
    const char *reboot = keyval_get(&kv, "reboot-timeout");
    long long timeout = -1;
    char *end = NULL;
    if (reboot) {
        errno = 0;
        timeout = strtoll(reboot, &end, 0);
    }
    if (keyval_get(&kv, "splash-time") && splash > 0xffff) {
        error_setg(errp, "splash-time is invalid,it should be a value between 0 and 65535");
        ok = false;
    } else if (reboot && (errno || *end || end == reboot || timeout < -1 || timeout > 0xffff)) {
        error_setg(errp, "reboot timeout is invalid,it should be a value between -1 and 65535");
        ok = false;
    } else {
        vm_config.boot_menu = keyval_get_bool(&kv, "menu", false);
        vm_config.boot_splash_time = keyval_get(&kv, "splash-time") ? (int32_t)splash : -1;
        vm_config.boot_reboot_timeout = (int32_t)timeout;
    }
    keyval_free(&kv);
    return ok;
}

/* The serial port and monitor on stdio come at the end of parsing, unless -nodefaults. */
static bool opt_nographic(const char *arg, Error **errp)
{
    vm_config.nographic = true;
    return true;
}

static bool opt_no_reboot(const char *arg, Error **errp)
{
    no_reboot = true;
    return true;
}

static bool opt_no_shutdown(const char *arg, Error **errp)
{
    no_shutdown = true;
    return true;
}

static bool opt_rtc(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, NULL, rtc_params, &kv, errp)) {
        return false;
    }
    const char *base = keyval_get(&kv, "base");
    const char *clock = keyval_get(&kv, "clock");
    if (base) {
        free(vm_config.rtc_base);
        vm_config.rtc_base = xstrdup(base);
    }
    if (clock) {
        free(vm_config.rtc_clock);
        vm_config.rtc_clock = xstrdup(clock);
    }
    keyval_free(&kv);
    return true;
}

static bool opt_fw_cfg(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "name", fw_cfg_params, &kv, errp)) {
        return false;
    }
    const char *name = keyval_get(&kv, "name");
    const char *file = keyval_get(&kv, "file");
    const char *string = keyval_get(&kv, "string");
    bool ok = false;
    if (!name) {
        error_setg(errp, "-fw_cfg: name is required");
    } else if (!file == !string) {
        error_setg(errp, "-fw_cfg: exactly one of file= and string= is required");
    } else {
        FwCfgOption *f = xzalloc(sizeof(*f));
        f->name = xstrdup(name);
        f->file = file ? xstrdup(file) : NULL;
        f->string = string ? xstrdup(string) : NULL;
        FwCfgOption **p = &vm_config.fw_cfg;
        while (*p) {
            p = &(*p)->next;
        }
        *p = f;
        ok = true;
    }
    keyval_free(&kv);
    return ok;
}

static bool opt_device(const char *arg, Error **errp)
{
    int taken = compat_device(arg, errp);
    if (taken) {
        return taken > 0;
    }
    add_device_option(&vm_config.devices, arg);
    return true;
}

static bool opt_drive(const char *arg, Error **errp)
{
    add_device_option(&vm_config.drives, arg);
    return true;
}

static bool opt_netdev(const char *arg, Error **errp)
{
    add_device_option(&vm_config.netdevs, arg);
    return true;
}

/*
 * vireo's vCPUs are always the host CPU. QEMU's other x86 model names are
 * still accepted because a machine that runs no vCPU (-machine none, the
 * qtest accelerator) never uses them; machine_init() refuses them where a
 * vCPU would run.
 */
static bool cpu_model_known(const char *model)
{
    static const char *const models[] = {
        "host", "max", "base", "qemu64", "qemu32", "kvm64", "kvm32",
    };
    for (size_t i = 0; i < ARRAY_SIZE(models); i++) {
        if (!strcmp(model, models[i])) {
            return true;
        }
    }
    return false;
}

static bool opt_cpu(const char *arg, Error **errp)
{
    char *model = xstrndup_safe(arg, strcspn(arg, ","));
    KeyValList kv;  /* properties: checked for syntax, applied by no vCPU */
    bool ok = keyval_parse(arg + strlen(model) + (arg[strlen(model)] == ','), NULL, NULL,
                           &kv, errp);
    if (ok) {
        keyval_free(&kv);
    }
    if (ok && !cpu_model_known(model)) {
        error_setg(errp, "unable to find CPU model '%s' (vireo's vCPUs are the host CPU: "
                   "use host)", model);
        ok = false;
    }
    if (ok) {
        free(vm_config.cpu_model);
        vm_config.cpu_model = model;
    } else {
        free(model);
    }
    return ok;
}

/* 8-4-4-4-12 hexadecimal digits; the bytes are kept in written order. */
static bool parse_uuid(const char *s, uint8_t out[16])
{
    static const int dashes[] = { 8, 13, 18, 23 };
    if (strlen(s) != 36) {
        return false;
    }
    for (int i = 0, d = 0, n = 0; i < 36; i++) {
        if (d < 4 && i == dashes[d]) {
            if (s[i] != '-') {
                return false;
            }
            d++;
            continue;
        }
        const char *hex = "0123456789abcdef";
        const char *p = strchr(hex, s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
        if (!s[i] || !p) {
            return false;
        }
        out[n / 2] = (uint8_t)(n % 2 ? out[n / 2] | (p - hex) : (p - hex) << 4);
        n++;
    }
    return true;
}

static bool opt_uuid(const char *arg, Error **errp)
{
    uint8_t uuid[16];
    if (!parse_uuid(arg, uuid)) {
        error_setg(errp, "failed to parse UUID string: wrong format");
        return false;
    }
    memcpy(vm_config.uuid, uuid, sizeof(uuid));
    return true;
}

UuidInfo *qmp_query_uuid(Error **errp)
{
    const uint8_t *u = vm_config.uuid;
    UuidInfo *info = xzalloc(sizeof(*info));
    info->UUID = xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                           "%02x%02x%02x%02x%02x%02x",
                           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
                           u[10], u[11], u[12], u[13], u[14], u[15]);
    return info;
}

static bool opt_version(const char *arg, Error **errp);
static bool opt_help(const char *arg, Error **errp);

/* ---- the table ---- */

static const CmdOption options[] = {
    { "h", NULL, "display this help and exit", NULL, NULL, opt_help },
    { "help", NULL, "display this help and exit", NULL, NULL, opt_help },
    { "version", NULL, "display version information and exit", NULL, NULL, opt_version },
    { "name", "NAME", "set the VM name", "name", name_params, opt_name },
    { "machine", "TYPE[,accel=A]", "select the machine type ('-machine help' lists them)",
      "machine", machine_params, opt_machine },
    { "M", "TYPE", "same as -machine", NULL, NULL, opt_machine },
    { "numa", "node,memdev=ID", "the NUMA node's memory backend (guest RAM)", "numa",
      numa_params, opt_numa },
    { "accel", "kvm|qtest", "select the accelerator", "accel", accel_params, opt_accel },
    { "enable-kvm", NULL, "same as -accel kvm", NULL, NULL, opt_enable_kvm },
    { "cpu", "host", "CPU model (the host CPU is passed through)", NULL, NULL, opt_cpu },
    { "boot", "[menu=on|off][,splash-time=MS][,reboot-timeout=MS]",
      "firmware boot settings, passed on through fw_cfg", "boot-opts", boot_params, opt_boot },
    { "uuid", "UUID", "set the UUID firmware and the guest see (fw_cfg)", NULL, NULL, opt_uuid },
    { "m", "SIZE", "guest RAM size (bare numbers are MiB)", "memory", memory_params, opt_m },
    { "smp", "N", "number of vCPUs", "smp-opts", smp_params, opt_smp },
    { "kernel", "FILE", "Linux kernel (bzImage, or ELF vmlinux with a PVH note)", NULL, NULL, opt_kernel },
    { "initrd", "FILE", "initial ram disk", NULL, NULL, opt_initrd },
    { "append", "CMDLINE", "kernel command line", NULL, NULL, opt_append },
    { "serial", "DEV", "serial port back-end: stdio, mon:stdio, file:PATH, chardev:ID, null, unix:..., tcp:...",
      NULL, NULL, opt_serial },
    { "nographic", NULL, "no display; serial port and monitor on stdio (Ctrl-A c switches)",
      NULL, NULL, opt_nographic },
    { "display", "none", "display type (only none)", NULL, NULL, opt_display },
    { "nodefaults", NULL, "create no default devices", NULL, NULL, opt_nodefaults },
    { "no-reboot", NULL, "exit instead of rebooting", NULL, NULL, opt_no_reboot },
    { "no-shutdown", NULL, "stop instead of exiting when the guest powers off", NULL, NULL,
      opt_no_shutdown },
    { "rtc", "base=utc|localtime|DATE[,clock=host|rt|vm]", "real-time clock settings", "rtc",
      rtc_params, opt_rtc },
    { "fw_cfg", "[name=]NAME,file=FILE|string=STR", "add a fw_cfg item", "fw_cfg",
      fw_cfg_params, opt_fw_cfg },
    { "device", "DRIVER[,PROP=VALUE...]", "add a device", "device", free_form_params, opt_device },
    { "drive", "OPTIONS", "add a drive back-end", "drive", free_form_params, opt_drive },
    { "netdev", "TYPE,id=ID[,...]", "add a network back-end", "netdev", free_form_params, opt_netdev },
    { "object", "TYPE,id=ID[,...]", "create an object (iothread)", "object", free_form_params, opt_object },
    { "chardev", "BACKEND,id=ID[,...]", "create a character device", "chardev", chardev_params,
      opt_chardev },
    { "qmp", "DEV", "QMP monitor on DEV", NULL, NULL, opt_qmp },
    { "qmp-pretty", "DEV", "QMP monitor with indented replies on DEV", NULL, NULL, opt_qmp_pretty },
    { "monitor", "DEV", "HMP monitor on DEV", NULL, NULL, opt_monitor },
    { "mon", "chardev=ID[,mode=control|readline][,pretty=on]", "monitor on a chardev", "mon",
      mon_params, opt_mon },
    { "add-fd", "fd=FD,set=SET[,opaque=TEXT]", "put an inherited descriptor into an fd set",
      "add-fd", add_fd_params, opt_add_fd },
    { "qtest", "DEV", "serve the qtest protocol on DEV (implies -accel qtest)", NULL, NULL, opt_qtest },
    { "qtest-log", "FILE|none", "log the qtest protocol (requests and replies) to FILE", NULL, NULL,
      opt_qtest_log },
    { "S", NULL, "do not start the vCPUs until 'cont'", NULL, NULL, opt_S },
    { "preconfig", NULL, "pause before building the machine until x-exit-preconfig", NULL, NULL,
      opt_preconfig },
    { "daemonize", NULL, "detach from the terminal once started", NULL, NULL, opt_daemonize },
    { "pidfile", "FILE", "write the process id to FILE", NULL, NULL, opt_pidfile },
    { "sandbox", "on|off[,KEY=allow|deny...][,log=on]",
      "system-call filters per thread kind, off by default (KEY: obsolete, elevateprivileges, "
      "spawn, resourcecontrol; log=on names a denied call)", "sandbox", sandbox_params,
      sandbox_opt_sandbox },
    { "runas", "USER|UID:GID", "run as this user once start-up is done", NULL, NULL,
      sandbox_opt_runas },
    { "chroot", "DIR", "chroot to DIR once start-up is done", NULL, NULL, sandbox_opt_chroot },
    { "run-with", "[user=USER][,chroot=DIR]", "same as -runas and -chroot", "run-with",
      run_with_params, sandbox_opt_run_with },
};

static bool opt_version(const char *arg, Error **errp)
{
    /* QEMU's first line, which tools parse for the interface level */
    printf("QEMU emulator version 7.2.0 (vireo " VIREO_VERSION ")\n");
    printf("vireo: a KVM virtual machine monitor speaking QEMU 7.2's management interface\n");
    return true;
}

/* The tables of the other option files, each ending with a NULL name. */
static const CmdOption *const extra_tables[] = { compat_options, block_options, global_options };

/* Every option in order: the main table, then each extra table. */
static const CmdOption *option_at(size_t i)
{
    if (i < ARRAY_SIZE(options)) {
        return &options[i];
    }
    i -= ARRAY_SIZE(options);
    for (size_t t = 0; t < ARRAY_SIZE(extra_tables); t++) {
        size_t n = 0;
        while (extra_tables[t][n].name) {
            n++;
        }
        if (i < n) {
            return &extra_tables[t][i];
        }
        i -= n;
    }
    return NULL;
}

static bool opt_help(const char *arg, Error **errp)
{
    printf("usage: vireo [options]\n\n");
    for (size_t i = 0; option_at(i); i++) {
        const CmdOption *o = option_at(i);
        char left[80];
        snprintf(left, sizeof(left), "-%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("%-40s %s\n", left, o->help);
    }
    return true;
}

static const CmdOption *find_option(const char *name)
{
    for (size_t i = 0; option_at(i); i++) {
        if (!strcmp(option_at(i)->name, name)) {
            return option_at(i);
        }
    }
    return NULL;
}

int options_parse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *word = argv[i];
        if (word[0] != '-' || !word[1]) {
            error_report("%s: invalid option (a disk image needs -drive)", word);
            return -1;
        }
        const char *name = word + 1 + (word[1] == '-');
        const CmdOption *opt = find_option(name);
        if (!opt) {
            error_report("%s: invalid option", word);
            return -1;
        }
        const char *arg = NULL;
        if (opt->arg) {
            if (i + 1 >= argc) {
                error_report("%s: requires an argument", word);
                return -1;
            }
            arg = argv[++i];
        }
        int help = options_answer_help(opt->name, arg);
        if (help) {
            return help > 0 ? 0 : -1;
        }
        Error *err = NULL;
        char *keyval = arg ? compat_json_to_keyval(opt->name, arg, &err) : NULL;
        if (err) {
            error_report("%s %s: %s", word, arg, error_get_pretty(err));
            error_free(err);
            return -1;
        }
        arg = keyval ? keyval : arg;
        bool handled = opt->handle(arg, &err);
        if (!handled) {
            error_report("%s%s%s: %s", word, arg ? " " : "", arg ? arg : "",
                         error_get_pretty(err));
            error_free(err);
            free(keyval);
            return -1;
        }
        free(keyval);
        if (opt->handle == opt_version || opt->handle == opt_help || startup.exit_now) {
            return 0;
        }
    }
    Error *gerr = NULL;
    if (!globals_apply(&gerr)) {
        error_report("%s", error_get_pretty(gerr));
        error_free(gerr);
        return -1;
    }
    /* -nographic's default console, as QEMU makes it: not with -nodefaults. */
    if (vm_config.nographic && !vm_config.nodefaults && vm_config.nr_serial == 0) {
        Error *err = NULL;
        if (!add_muxed_serial("stdio", &err)) {
            error_report("-nographic: %s", error_get_pretty(err));
            error_free(err);
            return -1;
        }
    }
    return 1;
}

/* ---- query-command-line-options ---- */

static CommandLineParameterInfoList *describe_params(const OptParam *params)
{
    CommandLineParameterInfoList *list = NULL, **tail = &list;
    for (const OptParam *p = params; p->name; p++) {
        CommandLineParameterInfo *info = xzalloc(sizeof(*info));
        info->name = xstrdup(p->name);
        info->type = p->type == OPT_BOOL ? COMMAND_LINE_PARAMETER_TYPE_BOOLEAN :
                     p->type == OPT_NUMBER ? COMMAND_LINE_PARAMETER_TYPE_NUMBER :
                     p->type == OPT_SIZE ? COMMAND_LINE_PARAMETER_TYPE_SIZE :
                     COMMAND_LINE_PARAMETER_TYPE_STRING;
        if (p->help) {
            info->has_help = true;
            info->help = xstrdup(p->help);
        }
        if (p->def) {
            info->has_q_default = true;
            info->q_default = xstrdup(p->def);
        }
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}

CommandLineOptionInfoList *qmp_query_command_line_options(bool has_option, const char *option,
                                                         Error **errp)
{
    CommandLineOptionInfoList *list = NULL, **tail = &list;
    for (size_t i = 0; option_at(i); i++) {
        const CmdOption *o = option_at(i);
        if (!o->opts_group || (has_option && strcmp(option, o->opts_group) != 0)) {
            continue;
        }
        CommandLineOptionInfo *info = xzalloc(sizeof(*info));
        info->option = xstrdup(o->opts_group);
        info->parameters = describe_params(o->params);
        QAPI_LIST_APPEND(tail, info);
    }
    if (has_option && !list) {
        error_setg(errp, "invalid option name: %s", option);
    }
    return list;
}
