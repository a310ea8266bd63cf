/* Device types not built yet: refuse politely. */
#include "virtio/virtio-pci.h"

static bool not_yet(const char *name, Error **errp)
{
    error_setg(errp, "'%s' is not a valid device model name", name);
    return false;
}

bool virtio_net_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{ return not_yet("virtio-net-pci", errp); }
