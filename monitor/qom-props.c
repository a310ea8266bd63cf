/*
 * device-list-properties and qom-list-properties: a type's properties,
 * read from the very option table that parses that type's -device,
 * -object or -machine options, so that what a management tool is told
 * and what vireo accepts cannot drift apart. Types that take no options
 * (CPU models, built-in devices) have an empty list, never an error.
 */
#include <stdlib.h>
#include <string.h>

#include "core/secret.h"
#include "monitor/qom-types.h"
#include "qapi/qapi-commands.h"
#include "util/keyval.h"
#include "util/osdep.h"

/* The option tables, defined beside the code that parses them. */
const OptParam *virtio_blk_pci_params(void);
const OptParam *virtio_net_pci_params(void);
const OptParam *virtio_rng_pci_params(void);
const OptParam *virtio_serial_pci_params(void);
const OptParam *virtio_serial_port_params(void);
const OptParam *virtio_balloon_pci_params(void);
const OptParam *vhost_user_blk_pci_params(void);
const OptParam *vhost_user_fs_pci_params(void);
const OptParam *ivshmem_params_table(void);
const OptParam *host_backend_params(void);
const OptParam *rng_object_params_table(void);
const OptParam *isa_serial_params_table(void);
const OptParam *kvm_pit_params(void);
const OptParam *piix4_pm_params(void);
extern const OptParam iothread_params[];

typedef struct TypeParams {
    const char *type;
    const OptParam *(*params)(void);
} TypeParams;

static const OptParam *iothread_table(void)
{
    return iothread_params;
}

static const OptParam *secret_table(void)
{
    return secret_params;
}

static const TypeParams type_params[] = {
    { "virtio-blk-pci", virtio_blk_pci_params },
    { "virtio-net-pci", virtio_net_pci_params },
    { "virtio-rng-pci", virtio_rng_pci_params },
    { "virtio-serial-pci", virtio_serial_pci_params },
    { "virtconsole", virtio_serial_port_params },
    { "virtserialport", virtio_serial_port_params },
    { "virtio-balloon-pci", virtio_balloon_pci_params },
    { "vhost-user-blk-pci", vhost_user_blk_pci_params },
    { "vhost-user-fs-pci", vhost_user_fs_pci_params },
    { "ivshmem-plain", ivshmem_params_table },
    { "ivshmem-doorbell", ivshmem_params_table },
    { "memory-backend-ram", host_backend_params },
    { "memory-backend-memfd", host_backend_params },
    { "memory-backend-file", host_backend_params },
    { "rng-random", rng_object_params_table },
    { "rng-builtin", rng_object_params_table },
    { "iothread", iothread_table },
    { "isa-serial", isa_serial_params_table },
    { "kvm-pit", kvm_pit_params },
    { "PIIX4_PM", piix4_pm_params },
    { "secret", secret_table },
};

/* Keys that name the type or the instance rather than set a property. */
static bool is_selector(const char *key)
{
    return !strcmp(key, "driver") || !strcmp(key, "qom-type") || !strcmp(key, "id") ||
           !strcmp(key, "type");
}

static const char *type_name_of(OptType t)
{
    switch (t) {
    case OPT_BOOL:
        return "bool";
    case OPT_NUMBER:
        return "uint64";
    case OPT_SIZE:
        return "size";
    default:
        return "str";
    }
}

static json_object *default_of(const OptParam *p)
{
    bool b;
    char *end;
    switch (p->type) {
    case OPT_BOOL:
        return parse_bool(p->name, p->def, &b, NULL) ? json_object_new_boolean(b) : NULL;
    case OPT_NUMBER: {
        unsigned long long n = strtoull(p->def, &end, 0);
        return *end ? NULL : json_object_new_uint64(n);
    }
    default:
        return json_object_new_string(p->def);
    }
}

static ObjectPropertyInfoList *describe(const OptParam *params)
{
    ObjectPropertyInfoList *list = NULL, **tail = &list;
    for (const OptParam *p = params; p && p->name; p++) {
        if (is_selector(p->name)) {
            continue;
        }
        ObjectPropertyInfo *info = xzalloc(sizeof(*info));
        info->name = xstrdup(p->name);
        info->type = xstrdup(type_name_of(p->type));
        if (p->help) {
            info->has_description = true;
            info->description = xstrdup(p->help);
        }
        json_object *def = p->def ? default_of(p) : NULL;
        if (def) {
            info->has_default_value = true;
            info->default_value = def;
        }
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}

static const OptParam *params_of(const char *type)
{
    for (size_t i = 0; i < ARRAY_SIZE(type_params); i++) {
        if (!strcmp(type_params[i].type, type)) {
            return type_params[i].params();
        }
    }
    return NULL;
}

/* A machine type takes -machine's parameters: the option table reports them. */
static ObjectPropertyInfoList *machine_props(void)
{
    CommandLineOptionInfoList *opts = qmp_query_command_line_options(true, "machine", NULL);
    ObjectPropertyInfoList *list = NULL, **tail = &list;
    for (CommandLineParameterInfoList *p = opts ? opts->value->parameters : NULL; p;
         p = p->next) {
        if (is_selector(p->value->name)) {
            continue;
        }
        ObjectPropertyInfo *info = xzalloc(sizeof(*info));
        info->name = xstrdup(p->value->name);
        info->type = xstrdup(p->value->type == COMMAND_LINE_PARAMETER_TYPE_BOOLEAN ? "bool" :
                             p->value->type == COMMAND_LINE_PARAMETER_TYPE_SIZE ? "size" :
                             p->value->type == COMMAND_LINE_PARAMETER_TYPE_NUMBER ? "uint64" :
                             "str");
        if (p->value->has_help) {
            info->has_description = true;
            info->description = xstrdup(p->value->help);
        }
        QAPI_LIST_APPEND(tail, info);
    }
    qapi_free_CommandLineOptionInfoList(opts);
    return list;
}

ObjectPropertyInfoList *qmp_device_list_properties(const char *typename, Error **errp)
{
    bool abstract = false;
    if (!qom_type_known(typename, &abstract)) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", typename);
        return NULL;
    }
    if (!qom_type_is_a(typename, "device")) {
        error_setg(errp, "Parameter 'typename' expects device");
        return NULL;
    }
    if (abstract) {
        error_setg(errp, "Parameter 'typename' expects a non-abstract device type");
        return NULL;
    }
    return describe(params_of(typename));
}

ObjectPropertyInfoList *qmp_qom_list_properties(const char *typename, Error **errp)
{
    if (!qom_type_known(typename, NULL)) {
        error_setg(errp, "Class '%s' not found", typename);
        return NULL;
    }
    if (qom_type_is_a(typename, "machine")) {
        return machine_props();
    }
    return describe(params_of(typename));
}
