/*
 * Virtio introspection over QMP: x-query-virtio, x-query-virtio-status,
 * x-query-virtio-queue-status, x-query-virtio-vhost-queue-status and
 * x-query-virtio-queue-element. Everything is read from the device model's
 * live state; ring contents are read from guest memory through the
 * bounds-checked helpers, because a guest may point its rings anywhere.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/runstate.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"
#include "virtio/vhost.h"
#include "virtio/virtio-qmp-encode.h"
#include "virtio/virtio.h"

/* ---- finding devices and queues ---- */

static VirtIODevice *find_device(const char *path, Error **errp)
{
    VirtIODevice *vdev = virtio_device_find_path(path);
    if (!vdev) {
        error_setg(errp, "Path %s is not a VirtIODevice", path);
    }
    return vdev;
}

static VirtQueue *find_queue(VirtIODevice *vdev, uint16_t queue, Error **errp)
{
    return virtio_qmp_queue(vdev->vq, vdev->nvqs, queue, errp);
}

/* Newest first, as QEMU lists them. */
VirtioInfoList *qmp_x_query_virtio(Error **errp)
{
    VirtioInfoList *list = NULL;
    for (VirtIODevice *vdev = virtio_device_first(); vdev; vdev = vdev->next) {
        VirtioInfo *info = xzalloc(sizeof(*info));
        info->path = xstrdup(vdev->path);
        info->name = xstrdup(vdev->name);
        QAPI_LIST_PREPEND(list, info);
    }
    return list;
}

/*
 * The name of the bus a device provides to its children: only
 * virtio-serial has one, "ID.0" when the device was given an id.
 */
static char *child_bus_name(const VirtIODevice *vdev)
{
    static const char prefix[] = "/machine/peripheral/";
    static const char suffix[] = "/virtio-backend";
    size_t plen = strlen(prefix), len = strlen(vdev->path);
    if (vdev->device_id != VIRTIO_ID_CONSOLE || strncmp(vdev->path, prefix, plen) != 0 ||
        len < plen + strlen(suffix)) {
        return xstrdup("");
    }
    size_t id_len = len - plen - strlen(suffix);
    return xasprintf("%.*s.0", (int)id_len, vdev->path + plen);
}

static VhostStatus *vhost_status(const VirtIODevice *vdev)
{
    const VhostDevInfo *h = vdev->vhost;
    VhostStatus *s = xzalloc(sizeof(*s));
    s->n_mem_sections = h->n_mem_sections;
    s->n_tmp_sections = h->n_tmp_sections;
    s->nvqs = h->nvqs;
    s->vq_index = h->vq_index;
    s->features = virtio_qmp_features(vdev->device_id, h->features);
    s->acked_features = virtio_qmp_features(vdev->device_id, h->acked_features);
    s->backend_features = virtio_qmp_features(vdev->device_id, h->backend_features);
    s->protocol_features = virtio_qmp_protocols(h->protocol_features);
    s->max_queues = h->max_queues;
    s->backend_cap = h->backend_cap;
    s->log_enabled = h->log_enabled;
    s->log_size = h->log_size;
    return s;
}

VirtioStatus *qmp_x_query_virtio_status(const char *path, Error **errp)
{
    VirtIODevice *vdev = find_device(path, errp);
    if (!vdev) {
        return NULL;
    }
    VirtioStatus *s = xzalloc(sizeof(*s));
    s->name = xstrdup(vdev->name);
    s->device_id = vdev->device_id;
    s->vhost_started = vdev->vhost_started;
    s->device_endian = xstrdup("little");
    s->guest_features = virtio_qmp_features(vdev->device_id, vdev->guest_features);
    s->host_features = virtio_qmp_features(vdev->device_id, vdev->host_features);
    s->backend_features = virtio_qmp_features(vdev->device_id, vdev->backend_features);
    s->num_vqs = virtio_num_queues(vdev);
    s->status = virtio_qmp_status_bits(vdev->status);
    s->isr = vdev->isr;
    s->queue_sel = vdev->queue_sel;
    s->vm_running = runstate_is_running();
    s->broken = vdev->broken;
    s->disabled = vdev->disabled;
    s->use_started = vdev->use_started;
    s->started = vdev->started;
    s->start_on_kick = vdev->start_on_kick;
    s->disable_legacy_check = vdev->disable_legacy_check;
    s->bus_name = child_bus_name(vdev);
    s->use_guest_notifier_mask = vdev->use_guest_notifier_mask;
    if (vdev->vhost_started && vdev->vhost) {
        s->has_vhost_dev = true;
        s->vhost_dev = vhost_status(vdev);
    }
    return s;
}

