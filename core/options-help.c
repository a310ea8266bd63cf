/*
 * "help" as an option value (-device help, -device NAME,help, -object help,
 * -chardev help, -netdev help, -accel help, -cpu help, -machine NAME,help):
 * answered from vireo's own tables in the shapes QEMU prints, without
 * building a machine, and vireo then exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"
#include "machine/machine.h"
#include "monitor/qom-types.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

/* -device types as QEMU groups them in its -device help. */
typedef struct DeviceHelp {
    const char *name;
    const char *bus;
    const char *category;
    const char *alias;
    const char *desc;
} DeviceHelp;

static const char *const categories[] = {
    "Controller/Bridge/Hub", "USB", "Storage", "Network", "Input", "Display", "Sound",
    "Misc", "CPU", "Watchdog", "Uncategorized",
};

static const DeviceHelp devices[] = {
    { "vhost-user-blk-pci", "PCI", "Storage", NULL, NULL },
    { "vhost-user-fs-pci", "PCI", "Storage", NULL, NULL },
    { "virtio-blk-pci", "PCI", "Storage", "virtio-blk", NULL },
    { "virtio-net-pci", "PCI", "Network", "virtio-net", NULL },
    { "isa-serial", "ISA", "Input", NULL, NULL },
    { "virtconsole", "virtio-serial-bus", "Input", NULL, NULL },
    { "virtio-serial-pci", "PCI", "Input", "virtio-serial", NULL },
    { "virtserialport", "virtio-serial-bus", "Input", NULL, NULL },
    { "ivshmem-doorbell", "PCI", "Misc", NULL, "Inter-VM shared memory" },
    { "ivshmem-plain", "PCI", "Misc", NULL, "Inter-VM shared memory" },
    { "virtio-balloon-pci", "PCI", "Misc", "virtio-balloon", NULL },
    { "virtio-rng-pci", "PCI", "Misc", "virtio-rng", NULL },
};

/* Character device back-ends chardev/ creates. */
static const char *const chardev_types[] = { "stdio", "null", "socket", "file", "pty" };
/* Network back-ends -netdev creates. */
static const char *const netdev_types[] = { "socket", "hubport", "tap", "vhost-user" };

/* "help" or "?", alone or as the last of a comma list ("NAME,help"). */
static bool asks_help(const char *arg, size_t *name_len)
{
    if (!strcmp(arg, "help") || !strcmp(arg, "?")) {
        *name_len = 0;
        return true;
    }
    size_t n = strlen(arg);
    for (const char *w = "help"; w; w = strcmp(w, "help") ? NULL : "?") {
        size_t wl = strlen(w);
        if (n > wl + 1 && arg[n - wl - 1] == ',' && !strcmp(arg + n - wl, w)) {
            *name_len = n - wl - 1;
            return true;
        }
    }
    return false;
}

static void print_device_list(void)
{
    bool first = true;
    for (size_t c = 0; c < ARRAY_SIZE(categories); c++) {
        bool header = false;
        for (size_t i = 0; i < ARRAY_SIZE(devices); i++) {
            const DeviceHelp *d = &devices[i];
            if (strcmp(d->category, categories[c]) != 0) {
                continue;
            }
            if (!header) {
                /* only categories that have a device, a blank line between them */
                printf("%s%s devices:\n", first ? "" : "\n", categories[c]);
                header = true;
                first = false;
            }
            printf("name \"%s\", bus %s", d->name, d->bus);
            if (d->alias) {
                printf(", alias \"%s\"", d->alias);
            }
            if (d->desc) {
                printf(", desc \"%s\"", d->desc);
            }
            printf("\n");
        }
    }
}

static void print_default(json_object *v)
{
    const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    printf(" (default: %s)", text);
}

/* "TYPE options:" and "  name=<type>            - description (default: X)". */
static void print_props(const char *type, ObjectPropertyInfoList *props)
{
    printf("%s options:\n", type);
    for (ObjectPropertyInfoList *p = props; p; p = p->next) {
        ObjectPropertyInfo *info = p->value;
        char *left = xasprintf("  %s=<%s>", info->name, info->type);
        if (!info->has_description && !info->has_default_value) {
            printf("%s\n", left);
        } else {
            printf("%-24s - %s", left, info->has_description ? info->description : "");
            if (info->has_default_value) {
                print_default(info->default_value);
            }
            printf("\n");
        }
        free(left);
    }
}

