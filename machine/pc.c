/*
 * The vireo-pc machine: RAM, the legacy PC devices Linux needs, a PCI host
 * bridge, fw_cfg, ACPI tables and a directly booted kernel, on KVM (or
 * without vCPUs under the qtest accelerator).
 */
#include "machine/machine.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "chardev/chardev.h"
#include "core/qdev.h"
#include "core/runstate.h"
#include "hw/acpi-pm.h"
#include "hw/fw-cfg.h"
#include "hw/i8042.h"
#include "hw/ivshmem.h"
#include "hw/pci.h"
#include "hw/pci-hotplug.h"
#include "hw/rtc-mc146818.h"
#include "hw/serial-16550.h"
#include "machine/acpi.h"
#include "machine/board-globals.h"
#include "machine/boot-linux.h"
#include "machine/cpuid-info.h"
#include "machine/dump-elf.h"
#include "machine/kvm.h"
#include "machine/layout.h"
#include "memory/host-backend.h"
#include "qapi/qapi-events.h"
#include "util/osdep.h"
#include "virtio/virtio-pci.h"

#define MIN_RAM_SIZE    (1ULL << 20)
/* RAM plus the 32-bit hole must stay below what guests can address (40 bits). */
#define MAX_RAM_SIZE    ((1ULL << 40) - FOUR_GIB)
#define MAX_CPUS        254

static const struct { uint16_t port; uint8_t irq; } serial_ports[VM_MAX_SERIAL] = {
    { 0x3f8, 4 }, { 0x2f8, 3 }, { 0x3e8, 4 }, { 0x2e8, 3 },
};

typedef struct Machine {
    VmConfig *cfg;
    bool qtest;                 /* devices only, no vCPUs */
    GuestMemory mem;
    KvmVm *kvm;
    LinuxLoader *loader;
    uint64_t rsdp;
    BootEntry entry;
    bool started;               /* vCPUs may have run: a reset must reload the kernel */
    bool images_pending;        /* -S: the guest images go into RAM at the first start */
    Serial16550 *serial[VM_MAX_SERIAL];
    Rtc *rtc;
    I8042 *i8042;
    AcpiPm *pm;
    FwCfg *fw_cfg;
    PciHost *pci;
    PciHotplug *hotplug;
    AcpiConfig acpi;
    Device *qdevs[16];          /* the built-in devices as 'info qtree' lists them */
    unsigned nr_qdevs;
    const char *rtc_path;       /* its canonical path, for RTC_CHANGE */
} Machine;

static Machine machine;

GuestMemory *machine_guest_memory(void)
{
    return &machine.mem;    /* stable; regions appear when the machine is built */
}

bool kvm_can_run_guest(void)
{
    return kvm_available(NULL);
}

/* ---- device call-backs ---- */

static void reset_line(void *opaque)
{
    system_reset_request(SHUTDOWN_CAUSE_GUEST_RESET);
}

