#include "core/qdev.h"

#include <stdlib.h>
#include <string.h>

#include "qapi/qapi-events.h"
#include "util/osdep.h"

static Device *devices, **devices_tail = &devices;
static unsigned anon_count, unattached_count;

Device *qdev_find_by_id(const char *id)
{
    for (Device *d = devices; d; d = d->next) {
        if (d->id && !strcmp(d->id, id)) {
            return d;
        }
    }
    return NULL;
}

Device *qdev_find_by_path(const char *path)
{
    for (Device *d = devices; d; d = d->next) {
        if (!strcmp(d->path, path)) {
            return d;
        }
    }
    return NULL;
}

Device *qdev_first(void)
{
    return devices;
}

Device *qdev_add(const char *type, const char *id, const char *bus, DeviceOrigin origin,
                 const DeviceOps *ops, void *opaque, Error **errp)
{
    if (id && qdev_find_by_id(id)) {
        error_setg(errp, "Duplicate device ID '%s'", id);
        return NULL;
    }
    Device *d = xzalloc(sizeof(*d));
    d->type = xstrdup(type);
    d->id = id ? xstrdup(id) : NULL;
    d->bus = xstrdup(bus ? bus : "main-system-bus");
    d->ops = ops;
    d->opaque = opaque;
    d->pci_slot = -1;
    if (origin == DEVICE_USER && id) {
        d->path = xasprintf("/machine/peripheral/%s", id);
    } else if (origin == DEVICE_USER) {
        d->path = xasprintf("/machine/peripheral-anon/device[%u]", anon_count++);
    } else {
        d->path = xasprintf("/machine/unattached/device[%u]", unattached_count++);
    }
    *devices_tail = d;
    devices_tail = &d->next;
    return d;
}

void qdev_remove(Device *dev)
{
    for (Device **p = &devices; *p; p = &(*p)->next) {
        if (*p == dev) {
            *p = dev->next;
            if (devices_tail == &dev->next) {
                devices_tail = p;
            }
            break;
        }
    }
    free(dev->type);
    free(dev->id);
    free(dev->bus);
    free(dev->path);
    free(dev);
}

void qdev_set_pci_slot(Device *dev, int slot)
{
    dev->pci_slot = slot;
}

Device *qdev_find_by_pci_slot(int slot)
{
    for (Device *d = devices; d; d = d->next) {
        if (d->pci_slot == slot && slot >= 0) {
            return d;
        }
    }
    return NULL;
}

void qdev_unplug_now(Device *dev)
{
    char *id = dev->id ? xstrdup(dev->id) : NULL;
    char *path = xstrdup(dev->path);
    bool virtio = strncmp(dev->type, "virtio-", 7) == 0 && dev->pci_slot >= 0;
    if (dev->ops && dev->ops->unplug) {
        dev->ops->unplug(dev->opaque);
    }
    qdev_remove(dev);
    if (virtio) {
        char *child = xasprintf("%s/virtio-backend", path);
        qapi_event_send_device_deleted(false, NULL, child);
        free(child);
    }
    qapi_event_send_device_deleted(id != NULL, id, path);
    free(id);
    free(path);
}

/* Buses in first-seen order, each followed by its devices. */
void qdev_print_tree(StrBuf *out)
{
    strbuf_puts(out, "bus: main-system-bus\n  type System\n");
    const char *buses[32];
    int nr = 0;
    for (Device *d = devices; d; d = d->next) {
        bool seen = false;
        for (int i = 0; i < nr; i++) {
            seen |= !strcmp(buses[i], d->bus);
        }
        if (!seen && nr < (int)ARRAY_SIZE(buses)) {
            buses[nr++] = d->bus;
        }
    }
    for (int b = 0; b < nr; b++) {
        bool system = !strcmp(buses[b], "main-system-bus");
        int indent = system ? 2 : 4;
        if (!system) {
            strbuf_printf(out, "  bus: %s\n", buses[b]);
        }
        for (Device *d = devices; d; d = d->next) {
            if (strcmp(d->bus, buses[b]) != 0) {
                continue;
            }
            strbuf_printf(out, "%*sdev: %s, id \"%s\"\n", indent, "", d->type, d->id ? d->id : "");
            if (d->ops && d->ops->print_props) {
                d->ops->print_props(d->opaque, out, indent + 2);
            }
        }
    }
}
