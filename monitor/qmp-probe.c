/*
 * The first questions a management tool asks: which architecture, whether
 * KVM is there and in use, which migration capabilities exist.
 */
#include <string.h>

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

/* vireo cannot migrate yet, so it has no migration capability to offer. */
MigrationCapabilityStatusList *qmp_query_migrate_capabilities(Error **errp)
{
    return NULL;
}
