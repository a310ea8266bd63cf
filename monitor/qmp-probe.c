/*
 * The first questions a management tool asks: which architecture, whether
 * KVM is there and in use, which migration capabilities exist.
 */
#include <string.h>

#include "chardev/chardev.h"
#include "core/vm-config.h"
#include "machine/kvm.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

TargetInfo *qmp_query_target(Error **errp)
{
    TargetInfo *info = xzalloc(sizeof(*info));
    info->arch = SYS_EMU_TARGET_X86_64;
    return info;
}

KvmInfo *qmp_query_kvm(Error **errp)
{
    KvmInfo *info = xzalloc(sizeof(*info));
    info->present = kvm_available(NULL);
    /* The accelerator is chosen at start-up (-accel, -machine accel=). */
    info->enabled = info->present && vm_config.accel && !strcmp(vm_config.accel, "kvm");
    return info;
}

/* vireo cannot migrate yet; "events" can be turned on and has nothing to report. */
static bool migration_events;

MigrationCapabilityStatusList *qmp_query_migrate_capabilities(Error **errp)
{
    MigrationCapabilityStatusList *list = NULL, **tail = &list;
    MigrationCapabilityStatus *cap = xzalloc(sizeof(*cap));
    cap->capability = MIGRATION_CAPABILITY_EVENTS;
    cap->state = migration_events;
    QAPI_LIST_APPEND(tail, cap);
    return list;
}

void qmp_migrate_set_capabilities(MigrationCapabilityStatusList *caps, Error **errp)
{
    for (MigrationCapabilityStatusList *c = caps; c; c = c->next) {
        if (c->value->capability == MIGRATION_CAPABILITY_EVENTS) {
            migration_events = c->value->state;
        }
    }
}

MigrationInfo *qmp_query_migrate(Error **errp)
{
    return xzalloc(sizeof(MigrationInfo));
}

static void add_chardev(void *ctx, Chardev *chr)
{
    ChardevInfoList ***tail = ctx;
    ChardevInfo *info = xzalloc(sizeof(*info));
    info->label = xstrdup(chardev_id(chr));
    info->filename = xstrdup(chardev_filename(chr) ? chardev_filename(chr) : "");
    info->frontend_open = chardev_has_frontend(chr);
    QAPI_LIST_APPEND(*tail, info);
}

ChardevInfoList *qmp_query_chardev(Error **errp)
{
    ChardevInfoList *list = NULL, **tail = &list;
    chardev_foreach(add_chardev, &tail);
    return list;
}

/*
 * No vireo machine can add vCPUs after start (query-machines reports
 * hotpluggable-cpus false for every board), so there are no slots to list:
 * QEMU answers a machine without CPU hotplug with this error.
 */
HotpluggableCPUList *qmp_query_hotpluggable_cpus(Error **errp)
{
    error_setg(errp, "The feature '%s' is not enabled", "query-hotpluggable-cpus");
    return NULL;
}

/* The ACPI tables offer only \_S5 (soft-off): a guest never suspends. */
void qmp_system_wakeup(Error **errp)
{
    error_setg(errp, "wake-up from suspend is not supported by this guest");
}