/* The name before ",help", with a leading "driver=" or "qom-type=" dropped. */
static char *type_of(const char *arg, size_t len, const char *key)
{
    size_t kl = strlen(key);
    if (len > kl && !strncmp(arg, key, kl) && arg[kl] == '=') {
        arg += kl + 1;
        len -= kl + 1;
    }
    return xstrndup_safe(arg, len);
}

static int device_help(const char *arg, size_t len)
{
    if (!len) {
        print_device_list();
        return 1;
    }
    char *type = type_of(arg, len, "driver");
    Error *err = NULL;
    ObjectPropertyInfoList *props = qmp_device_list_properties(type, &err);
    int rc = 1;
    if (err) {
        error_report("-device %s: %s", arg, error_get_pretty(err));
        error_free(err);
        rc = -1;
    } else {
        print_props(type, props);
    }
    qapi_free_ObjectPropertyInfoList(props);
    free(type);
    return rc;
}

static int object_help(const char *arg, size_t len)
{
    if (!len) {
        printf("List of user creatable objects:\n");
        ObjectTypeInfoList *types = qmp_qom_list_types(false, NULL, false, false, NULL);
        for (ObjectTypeInfoList *t = types; t; t = t->next) {
            const char *n = t->value->name;
            if (!qom_type_is_a(n, "device") && !qom_type_is_a(n, "machine") &&
                !qom_type_is_a(n, "accel")) {
                printf("  %s\n", n);
            }
        }
        qapi_free_ObjectTypeInfoList(types);
        return 1;
    }
    char *type = type_of(arg, len, "qom-type");
    int rc = 1;
    if (!qom_type_known(type, NULL) || qom_type_is_a(type, "device") ||
        qom_type_is_a(type, "machine")) {
        error_report("-object %s: invalid object type: %s", arg, type);
        rc = -1;
    } else {
        ObjectPropertyInfoList *props = qmp_qom_list_properties(type, NULL);
        print_props(type, props);
        qapi_free_ObjectPropertyInfoList(props);
    }
    free(type);
    return rc;
}

static int machine_help(const char *arg, size_t len)
{
    if (!len) {
        machine_list_types(stdout);
        return 1;
    }
    char *name = type_of(arg, len, "type");
    const MachineType *t = machine_type_find(name);
    int rc = 1;
    if (!t) {
        /* QEMU lists the machines when the name is unknown. */
        machine_list_types(stdout);
    } else {
        char *qom = xasprintf("%s-machine", t->name);
        ObjectPropertyInfoList *props = qmp_qom_list_properties(qom, NULL);
        print_props(qom, props);
        qapi_free_ObjectPropertyInfoList(props);
        free(qom);
    }
    free(name);
    return rc;
}

static void print_names(const char *title, const char *const *names, size_t n,
                        const char *indent)
{
    printf("%s\n", title);
    for (size_t i = 0; i < n; i++) {
        printf("%s%s\n", indent, names[i]);
    }
}

int options_answer_help(const char *option, const char *arg)
{
    size_t len;
    if (!arg || !asks_help(arg, &len)) {
        return 0;
    }
    if (!strcmp(option, "device")) {
        return device_help(arg, len);
    }
    if (!strcmp(option, "object")) {
        return object_help(arg, len);
    }
    if (!strcmp(option, "machine") || !strcmp(option, "M")) {
        return machine_help(arg, len);
    }
    if (len) {
        return 0;       /* NAME,help of the options below: their own parsers answer */
    }
    if (!strcmp(option, "chardev")) {
        print_names("Available chardev backend types: ", chardev_types,
                    ARRAY_SIZE(chardev_types), "  ");
    } else if (!strcmp(option, "netdev")) {
        print_names("Available netdev backend types:", netdev_types,
                    ARRAY_SIZE(netdev_types), "");
    } else if (!strcmp(option, "accel")) {
        static const char *const accels[] = { "kvm", "qtest" };
        print_names("Accelerators supported in QEMU binary:", accels, ARRAY_SIZE(accels), "");
    } else if (!strcmp(option, "cpu")) {
        printf("Available CPUs:\n");
        printf("x86 %-20s %s\n", "host", "the host CPU, passed through by KVM");
        printf("x86 %-20s %s\n", "max", "same as host");
    } else {
        return 0;
    }
    return 1;
}
