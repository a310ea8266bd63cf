/*
 * qom-list / qom-get on the vCPU objects: see monitor/qom-cpu.h.
 */
#include "monitor/qom-cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vm-config.h"
#include "machine/cpuid-info.h"
#include "machine/machine.h"
#include "util/osdep.h"

#define CPU_TYPE "host-x86_64-cpu"      /* every -cpu model is the host's on KVM */

bool qom_cpu_path(const char *path, unsigned *index)
{
    static const char prefix[] = "/machine/vcpu[";
    if (strncmp(path, prefix, strlen(prefix)) != 0 || !machine_runs_vcpus(&vm_config)) {
        return false;
    }
    const char *p = path + strlen(prefix);
    unsigned long n = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++) {
        n = n * 10 + (unsigned long)(*p - '0');
    }
    if (digits == 0 || (digits > 1 && p[-digits] == '0') || strcmp(p, "]") != 0 ||
        n >= vm_config.smp_cpus) {
        return false;
    }
    *index = (unsigned)n;
    return true;
}

static void add(ObjectPropertyInfoList **list, const char *name, const char *type)
{
    ObjectPropertyInfo *info = xzalloc(sizeof(*info));
    info->name = xstrdup(name);
    info->type = xstrdup(type);
    QAPI_LIST_PREPEND(*list, info);
}

void qom_cpu_children(ObjectPropertyInfoList **list)
{
    if (!machine_runs_vcpus(&vm_config)) {
        return;
    }
    for (unsigned i = vm_config.smp_cpus; i-- > 0;) {
        char *name = xasprintf("vcpu[%u]", i);
        add(list, name, "child<" CPU_TYPE ">");
        free(name);
    }
}

/* QEMU's names and types, in the order qom-list gives them. */
static const struct { const char *name, *type; } cpu_props[] = {
    { "type", "string" },
    { "parent_bus", "link<bus>" },
    { "realized", "bool" },
    { "hotplugged", "bool" },
    { "hotpluggable", "bool" },
    { "family", "int" },
    { "model", "int" },
    { "stepping", "int" },
    { "vendor", "string" },
    { "model-id", "string" },
    { "apic-id", "uint32" },
    { "socket-id", "int32" },
    { "core-id", "int32" },
    { "thread-id", "int32" },
    { "feature-words", "X86CPUFeatureWordInfo" },
    { "filtered-features", "X86CPUFeatureWordInfo" },
};

ObjectPropertyInfoList *qom_cpu_list(unsigned index)
{
    ObjectPropertyInfoList *list = NULL;
    for (size_t i = ARRAY_SIZE(cpu_props); i-- > 0;) {
        add(&list, cpu_props[i].name, cpu_props[i].type);
    }
    return list;
}

/* A list of X86CPUFeatureWordInfo, as QEMU 7.2 answers it. */
static json_object *feature_words(unsigned index, bool filtered, Error **errp)
{
    CpuFeatureWord w[CPU_FEATURE_WORDS];
    if (!machine_cpu_feature_words(index, filtered, w)) {
        error_setg(errp, "vCPU %u has no CPUID yet", index);
        return NULL;
    }
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < CPU_FEATURE_WORDS; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "cpuid-register", json_object_new_string(w[i].reg));
        if (w[i].has_ecx) {
            json_object_object_add(o, "cpuid-input-ecx", json_object_new_int64(w[i].ecx));
        }
        json_object_object_add(o, "cpuid-input-eax", json_object_new_int64(w[i].eax));
        json_object_object_add(o, "features", json_object_new_int64(w[i].features));
        json_object_array_add(list, o);
    }
    return list;
}

json_object *qom_cpu_get(unsigned index, const char *property, Error **errp)
{
    if (!strcmp(property, "feature-words") || !strcmp(property, "filtered-features")) {
        return feature_words(index, !strcmp(property, "filtered-features"), errp);
    }
    if (!strcmp(property, "type")) {
        return json_object_new_string(CPU_TYPE);
    }
    if (!strcmp(property, "parent_bus")) {
        return json_object_new_string("");      /* a CPU sits on no bus */
    }
    if (!strcmp(property, "realized")) {
        return json_object_new_boolean(true);
    }
    if (!strcmp(property, "hotplugged") || !strcmp(property, "hotpluggable")) {
        return json_object_new_boolean(false);  /* vireo does not hotplug vCPUs */
    }
    if (!strcmp(property, "socket-id")) {
        return json_object_new_int64(index);    /* one vCPU per socket (query-cpus-fast) */
    }
    if (!strcmp(property, "core-id") || !strcmp(property, "thread-id")) {
        return json_object_new_int64(0);
    }
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(cpu_props); i++) {
        known |= !strcmp(cpu_props[i].name, property);
    }
    if (!known) {
        error_setg(errp, "Property '" CPU_TYPE ".%s' not found", property);
        return NULL;
    }
    CpuIdentity id;
    if (!machine_cpu_identity(index, &id)) {
        error_setg(errp, "vCPU %u has no CPUID yet", index);
        return NULL;
    }
    if (!strcmp(property, "family")) {
        return json_object_new_int64(id.family);
    }
    if (!strcmp(property, "model")) {
        return json_object_new_int64(id.model);
    }
    if (!strcmp(property, "stepping")) {
        return json_object_new_int64(id.stepping);
    }
    if (!strcmp(property, "vendor")) {
        return json_object_new_string(id.vendor);
    }
    if (!strcmp(property, "model-id")) {
        return json_object_new_string(id.model_id);
    }
    return json_object_new_int64(id.apic_id);   /* apic-id */
}