static void acpi_power_off(void *opaque)
{
    system_shutdown_request(SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
}

static void rtc_changed(void *opaque, int64_t offset)
{
    Machine *m = opaque;
    qapi_event_send_rtc_change(offset, m->rtc_path ? m->rtc_path : MACHINE_RTC_QOM_PATH);
}

/* List a built-in device in the device tree (QEMU's type names). */
static Device *register_device(Machine *m, const char *type, const char *bus)
{
    Device *d = qdev_add(type, NULL, bus, DEVICE_BUILTIN, NULL, NULL, NULL);
    if (d && m->nr_qdevs < ARRAY_SIZE(m->qdevs)) {
        m->qdevs[m->nr_qdevs++] = d;
    }
    return d;
}

static void register_devices(Machine *m)
{
    register_device(m, "gpex-pcihost", "main-system-bus");
    register_device(m, "gpex-root", "pci.0");
    register_device(m, "fw_cfg_io", "main-system-bus");
    register_device(m, "i8042", "isa.0");
    Device *rtc = register_device(m, "mc146818rtc", "isa.0");
    m->rtc_path = rtc ? rtc->path : NULL;
    for (int i = 0; i < VM_MAX_SERIAL; i++) {
        if (m->serial[i]) {
            register_device(m, "isa-serial", "isa.0");
        }
    }
}

static void power_button(void *opaque)
{
    Machine *m = opaque;
    if (m->pm) {
        acpi_pm_power_button(m->pm);
    }
}

/* ---- building ---- */

/*
 * Without a memory backend, RAM is private anonymous memory (faster to fault
 * in, THP-backed) unless another process must map it: a vhost-user back-end
 * (which QEMU would only accept with a shared backend; vireo makes the memfd
 * itself), or the qtest accelerator, whose tests map RAM themselves. A
 * memfd that only ivshmem uses is that device's BAR, not guest RAM.
 */
static bool wants_shared_ram(const VmConfig *cfg)
{
    if (cfg->accel && strcmp(cfg->accel, "qtest") == 0) {
        return true;
    }
    for (const DeviceOption *o = cfg->devices; o; o = o->next) {
        if (strncmp(o->opts, "vhost-user-", 11) == 0 ||
            strncmp(o->opts, "driver=vhost-user-", 18) == 0) {
            return true;
        }
    }
    for (const DeviceOption *o = cfg->netdevs; o; o = o->next) {
        if (strncmp(o->opts, "vhost-user,", 11) == 0 || strcmp(o->opts, "vhost-user") == 0 ||
            strstr(o->opts, "type=vhost-user")) {
            return true;
        }
    }
    return false;
}

/*
 * -machine memory-backend=ID / -numa node,memdev=ID: guest RAM is that
 * backend. A shared one (memfd, or share=on) lends its fd, so whatever maps
 * the backend sees the guest's memory; a private one gives private RAM.
 */
static bool map_board_ram(Machine *m, Error **errp)
{
    const VmConfig *cfg = m->cfg;
    if (!cfg->ram_memdev) {
        return wants_shared_ram(cfg)
            ? guest_memory_create(&m->mem, cfg->ram_size, LOWMEM_LIMIT, errp)
            : guest_memory_create_private(&m->mem, cfg->ram_size, LOWMEM_LIMIT, errp);
    }
    HostMemBackend *b = host_backend_find(cfg->ram_memdev);
    if (!b) {
        error_setg(errp, "Memory backend '%s' not found", cfg->ram_memdev);
        return false;
    }
    if (b->size != cfg->ram_size) {
        error_setg(errp, "Machine memory size does not match the size of the memory backend");
        return false;
    }
    if (!host_backend_claim(b, errp)) {
        return false;
    }
    bool ok = b->share && b->fd >= 0
        ? guest_memory_create_on_fd(&m->mem, b->fd, cfg->ram_size, LOWMEM_LIMIT, errp)
        : guest_memory_create_private(&m->mem, cfg->ram_size, LOWMEM_LIMIT, errp);
    if (!ok) {
        host_backend_release(b);
    }
    return ok;
}

/*
 * Guest RAM for any board (the none board's is always shareable, so a qtest
 * can map it), locked in host memory with -overcommit mem-lock=on.
 */
static bool create_ram(Machine *m, bool none_board, Error **errp)
{
    bool ok = none_board
        ? guest_memory_create(&m->mem, m->cfg->ram_size, LOWMEM_LIMIT, errp)
        : map_board_ram(m, errp);
    return ok && (!m->cfg->mem_lock || guest_memory_lock(&m->mem, errp));
}

static bool check_config(const VmConfig *cfg, Error **errp)
{
    if (!machine_type_valid(cfg->machine_type)) {
        error_setg(errp, "unsupported machine type '%s' (use -machine help)", cfg->machine_type);
        return false;
    }
    if (cfg->ram_size < MIN_RAM_SIZE || cfg->ram_size > MAX_RAM_SIZE) {
        error_setg(errp, "Invalid RAM size %llu: it must be between 1 MiB and %llu GiB",
                   (unsigned long long)cfg->ram_size,
                   (unsigned long long)(MAX_RAM_SIZE >> 30));
        return false;
    }
    if (cfg->smp_cpus < 1 || cfg->smp_cpus > MAX_CPUS) {
        error_setg(errp, "Invalid SMP CPUs %u: it must be between 1 and %d",
                   cfg->smp_cpus, MAX_CPUS);
        return false;
    }
    if (cfg->accel && strcmp(cfg->accel, "kvm") != 0 && strcmp(cfg->accel, "qtest") != 0) {
        error_setg(errp, "accelerator '%s' is not supported (kvm or qtest)", cfg->accel);
        return false;
    }
    if (cfg->no_acpi && machine_board_of(cfg) == MACHINE_BOARD_PC) {
        error_setg(errp, "ACPI cannot be turned off on %s: guests find its PCI interrupts, "
                   "power button and fw_cfg through ACPI", MACHINE_DEFAULT_TYPE);
        return false;
    }
    if (!cfg->kernel && (cfg->initrd || cfg->append)) {
        error_setg(errp, "-initrd and -append need -kernel");
        return false;
    }
    if (machine_runs_vcpus(cfg) && !cfg->kernel) {
        error_setg(errp, "no -kernel given: vireo has no firmware and boots Linux directly");
        return false;
    }
    if (machine_runs_vcpus(cfg) && cfg->cpu_model && strcmp(cfg->cpu_model, "host") != 0 &&
        strcmp(cfg->cpu_model, "max") != 0) {
        error_setg(errp, "CPU model '%s' is not supported: vireo's vCPUs are the host CPU "
                   "(use -cpu host)", cfg->cpu_model);
        return false;
    }
    return true;
}

static bool create_serial_ports(Machine *m, Error **errp)
{
    for (int i = 0; i < m->cfg->nr_serial && i < VM_MAX_SERIAL; i++) {
        const char *spec = m->cfg->serial[i];
        if (!spec || strcmp(spec, "none") == 0) {
            continue;
        }
        Chardev *chr = NULL;
        if (strcmp(spec, "null") != 0) {
            chr = chardev_new_from_legacy(spec, "serial", errp);
            if (!chr) {
                return false;
            }
        }
        m->serial[i] = serial16550_create(serial_ports[i].port, serial_ports[i].irq, chr, errp);
        if (!m->serial[i]) {
            return false;
        }
        unsigned n = m->acpi.nr_serial++;
        m->acpi.serial[n] = (AcpiSerialPort){ serial_ports[i].port, serial_ports[i].irq };
    }
    return true;
}

/* What -boot tells firmware: menu, menu wait, failed-boot retry (little endian). */
static bool add_boot_items(FwCfg *fw_cfg, const VmConfig *cfg, Error **errp)
{
    fw_cfg_add_u16(fw_cfg, FW_CFG_BOOT_MENU, cfg->boot_menu, NULL);
    uint32_t *retry = xmalloc(sizeof(*retry));
    *retry = htole32((uint32_t)cfg->boot_reboot_timeout);
    if (!fw_cfg_add_file(fw_cfg, "etc/boot-fail-wait", retry, sizeof(*retry), false, errp)) {
        return false;
    }
    if (cfg->boot_splash_time < 0) {
        return true;
    }
    uint16_t *wait = xmalloc(sizeof(*wait));
    *wait = htole16((uint16_t)cfg->boot_splash_time);
    return fw_cfg_add_file(fw_cfg, "etc/boot-menu-wait", wait, sizeof(*wait), false, errp);
}

static bool create_fw_cfg(Machine *m, Error **errp)
{
    const VmConfig *cfg = m->cfg;
    m->fw_cfg = fw_cfg_create(FW_CFG_IO_BASE, &m->mem, errp);
    if (!m->fw_cfg) {
        return false;
    }
    fw_cfg_add_u64(m->fw_cfg, FW_CFG_RAM_SIZE, cfg->ram_size, NULL);
    fw_cfg_add_u16(m->fw_cfg, FW_CFG_NB_CPUS, cfg->smp_cpus, NULL);
    fw_cfg_add_u16(m->fw_cfg, FW_CFG_MAX_CPUS, cfg->smp_cpus, NULL);
    fw_cfg_add_u16(m->fw_cfg, FW_CFG_NOGRAPHIC, cfg->nographic, NULL);
    fw_cfg_add_bytes(m->fw_cfg, FW_CFG_UUID, cfg->uuid, sizeof(cfg->uuid), NULL);
    if (!add_boot_items(m->fw_cfg, cfg, errp)) {
        return false;
    }
    const char *cmdline = cfg->append ? cfg->append : "";
    fw_cfg_add_u32(m->fw_cfg, FW_CFG_CMDLINE_SIZE, strlen(cmdline) + 1, NULL);
    fw_cfg_add_bytes(m->fw_cfg, FW_CFG_CMDLINE_DATA, cmdline, strlen(cmdline) + 1, NULL);

    E820Entry map[E820_MAX_ENTRIES];
    unsigned n = boot_e820_map(&m->mem, map);
    void *e820 = xmalloc(n * sizeof(E820Entry));
    memcpy(e820, map, n * sizeof(E820Entry));
    if (!fw_cfg_add_file(m->fw_cfg, "etc/e820", e820, n * sizeof(E820Entry), false, errp)) {
        return false;
    }
    return fw_cfg_add_user_items(m->fw_cfg, cfg->fw_cfg, errp);
}

/* The guest ejected a slot: the device there goes, if it can. */
static void pci_slot_ejected(void *opaque, unsigned slot)
{
    Machine *m = opaque;
    Device *dev = qdev_find_by_pci_slot(slot);
    if (dev && dev->ops && dev->ops->unplug) {
        qdev_unplug_now(dev);
        pci_hotplug_slot_cleared(m->hotplug, slot);
    }
}

static bool create_devices(Machine *m, Error **errp)
{
    if (!create_serial_ports(m, errp)) {
        return false;
    }
    const char *clock = m->cfg->rtc_clock;
    RtcConfig rtc = {
        .base = m->cfg->rtc_base,
        .clock = clock && strcmp(clock, "vm") == 0 ? CLOCK_VIRTUAL : CLOCK_REALTIME_HOST,
        .on_change = rtc_changed,
        .opaque = m,
    };
    AcpiPmOps pm_ops = { .power_off = acpi_power_off };
    PciHostConfig pci = { .intx_gsi = acpi_pci_intx_gsi };
    m->rtc = rtc_create(RTC_IO_BASE, 8, &rtc, errp);
    m->i8042 = m->rtc ? i8042_create(reset_line, NULL, errp) : NULL;
    m->pm = m->i8042 ? acpi_pm_create(ACPI_PM_IO_BASE, ACPI_SCI_GSI, &pm_ops, errp) : NULL;
    PciHotplugOps hp_ops = { .eject = pci_slot_ejected, .opaque = m };
    m->pci = m->pm ? pci_host_create(&pci, errp) : NULL;
    m->hotplug = m->pci ? pci_hotplug_create(PCI_HOTPLUG_IO_BASE, m->pm, &hp_ops, errp) : NULL;
    if (!m->hotplug || !create_fw_cfg(m, errp) ||
        !virtio_pci_create_devices(m->cfg, m->pci, &m->mem, errp)) {
        return false;
    }
    m->acpi.nr_cpus = m->cfg->smp_cpus;
    m->acpi.has_pci = true;
    m->acpi.pci_slots = PCI_MAX_SLOTS;
    m->acpi.pci_hotplug_port = PCI_HOTPLUG_IO_BASE;
    m->acpi.fw_cfg_port = FW_CFG_IO_BASE;
    register_devices(m);
    return true;
}

static void reset_devices(Machine *m)
{
    for (int i = 0; i < VM_MAX_SERIAL; i++) {
        if (m->serial[i]) {
            serial16550_reset(m->serial[i]);
        }
    }
    rtc_reset(m->rtc);
    i8042_reset(m->i8042);
    acpi_pm_reset(m->pm);
    pci_host_reset(m->pci);
    pci_hotplug_reset(m->hotplug);
    fw_cfg_reset(m->fw_cfg);
}

/* Everything the guest finds in RAM at power-on: ACPI tables and the kernel. */
static bool load_guest_images(Machine *m, Error **errp)
{
    m->rsdp = acpi_build_tables(&m->acpi, &m->mem, errp);
    if (!m->rsdp) {
        return false;
    }
    return !m->loader || linux_loader_load(m->loader, &m->mem, m->rsdp, &m->entry, errp);
}

static void load_pending_images(void *opaque)
{
    Machine *m = opaque;
    if (!m->images_pending) {
        return;
    }
    m->images_pending = false;
    Error *err = NULL;
    if (!load_guest_images(m, &err)) {
        error_report_err(err);
        system_shutdown_request(SHUTDOWN_CAUSE_HOST_ERROR);
        return;
    }
    kvm_vm_set_boot_entry(m->kvm, &m->entry);
}

static void machine_reset(void *opaque)
{
    Machine *m = opaque;
    if (m->kvm) {
        kvm_vm_hold(m->kvm);
    }
    reset_devices(m);
    Error *err = NULL;
    if (m->started && !load_guest_images(m, &err)) {
        error_prepend(&err, "reset: ");
        error_report_err(err);
        system_shutdown_request(SHUTDOWN_CAUSE_HOST_ERROR);
    }
    if (m->kvm) {
        kvm_vm_set_boot_entry(m->kvm, &m->entry);
        kvm_vm_reset(m->kvm);
        kvm_vm_release(m->kvm);
    }
}

/*
 * The none board: no devices, no vCPUs, nothing to load. RAM exists only
 * when -m asks for it (QEMU's none machine has none by default), so a
 * qtest or a management tool probing capabilities can still use memory.
 */
static bool none_board_init(Machine *m, Error **errp)
{
    return !m->cfg->ram_size_given || create_ram(m, true, errp);
}

bool machine_init(VmConfig *cfg, Error **errp)
{
    Machine *m = &machine;
    memset(m, 0, sizeof(*m));
    m->mem.fd = -1;
    if (!check_config(cfg, errp)) {
        return false;
    }
    m->cfg = cfg;
    m->qtest = cfg->accel && strcmp(cfg->accel, "qtest") == 0;
    if (machine_board_of(cfg) == MACHINE_BOARD_NONE) {
        return none_board_init(m, errp);
    }
    if (cfg->kernel) {
        m->loader = linux_loader_open(cfg->kernel, cfg->initrd, cfg->append, errp);
        if (!m->loader) {
            goto fail;
        }
    }
    BoardGlobals globals;
    if (!board_globals_read(!m->qtest, cfg->nr_serial > 0, &globals, errp) ||
        !create_ram(m, false, errp)) {
        goto fail;
    }
    if (!m->qtest) {
        m->kvm = kvm_vm_create(&m->mem, cfg->smp_cpus, errp);
        if (!m->kvm || (!globals.pit_reinject &&
                        !kvm_vm_set_pit_reinject(m->kvm, false, errp))) {
            goto fail;
        }
        kvm_vm_install_hooks(m->kvm);
    }
    if (!create_devices(m, errp)) {
        goto fail;
    }
    /*
     * A VM created paused (-S, as management tools create every VM) holds no
     * guest image until it first runs; the files are already open and
     * checked, so only copying is left for later.
     */
    m->images_pending = cfg->start_paused && m->kvm;
    if (!m->images_pending && !load_guest_images(m, errp)) {
        goto fail;
    }
    if (m->kvm && !m->images_pending) {
        kvm_vm_set_boot_entry(m->kvm, &m->entry);
    }
    register_vm_start_handler(load_pending_images, m);
    register_reset_handler(machine_reset, m);
    register_powerdown_handler(power_button, m);
    return true;
fail:
    machine_cleanup();
    return false;
}

void machine_start(void)
{
    Machine *m = &machine;
    m->started = true;
    Error *err = NULL;
    if (m->kvm && !kvm_vm_start_threads(m->kvm, &err)) {
        error_report_err(err);
        system_shutdown_request(SHUTDOWN_CAUSE_HOST_ERROR);
    }
}

void machine_cleanup(void)
{
    Machine *m = &machine;
    kvm_vm_destroy(m->kvm);     /* first: no vCPU may touch a device below */
    virtio_pci_destroy_devices();   /* in-flight block I/O lands in guest RAM */
    for (unsigned i = 0; i < m->nr_qdevs; i++) {
        qdev_remove(m->qdevs[i]);
    }
    m->nr_qdevs = 0;
    m->rtc_path = NULL;
    m->kvm = NULL;
    for (int i = 0; i < VM_MAX_SERIAL; i++) {
        serial16550_destroy(m->serial[i]);
        m->serial[i] = NULL;
    }
    ivshmem_destroy_all();     /* its PCI functions, before the bus goes */
    rtc_destroy(m->rtc);
    i8042_destroy(m->i8042);
    pci_hotplug_destroy(m->hotplug);
    acpi_pm_destroy(m->pm);
    pci_host_destroy(m->pci);
    fw_cfg_destroy(m->fw_cfg);
    linux_loader_close(m->loader);
    m->rtc = NULL;
    m->i8042 = NULL;
    m->pm = NULL;
    m->pci = NULL;
    m->hotplug = NULL;
    m->fw_cfg = NULL;
    m->loader = NULL;
    if (m->mem.fd >= 0 || m->mem.nr_regions) {
        guest_memory_destroy(&m->mem);
    }
}

/* ---- device_add / device_del ---- */

static Device *last_device(void)
{
    Device *last = NULL;
    for (Device *d = qdev_first(); d; d = d->next) {
        last = d;
    }
    return last;
}

bool machine_device_add(const char *opts, const char *driver, Error **errp)
{
    Machine *m = &machine;
    bool pci_type = strstr(driver, "-pci") || strncmp(driver, "ivshmem", 7) == 0;
    if (!m->pci && pci_type) {
        error_setg(errp, "No 'PCI' bus found for device '%s'", driver);
        return false;
    }
    if (!m->pci) {
        bool port = !strcmp(driver, "virtserialport") || !strcmp(driver, "virtconsole");
        error_setg(errp, port ? "No 'virtio-serial-bus' bus found for device '%s'"
                              : "'%s' is not a valid device model name", driver);
        return false;
    }
    VirtioCreateContext ctx = { .cfg = m->cfg, .pci = m->pci, .mem = &m->mem };
    Device *before = last_device();
    if (!virtio_pci_create_device(&ctx, opts, errp)) {
        return false;
    }
    Device *dev = last_device();
    if (dev && dev != before && dev->pci_slot >= 0) {
        pci_hotplug_plugged(m->hotplug, dev->pci_slot);
    }
    return true;
}

bool machine_device_del(Device *dev, Error **errp)
{
    Machine *m = &machine;
    if (!dev->ops || !dev->ops->unplug || (dev->pci_slot >= 0 && !m->hotplug)) {
        error_setg(errp, "Device '%s' does not support hotplugging", dev->type);
        return false;
    }
    if (dev->pci_slot < 0) {
        qdev_unplug_now(dev);       /* not on pci.0: no guest handshake (a serial port) */
        return true;
    }
    if (dev->unplug_requested) {
        error_setg(errp, "Device %s is already in the process of unplug", dev->id ? dev->id : "");
        return false;
    }
    /* The guest ejects it through ACPI; DEVICE_DELETED follows. */
    dev->unplug_requested = true;
    pci_hotplug_request_unplug(m->hotplug, dev->pci_slot);
    return true;
}

int machine_vcpu_tid(unsigned index)
{
    return kvm_vm_vcpu_tid(machine.kvm, index);
}

KvmVm *machine_kvm_vm(void)
{
    return machine.kvm;
}

bool machine_dump_vcpus(DumpVcpu **out, unsigned *nr, Error **errp)
{
    unsigned n = kvm_vm_nr_vcpus(machine.kvm);
    DumpVcpu *v = n ? xzalloc(n * sizeof(*v)) : NULL;
    for (unsigned i = 0; i < n; i++) {
        if (!kvm_vm_vcpu_dump_regs(machine.kvm, i, &v[i], errp)) {
            free(v);
            return false;
        }
    }
    *out = v;
    *nr = n;
    return true;
}
