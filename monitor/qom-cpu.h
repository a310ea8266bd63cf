/*
 * The vCPUs as QOM objects: qom-list and qom-get on the qom-path that
 * query-cpus-fast reports ("/machine/vcpu[N]"), answered from the vCPU's
 * CPUID (machine/cpuid-info.h) in QEMU 7.2's property names and shapes.
 * Only vCPUs that run under KVM exist (none under qtest or machine none).
 */
#ifndef VIREO_MONITOR_QOM_CPU_H
#define VIREO_MONITOR_QOM_CPU_H

#include <stdbool.h>

#include "qapi/qapi-commands.h"

/* Is path a vCPU's? Sets *index. */
bool qom_cpu_path(const char *path, unsigned *index);
ObjectPropertyInfoList *qom_cpu_list(unsigned index);
json_object *qom_cpu_get(unsigned index, const char *property, Error **errp);
/* /machine's children "vcpu[N]", added to list. */
void qom_cpu_children(ObjectPropertyInfoList **list);

#endif
