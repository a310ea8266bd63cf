/*
 * The -device front door: every virtio-*-pci type and the virtio-serial
 * ports, created in command-line order once the machine has RAM and a PCI
 * bus. Back-ends (-object rng-*, -drive, -netdev) are looked up by id when a
 * device names them.
 */
#include <stdlib.h>
#include <string.h>

#include "hw/ivshmem.h"
#include "util/osdep.h"
#include "virtio/virtio-pci.h"

typedef bool DeviceCreateFn(const VirtioCreateContext *ctx, const char *opts, Error **errp);

static bool create_virtconsole(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    return virtio_serial_port_create(ctx, opts, true, errp);
}

static bool create_virtserialport(const VirtioCreateContext *ctx, const char *opts,
                                  Error **errp)
{
    return virtio_serial_port_create(ctx, opts, false, errp);
}

/* Not virtio, but created in the same command-line order through this door. */
static bool create_ivshmem(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    return ivshmem_create(opts, ctx->pci, errp);
}

static const struct {
    const char *driver;
    DeviceCreateFn *create;
} device_types[] = {
    { "virtio-rng-pci", virtio_rng_pci_create },
    { "virtio-blk-pci", virtio_blk_pci_create },
    { "virtio-serial-pci", virtio_serial_pci_create },
    { "virtconsole", create_virtconsole },
    { "virtserialport", create_virtserialport },
    { "virtio-balloon-pci", virtio_balloon_pci_create },
    { "virtio-net-pci", virtio_net_pci_create },
    { "vhost-user-blk-pci", vhost_user_blk_pci_create },
    { "vhost-user-fs-pci", vhost_user_fs_pci_create },
    { "ivshmem-plain", create_ivshmem },
    { "ivshmem-doorbell", create_ivshmem },
};

/* The driver name: the text before the first comma. */
static char *driver_name(const char *opts)
{
    if (strncmp(opts, "driver=", 7) == 0) {
        opts += 7;
    }
    return xstrndup_safe(opts, strcspn(opts, ","));
}

const char *virtio_find_backend_opts(const DeviceOption *list, const char *id)
{
    for (const DeviceOption *o = list; o; o = o->next) {
        const char *p = strstr(o->opts, "id=");
        while (p) {
            bool at_key = p == o->opts || p[-1] == ',';
            size_t n = strcspn(p + 3, ",");
            if (at_key && strlen(id) == n && strncmp(p + 3, id, n) == 0) {
                return o->opts;
            }
            p = strstr(p + 1, "id=");
        }
    }
    return NULL;
}

bool virtio_pci_create_device(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    char *name = driver_name(opts);
    bool ok = false, found = false;
    for (size_t i = 0; i < ARRAY_SIZE(device_types); i++) {
        if (strcmp(name, device_types[i].driver) == 0) {
            found = true;
            ok = device_types[i].create(ctx, opts, errp);
            break;
        }
    }
    if (!found) {
        error_setg(errp, "'%s' is not a valid device model name", name);
    }
    free(name);
    return ok;
}

bool virtio_pci_create_devices(const VmConfig *cfg, PciHost *pci, GuestMemory *mem,
                               Error **errp)
{
    VirtioCreateContext ctx = { .cfg = cfg, .pci = pci, .mem = mem };
    for (const DeviceOption *d = cfg->devices; d; d = d->next) {
        if (!virtio_pci_create_device(&ctx, d->opts, errp)) {
            error_prepend(errp, "-device %s: ", d->opts);
            return false;
        }
    }
    return true;
}
