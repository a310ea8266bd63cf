/*
 * Virtio introspection of the exports (qapi/virtio.json), from the
 * back-end's side: each export is a device at /exports/ID whose rings are
 * the ones the frontend handed over, read through the same checked
 * guest-memory mapping the requests use. The bit names come from the VMM's
 * tables (virtio/virtio-features.c), so both sides print the same words.
 *
 * The vhost-dev member shows what the back-end negotiated: the features
 * the frontend acked and the vhost-user protocol features both agreed on.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "daemons/storage-daemon/storage-daemon.h"
#include "qapi/storage-daemon-qapi-commands.h"
#include "util/osdep.h"
#include "virtio/virtio-qmp-encode.h"

#define EXPORT_PATH_PREFIX "/exports/"
#define DESC_BYTES 16u

/* ---- paths and queues ---- */

static VuDev *find_export(const char *path, Error **errp)
{
    size_t plen = strlen(EXPORT_PATH_PREFIX);
    BlkExport *e = strncmp(path, EXPORT_PATH_PREFIX, plen) ? NULL
                   : blk_export_find(path + plen);
    if (!e) {
        error_setg(errp, "Path %s is not a VirtIODevice", path);
        return NULL;
    }
    return blk_export_dev(e);
}

/* A ring the frontend has set up (its size known). */
static VirtQueue *find_ring(VuDev *dev, uint16_t queue, Error **errp)
{
    return virtio_qmp_queue(dev->vdev.vq, dev->num_queues, queue, errp);
}

VirtioInfoList *qmp_x_query_virtio(Error **errp)
{
    VirtioInfoList *list = NULL, **tail = &list;
    for (BlkExport *e = blk_export_first(); e; e = blk_export_next(e)) {
        VirtioInfo *info = xzalloc(sizeof(*info));
        info->path = xasprintf(EXPORT_PATH_PREFIX "%s", blk_export_id(e));
        info->name = xstrdup("vhost-user-blk");
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}

/* ---- device status ---- */

/* What GET_FEATURES answers: the device type's bits plus the ones the
 * library adds for the protocol itself. */
static uint64_t offered_features(VuDev *dev)
{
    uint64_t f = dev->ops->features(dev) | 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
    if (dev->protocol_offered >> VHOST_USER_PROTOCOL_F_LOG_SHMFD & 1) {
        f |= 1ull << VHOST_F_LOG_ALL;
    }
    return f;
}

static VhostStatus *backend_view(VuDev *dev)
{
    VhostStatus *s = xzalloc(sizeof(*s));
    s->n_mem_sections = dev->mem.nr_regions;
    s->nvqs = dev->num_queues;
    s->features = virtio_qmp_features(VIRTIO_ID_BLOCK, offered_features(dev));
    s->acked_features = virtio_qmp_features(VIRTIO_ID_BLOCK, dev->acked_features);
    s->backend_features = virtio_qmp_features(VIRTIO_ID_BLOCK, offered_features(dev));
    s->protocol_features = virtio_qmp_protocols(dev->protocol_features);
    s->max_queues = dev->num_queues;
    s->log_enabled = dev->log_base != NULL;
    s->log_size = dev->log_size;
    return s;
}

static bool any_ring_started(const VuDev *dev)
{
    for (unsigned q = 0; q < dev->num_queues; q++) {
        if (dev->vring[q].started) {
            return true;
        }
    }
    return false;
}

VirtioStatus *qmp_x_query_virtio_status(const char *path, Error **errp)
{
    VuDev *dev = find_export(path, errp);
    if (!dev) {
        return NULL;
    }
    const VirtIODevice *v = &dev->vdev;
    VirtioStatus *s = xzalloc(sizeof(*s));
    s->name = xstrdup("vhost-user-blk");
    s->device_id = VIRTIO_ID_BLOCK;
    s->vhost_started = dev->conn_fd >= 0 && any_ring_started(dev);
    s->device_endian = xstrdup("little");
    s->guest_features = virtio_qmp_features(VIRTIO_ID_BLOCK, dev->acked_features);
    s->host_features = virtio_qmp_features(VIRTIO_ID_BLOCK, offered_features(dev));
    s->backend_features = virtio_qmp_features(VIRTIO_ID_BLOCK, offered_features(dev));
    s->num_vqs = virtio_num_queues(v);
    s->status = virtio_qmp_status_bits(dev->status);
    s->isr = v->isr;
    s->queue_sel = v->queue_sel;
    /* The back-end cannot see the guest's run state; rings running is
     * what it knows of it. */
    s->vm_running = s->vhost_started;
    s->broken = v->broken;
    s->disabled = v->disabled;
    s->use_started = v->use_started;
    s->started = v->started;
    s->start_on_kick = v->start_on_kick;
    s->disable_legacy_check = v->disable_legacy_check;
    s->bus_name = xstrdup("");
    s->use_guest_notifier_mask = v->use_guest_notifier_mask;
    s->has_vhost_dev = dev->conn_fd >= 0;
    s->vhost_dev = s->has_vhost_dev ? backend_view(dev) : NULL;
    return s;
}

/* ---- rings ---- */

VirtQueueStatus *qmp_x_query_virtio_queue_status(const char *path, uint16_t queue,
                                                 Error **errp)
{
    VuDev *dev = find_export(path, errp);
    VirtQueue *vq = dev ? find_ring(dev, queue, errp) : NULL;
    if (!vq) {
        return NULL;
    }
    return virtio_qmp_queue_status("vhost-user-blk", queue, vq);
}

/* The back-end's own descriptors and mappings of a ring. */
VirtVhostQueueStatus *qmp_x_query_virtio_vhost_queue_status(const char *path, uint16_t queue,
                                                            Error **errp)
{
    VuDev *dev = find_export(path, errp);
    VirtQueue *vq = dev ? find_ring(dev, queue, errp) : NULL;
    if (!vq) {
        return NULL;
    }
    const VuVring *vr = &dev->vring[queue];
    VirtVhostQueueStatus *s = xzalloc(sizeof(*s));
    s->name = xstrdup("vhost-user-blk");
    s->kick = vr->kick_fd;
    s->call = vr->call_fd;
    s->num = vq->num;
    s->desc_phys = vq->desc;
    s->desc_size = DESC_BYTES * vq->num;
    s->avail_phys = vq->avail;
    s->avail_size = 6 + 2 * vq->num;
    s->used_phys = vq->used;
    s->used_size = 6 + 8 * vq->num;
    s->desc = (uintptr_t)gmem_ptr(&dev->mem, s->desc_phys, s->desc_size);
    s->avail = (uintptr_t)gmem_ptr(&dev->mem, s->avail_phys, s->avail_size);
    s->used = (uintptr_t)gmem_ptr(&dev->mem, s->used_phys, s->used_size);
    return s;
}

VirtioQueueElement *qmp_x_query_virtio_queue_element(const char *path, uint16_t queue,
                                                     bool has_index, uint16_t index,
                                                     Error **errp)
{
    VuDev *dev = find_export(path, errp);
    VirtQueue *vq = dev ? find_ring(dev, queue, errp) : NULL;
    if (!vq) {
        return NULL;
    }
    return virtio_qmp_queue_element("vhost-user-blk", &dev->mem, vq, queue, has_index, index,
                                    errp);
}