VirtQueueStatus *qmp_x_query_virtio_queue_status(const char *path, uint16_t queue, Error **errp)
{
    VirtIODevice *vdev = find_device(path, errp);
    VirtQueue *vq = vdev ? find_queue(vdev, queue, errp) : NULL;
    if (!vq) {
        return NULL;
    }
    VirtQueueStatus *s = virtio_qmp_queue_status(vdev->name, vq->index, vq);
    /*
     * With vhost running, ring progress lives in the kernel: it is asked for
     * the avail position of its own queues, and there is no shadow index.
     */
    if (vdev->vhost_started) {
        s->has_shadow_avail_idx = false;
        s->shadow_avail_idx = 0;
        int idx = vdev->vhost && vdev->vhost->dev ?
                  vhost_dev_last_avail_idx(vdev->vhost->dev, queue) : -1;
        s->has_last_avail_idx = idx >= 0;
        s->last_avail_idx = idx >= 0 ? idx : 0;
    }
    return s;
}

VirtVhostQueueStatus *qmp_x_query_virtio_vhost_queue_status(const char *path, uint16_t queue,
                                                            Error **errp)
{
    VirtIODevice *vdev = find_device(path, errp);
    if (!vdev) {
        return NULL;
    }
    if (!vdev->vhost_started || !vdev->vhost) {
        /* The doubled prefix is how QEMU words it; clients match on it. */
        error_setg(errp, "Error: vhost device has not started yet");
        return NULL;
    }
    const VhostDevInfo *h = vdev->vhost;
    if (queue < h->vq_index || queue >= h->vq_index + h->nvqs) {
        error_setg(errp, "Invalid vhost virtqueue number %d", queue);
        return NULL;
    }
    unsigned i = queue - (unsigned)h->vq_index;
    VirtVhostQueueStatus *s = xzalloc(sizeof(*s));
    s->name = xstrdup(vdev->name);
    s->num = queue < vdev->nvqs ? vdev->vq[queue].num : 0;
    s->desc_phys = h->vq[i].desc_phys;
    s->desc_size = h->vq[i].desc_size;
    s->avail_phys = h->vq[i].avail_phys;
    s->avail_size = h->vq[i].avail_size;
    s->used_phys = h->vq[i].used_phys;
    s->used_size = h->vq[i].used_size;
    s->desc = (uint64_t)(uintptr_t)gmem_ptr(vdev->mem, h->vq[i].desc_phys, h->vq[i].desc_size);
    s->avail = (uint64_t)(uintptr_t)gmem_ptr(vdev->mem, h->vq[i].avail_phys, h->vq[i].avail_size);
    s->used = (uint64_t)(uintptr_t)gmem_ptr(vdev->mem, h->vq[i].used_phys, h->vq[i].used_size);
    return s;
}

VirtioQueueElement *qmp_x_query_virtio_queue_element(const char *path, uint16_t queue,
                                                     bool has_index, uint16_t index,
                                                     Error **errp)
{
    VirtIODevice *vdev = find_device(path, errp);
    VirtQueue *vq = vdev ? find_queue(vdev, queue, errp) : NULL;
    if (!vq) {
        return NULL;
    }
    return virtio_qmp_queue_element(vdev->name, vdev->mem, vq, queue, has_index, index, errp);
}
