/*
 * What every vhost-user PCI device (vhost-user-blk-pci, vhost-user-fs-pci)
 * is built from: a VirtIODevice whose queues all run in one back-end. The
 * device types add their properties, configuration space and feature list;
 * status changes, resets, kicks that reach vireo and the machine going
 * away are handled here, the same for all of them.
 */
#ifndef VIREO_VIRTIO_VHOST_USER_DEVICE_H
#define VIREO_VIRTIO_VHOST_USER_DEVICE_H

#include "util/keyval.h"
#include "virtio/vhost-user.h"
#include "virtio/virtio-pci.h"

typedef struct VhostUserDevice {
    VirtIODevice vdev;          /* first: vdev->opaque is the device */
    VhostUserDev *vu;
} VhostUserDevice;

/* The shared operations; a type that needs more copies them into its own ops. */
void vhost_user_device_set_status(VirtIODevice *vdev, uint8_t old);
void vhost_user_device_reset(VirtIODevice *vdev);
void vhost_user_device_quiesce(VirtIODevice *vdev);
extern const VirtIODeviceOps vhost_user_device_ops;

/*
 * The chardev named by the chardev= property, or NULL with errp set
 * ("Property 'PROP.chardev' can't find value 'ID'", as QEMU words it;
 * missing_text when the property is absent).
 */
Chardev *vhost_user_device_chardev(const KeyValList *kv, const char *prop,
                                   const char *missing_text, Error **errp);

/*
 * Initialise s->vdev with nvqs queues of qsize entries (kicks that reach
 * vireo go on to the back-end) and the given ops, and connect to the
 * back-end through chr. The caller fills in the configuration space and
 * host features afterwards.
 */
bool vhost_user_device_init(VhostUserDevice *s, const VirtioCreateContext *ctx, Chardev *chr,
                            const char *name, uint16_t device_id, unsigned config_len,
                            unsigned nvqs, unsigned qsize, const VirtIODeviceOps *ops,
                            VhostUserSetup setup, Error **errp);

/*
 * Put the device on the PCI bus (nvqs + 1 MSI-X vectors unless vectors=
 * says otherwise; modern_only for virtio 1.x-only types). On failure, or
 * when ok is already false, everything is freed, s included.
 */
bool vhost_user_device_plug(VhostUserDevice *s, bool ok, const VirtioCreateContext *ctx,
                            const KeyValList *kv, const char *type, uint32_t class_code,
                            bool modern_only, Error **errp);

#endif
