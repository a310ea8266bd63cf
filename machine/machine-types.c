/*
 * The machine type names -machine accepts and query-machines lists.
 *
 * vireo has one PC board, listed under the name QEMU 7.2 gives its default
 * x86 PC, "pc-i440fx-7.2", with that machine's alias "pc"; its own name
 * "vireo-pc" is accepted too. Management tools (libvirt) lay out a PCI
 * topology only for machines called pc, pc-i440fx-* or q35, and what they
 * rely on for pc-i440fx holds for this board: one PCI root bus "pci.0"
 * reached through ports 0xcf8/0xcfc, where -device ...,bus=pci.0,addr=N
 * places a function, the legacy ISA devices at their usual ports, ACPI PCI
 * hotplug on bus 0, and fw_cfg at 0x510. The chipset itself is not an i440FX (the
 * host bridge is a generic one, there is no PIIX3 with USB or IDE): the
 * description says so, and devices vireo does not have are refused when
 * asked for. "none" is QEMU's empty board.
 */
#include <string.h>

#include "machine/machine.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

#define PC_MAX_CPUS 254     /* APIC id 255 is the broadcast address */

#define PC_DESC "PC with an i440FX-style PCI layout (pci.0, ISA devices, fw_cfg); " \
                "not an i440FX chipset: no PIIX3 USB or IDE"

static const MachineType machine_types[] = {
    { "pc", MACHINE_DEFAULT_TYPE, PC_DESC, MACHINE_BOARD_PC, PC_MAX_CPUS },
    { MACHINE_DEFAULT_TYPE, NULL, PC_DESC, MACHINE_BOARD_PC, PC_MAX_CPUS },
    { "vireo-pc", MACHINE_DEFAULT_TYPE, "vireo's name for its PC", MACHINE_BOARD_PC,
      PC_MAX_CPUS },
    { "none", NULL, "empty machine", MACHINE_BOARD_NONE, 0 },
};

void machine_list_types(FILE *out)
{
    fprintf(out, "Supported machines are:\n");
    for (size_t i = 0; i < ARRAY_SIZE(machine_types); i++) {
        const MachineType *t = &machine_types[i];
        fprintf(out, "%-20s %s", t->name, t->desc);
        if (t->alias_of) {
            fprintf(out, " (alias of %s)", t->alias_of);
        } else if (!strcmp(t->name, MACHINE_DEFAULT_TYPE)) {
            fprintf(out, " (default)");
        }
        fputc('\n', out);
    }
}

const MachineType *machine_type_find(const char *name)
{
    name = name ? name : MACHINE_DEFAULT_TYPE;
    for (size_t i = 0; i < ARRAY_SIZE(machine_types); i++) {
        if (!strcmp(machine_types[i].name, name)) {
            const char *target = machine_types[i].alias_of;
            return target ? machine_type_find(target) : &machine_types[i];
        }
    }
    return NULL;
}

bool machine_type_valid(const char *type)
{
    return machine_type_find(type) != NULL;
}

MachineBoard machine_board_of(const VmConfig *cfg)
{
    const MachineType *t = machine_type_find(cfg->machine_type);
    return t ? t->board : MACHINE_BOARD_PC;
}

bool machine_runs_vcpus(const VmConfig *cfg)
{
    bool qtest = cfg->accel && !strcmp(cfg->accel, "qtest");
    return !qtest && machine_board_of(cfg) != MACHINE_BOARD_NONE;
}

/* The first alias naming t, which query-machines reports with it. */
static const MachineType *first_alias(const MachineType *t)
{
    for (size_t i = 0; i < ARRAY_SIZE(machine_types); i++) {
        const char *target = machine_types[i].alias_of;
        if (target && !strcmp(target, t->name)) {
            return &machine_types[i];
        }
    }
    return NULL;
}

static MachineInfo *describe(const MachineType *t, const MachineType *alias)
{
    const MachineType *board = machine_type_find(t->name);
    MachineInfo *info = xzalloc(sizeof(*info));
    info->name = xstrdup(t->name);
    if (alias) {
        info->has_alias = true;
        info->alias = xstrdup(alias->name);
    }
    if (!strcmp(t->name, MACHINE_DEFAULT_TYPE)) {
        info->has_is_default = true;
        info->is_default = true;
    }
    bool none = board->board == MACHINE_BOARD_NONE;
    info->cpu_max = none ? 1 : board->max_cpus;
    info->has_default_ram_id = true;
    info->default_ram_id = xstrdup(none ? "ram" : "pc.ram");
    if (!none) {
        info->has_default_cpu_type = true;
        info->default_cpu_type = xstrdup("host-x86_64-cpu");
    }
    return info;
}

/*
 * QEMU's MachineInfo carries one alias. Each board's first alias ("pc")
 * rides on the board's entry; any further name gets an entry of its own,
 * so that every name -machine accepts is listed.
 */
MachineInfoList *qmp_query_machines(Error **errp)
{
    MachineInfoList *list = NULL, **tail = &list;
    for (size_t i = 0; i < ARRAY_SIZE(machine_types); i++) {
        const MachineType *t = &machine_types[i];
        if (!t->alias_of) {
            QAPI_LIST_APPEND(tail, describe(t, first_alias(t)));
        } else if (first_alias(machine_type_find(t->alias_of)) != t) {
            QAPI_LIST_APPEND(tail, describe(t, NULL));
        }
    }
    return list;
}

/*
 * The none board and the qtest accelerator have no vCPU, so the list is
 * empty. Under KVM each vCPU is a host thread; vireo places every vCPU in
 * a socket of its own (its APIC id is its index).
 */
CpuInfoFastList *qmp_query_cpus_fast(Error **errp)
{
    CpuInfoFastList *list = NULL, **tail = &list;
    if (!machine_runs_vcpus(&vm_config)) {
        return NULL;
    }
    for (unsigned i = 0; i < vm_config.smp_cpus; i++) {
        CpuInfoFast *info = xzalloc(sizeof(*info));
        info->cpu_index = i;
        info->qom_path = xasprintf("/machine/vcpu[%u]", i);
        info->thread_id = machine_vcpu_tid(i);
        info->target = SYS_EMU_TARGET_X86_64;
        info->has_props = true;
        info->props = xzalloc(sizeof(*info->props));
        info->props->has_socket_id = true;
        info->props->socket_id = i;
        info->props->has_core_id = true;
        info->props->has_thread_id = true;
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}
