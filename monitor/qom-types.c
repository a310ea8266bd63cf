/*
 * qom-list-types: the object types vireo implements, named and arranged
 * as QEMU 7.2 names them, so that a tool asking "does this binary have
 * virtio-blk-pci?" (libvirt's capability probe, QEMU's qos-test) gets an
 * answer it can use. Every concrete type here can be created: by -device
 * or device_add, by -object, or by the machine itself; abstract types are
 * only parents.
 */
#include <stdbool.h>
#include <string.h>

#include "monitor/qom-types.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

typedef struct TypeEntry {
    const char *name;
    const char *parent;         /* NULL for the root */
    bool abstract;
} TypeEntry;

static const TypeEntry types[] = {
    { "object", NULL, true },
    { "device", "object", true },
    { "sys-bus-device", "device", true },
    { "pci-device", "device", true },
    { "isa-device", "device", true },
    /* what the machine builds */
    { "gpex-pcihost", "sys-bus-device", false },
    { "gpex-root", "pci-device", false },
    { "fw_cfg_io", "sys-bus-device", false },
    { "i8042", "isa-device", false },
    { "mc146818rtc", "isa-device", false },
    { "isa-serial", "isa-device", false },
    { "pit-common", "isa-device", true },
    { "kvm-pit", "pit-common", false },         /* the in-kernel PIT */
    { "PIIX4_PM", "sys-bus-device", false },    /* the ACPI PM block (not a PCI function) */
    /* -device */
    { "virtio-pci", "pci-device", true },
    { "virtio-blk-pci-base", "virtio-pci", true },
    { "virtio-blk-pci", "virtio-blk-pci-base", false },
    { "virtio-net-pci-base", "virtio-pci", true },
    { "virtio-net-pci", "virtio-net-pci-base", false },
    { "virtio-rng-pci-base", "virtio-pci", true },
    { "virtio-rng-pci", "virtio-rng-pci-base", false },
    { "virtio-serial-pci-base", "virtio-pci", true },
    { "virtio-serial-pci", "virtio-serial-pci-base", false },
    { "virtio-balloon-pci-base", "virtio-pci", true },
    { "virtio-balloon-pci", "virtio-balloon-pci-base", false },
    { "vhost-user-blk-pci-base", "virtio-pci", true },
    { "vhost-user-blk-pci", "vhost-user-blk-pci-base", false },
    { "vhost-user-fs-pci-base", "virtio-pci", true },
    { "vhost-user-fs-pci", "vhost-user-fs-pci-base", false },
    { "virtio-serial-port", "device", true },
    { "virtserialport", "virtio-serial-port", false },
    { "virtconsole", "virtserialport", false },
    { "ivshmem-common", "pci-device", true },
    { "ivshmem-plain", "ivshmem-common", false },
    { "ivshmem-doorbell", "ivshmem-common", false },
    /* -object */
    { "memory-backend", "object", true },
    { "memory-backend-ram", "memory-backend", false },
    { "memory-backend-memfd", "memory-backend", false },
    { "memory-backend-file", "memory-backend", false },
    { "rng-backend", "object", true },
    { "rng-random", "rng-backend", false },
    { "rng-builtin", "rng-backend", false },
    { "event-loop-base", "object", true },
    { "iothread", "event-loop-base", false },
    { "secret_common", "object", true },
    { "secret", "secret_common", false },
    /* -machine (QEMU's type names: the machine name and "-machine") */
    { "machine", "object", true },
    { "none-machine", "machine", false },
    { "x86-machine", "machine", true },
    { "generic-pc-machine", "x86-machine", true },
    /* the PC board; its aliases "pc" and "vireo-pc" have no type of their own */
    { "pc-i440fx-7.2-machine", "generic-pc-machine", false },
    /* -cpu: every model is the host CPU on KVM */
    { "cpu", "device", true },
    { "x86_64-cpu", "cpu", true },
    { "max-x86_64-cpu", "x86_64-cpu", false },
    { "host-x86_64-cpu", "max-x86_64-cpu", false },
    /* -accel */
    { "accel", "object", true },
    { "kvm-accel", "accel", false },
    { "qtest-accel", "accel", false },
};

static const TypeEntry *find_type(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        if (!strcmp(types[i].name, name)) {
            return &types[i];
        }
    }
    return NULL;
}

/* Is ancestor t itself or one of its parents? */
static bool type_derives_from(const TypeEntry *t, const char *ancestor)
{
    for (; t; t = t->parent ? find_type(t->parent) : NULL) {
        if (!strcmp(t->name, ancestor)) {
            return true;
        }
    }
    return false;
}

bool qom_type_known(const char *name, bool *abstract)
{
    const TypeEntry *t = find_type(name);
    if (t && abstract) {
        *abstract = t->abstract;
    }
    return t != NULL;
}

bool qom_type_is_a(const char *name, const char *ancestor)
{
    const TypeEntry *t = find_type(name);
    return t && type_derives_from(t, ancestor);
}

ObjectTypeInfoList *qmp_qom_list_types(bool has_implements, const char *implements,
                                       bool has_abstract, bool abstract, Error **errp)
{
    ObjectTypeInfoList *list = NULL, **tail = &list;
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        const TypeEntry *t = &types[i];
        if ((t->abstract && !(has_abstract && abstract)) ||
            (has_implements && !type_derives_from(t, implements))) {
            continue;
        }
        ObjectTypeInfo *info = xzalloc(sizeof(*info));
        info->name = xstrdup(t->name);
        if (t->abstract) {
            info->has_abstract = true;
            info->abstract = true;
        }
        if (t->parent) {
            info->has_parent = true;
            info->parent = xstrdup(t->parent);
        }
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}
