/*
 * The device tree as management tools see it: every device has a type
 * name, an optional id, a bus, and a canonical path in QEMU's layout:
 *   /machine/peripheral/ID             devices created with -device ...,id=ID
 *   /machine/peripheral-anon/device[N] devices created with -device and no id
 *   /machine/unattached/device[N]      devices the machine creates itself
 * 'info qtree' and path-based QMP commands (virtio introspection) use it.
 */
#ifndef VIREO_CORE_QDEV_H
#define VIREO_CORE_QDEV_H

#include <stdbool.h>

#include "util/error.h"
#include "util/strbuf.h"

typedef enum DeviceOrigin {
    DEVICE_BUILTIN,         /* part of the machine */
    DEVICE_USER,            /* from -device */
} DeviceOrigin;

typedef struct Device Device;

typedef struct DeviceOps {
    /* Append "name = value" property lines for info qtree (indent given). */
    void (*print_props)(void *opaque, StrBuf *out, int indent);
    /*
     * Take the device out of the machine and free it (device_del, once the
     * guest ejected it). NULL: the device cannot be unplugged.
     */
    void (*unplug)(void *opaque);
} DeviceOps;

struct Device {
    char *type;             /* "isa-serial", "virtio-blk-pci", ... */
    char *id;               /* NULL when none was given */
    char *path;             /* canonical path */
    char *bus;              /* "main-system-bus", "isa.0", "pci.0" */
    const DeviceOps *ops;
    void *opaque;
    int pci_slot;           /* on pci.0: its slot; -1 otherwise */
    bool unplug_requested;  /* device_del asked the guest to eject it */
    Device *next;
};

/* Register a device; fails if id is already taken. */
Device *qdev_add(const char *type, const char *id, const char *bus, DeviceOrigin origin,
                 const DeviceOps *ops, void *opaque, Error **errp);
void qdev_remove(Device *dev);
Device *qdev_find_by_path(const char *path);
Device *qdev_find_by_id(const char *id);
Device *qdev_first(void);   /* in creation order; follow ->next */

/* A PCI device records where it sits (ACPI hotplug works per slot). */
void qdev_set_pci_slot(Device *dev, int slot);
Device *qdev_find_by_pci_slot(int slot);
/*
 * Unplug now: the device's unplug op frees it, then DEVICE_DELETED is sent
 * (for a virtio proxy, first for its virtio-backend child, as QEMU does).
 */
void qdev_unplug_now(Device *dev);

/* 'info qtree' */
void qdev_print_tree(StrBuf *out);

#endif
