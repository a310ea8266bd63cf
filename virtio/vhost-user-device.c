/*
 * The shared part of the vhost-user PCI devices. See virtio/vhost-user-device.h.
 */
#include "virtio/vhost-user-device.h"

#include <stdlib.h>

#include "util/osdep.h"

static VhostUserDevice *of(VirtIODevice *vdev)
{
    return vdev->opaque;
}

/* A kick that reached vireo (no ioeventfd, e.g. under qtest) goes on to the back-end. */
static void handle_output(VirtIODevice *vdev, VirtQueue *vq)
{
    vhost_user_kick(of(vdev)->vu, vq->index);
}

void vhost_user_device_set_status(VirtIODevice *vdev, uint8_t old)
{
    vhost_user_set_status(of(vdev)->vu);
}

void vhost_user_device_reset(VirtIODevice *vdev)
{
    vhost_user_reset(of(vdev)->vu);
}

void vhost_user_device_quiesce(VirtIODevice *vdev)
{
    vhost_user_stop(of(vdev)->vu);
}

const VirtIODeviceOps vhost_user_device_ops = {
    .reset = vhost_user_device_reset,
    .set_status = vhost_user_device_set_status,
    .quiesce = vhost_user_device_quiesce,
};

Chardev *vhost_user_device_chardev(const KeyValList *kv, const char *prop,
                                   const char *missing_text, Error **errp)
{
    const char *id = keyval_get(kv, "chardev");
    if (!id) {
        error_setg(errp, "%s", missing_text);
        return NULL;
    }
    Chardev *chr = chardev_find(id);
    if (!chr) {
        error_setg(errp, "Property '%s.chardev' can't find value '%s'", prop, id);
    }
    return chr;
}

bool vhost_user_device_init(VhostUserDevice *s, const VirtioCreateContext *ctx, Chardev *chr,
                            const char *name, uint16_t device_id, unsigned config_len,
                            unsigned nvqs, unsigned qsize, const VirtIODeviceOps *ops,
                            VhostUserSetup setup, Error **errp)
{
    virtio_device_init(&s->vdev, name, device_id, ctx->mem, config_len, nvqs);
    for (unsigned q = 0; q < nvqs; q++) {
        virtio_queue_setup(&s->vdev, q, qsize, handle_output);
    }
    s->vdev.ops = ops;
    s->vdev.opaque = s;
    setup.name = name;
    setup.vq_index = 0;
    setup.nvqs = nvqs;
    s->vu = vhost_user_connect(chr, &s->vdev, &setup, errp);
    return s->vu != NULL;
}

bool vhost_user_device_plug(VhostUserDevice *s, bool ok, const VirtioCreateContext *ctx,
                            const KeyValList *kv, const char *type, uint32_t class_code,
                            bool modern_only, Error **errp)
{
    VirtioPciOptions po;
    ok = ok && virtio_pci_parse_options(kv, s->vdev.nvqs + 1, &po, errp);
    if (ok) {
        if (modern_only) {
            po.legacy = false;
        }
        virtio_pci_apply_feature_props(kv, &s->vdev);
        ok = virtio_pci_plug(ctx, kv, type, &s->vdev, class_code, &po, errp);
    }
    if (!ok) {
        vhost_user_free(s->vu);
        free(s->vdev.config);
        free(s->vdev.vq);
        free(s);
    }
    return ok;
}
