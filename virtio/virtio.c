/*
 * The virtio device core: registry, feature negotiation, status, reset,
 * configuration space and interrupts, shared by every device type and
 * transport. See virtio/virtio.h.
 */
#include "virtio/virtio.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/osdep.h"

static VirtIODevice *registry_head, *registry_tail;

VirtIODevice *virtio_device_first(void)
{
    return registry_head;
}

VirtIODevice *virtio_device_find_path(const char *path)
{
    for (VirtIODevice *d = registry_head; d; d = d->next) {
        if (d->path && path && strcmp(d->path, path) == 0) {
            return d;
        }
    }
    return NULL;
}

int virtio_num_queues(const VirtIODevice *vdev)
{
    int n = 0;
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        n += vdev->vq[i].num != 0;
    }
    return n;
}

void virtio_device_init(VirtIODevice *vdev, const char *name, uint16_t device_id,
                        GuestMemory *mem, uint32_t config_len, unsigned nvqs)
{
    vdev->name = name;
    vdev->device_id = device_id;
    vdev->mem = mem;
    vdev->host_features = VIRTIO_COMMON_FEATURES;
    vdev->use_started = true;
    vdev->use_guest_notifier_mask = true;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    vdev->config_len = config_len;
    vdev->config = xzalloc(config_len ? config_len : 1);
    vdev->nvqs = nvqs;
    vdev->vq = xzalloc(sizeof(VirtQueue) * (nvqs ? nvqs : 1));
    for (unsigned i = 0; i < nvqs; i++) {
        vdev->vq[i].vdev = vdev;
        vdev->vq[i].index = i;
        vdev->vq[i].align = VIRTIO_PCI_VRING_ALIGN;
        virtqueue_reset(&vdev->vq[i]);
    }
}

void virtio_device_register(VirtIODevice *vdev, const char *path)
{
    vdev->path = xstrdup(path);
    vdev->next = NULL;
    if (registry_tail) {
        registry_tail->next = vdev;
    } else {
        registry_head = vdev;
    }
    registry_tail = vdev;
}

void virtio_device_unregister(VirtIODevice *vdev)
{
    VirtIODevice *prev = NULL;
    for (VirtIODevice *d = registry_head; d; prev = d, d = d->next) {
        if (d != vdev) {
            continue;
        }
        if (prev) {
            prev->next = d->next;
        } else {
            registry_head = d->next;
        }
        if (registry_tail == d) {
            registry_tail = prev;
        }
        break;
    }
    vdev->next = NULL;
    free(vdev->path);
    vdev->path = NULL;
}

VirtQueue *virtio_queue_setup(VirtIODevice *vdev, unsigned index, uint32_t size,
                              void (*handle_output)(VirtIODevice *, VirtQueue *))
{
    VirtQueue *vq = &vdev->vq[index];
    vq->num_default = size;
    vq->handle_output = handle_output;
    virtqueue_reset(vq);
    return vq;
}

bool virtio_has_feature(const VirtIODevice *vdev, unsigned bit)
{
    return bit < 64 && (vdev->guest_features >> bit & 1);
}

bool virtio_driver_ok(const VirtIODevice *vdev)
{
    return vdev->status & VIRTIO_CONFIG_S_DRIVER_OK;
}

/* ---- features ---- */

uint32_t virtio_read_device_features(const VirtIODevice *vdev, unsigned sel)
{
    return sel < 2 ? (uint32_t)(vdev->host_features >> (32 * sel)) : 0;
}

/*
 * What the driver writes is kept as written, so that FEATURES_OK can be
 * refused for a bit we never offered; the accepted set is what both sides
 * know.
 */
void virtio_write_driver_features(VirtIODevice *vdev, unsigned sel, uint32_t val)
{
    if (sel > 1 || (vdev->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
        return;
    }
    unsigned shift = 32 * sel;
    vdev->driver_features = (vdev->driver_features & ~(0xffffffffULL << shift)) |
                            (uint64_t)val << shift;
    vdev->guest_features = vdev->driver_features & vdev->host_features;
}

/* ---- status and reset ---- */

void virtio_reset(VirtIODevice *vdev)
{
    vdev->status = 0;
    vdev->isr = 0;
    vdev->guest_features = vdev->driver_features = 0;
    vdev->queue_sel = 0;
    vdev->device_feature_sel = vdev->driver_feature_sel = 0;
    vdev->broken = false;
    vdev->started = false;
    vdev->legacy = false;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        virtqueue_reset(&vdev->vq[i]);
    }
    if (vdev->ops && vdev->ops->reset) {
        vdev->ops->reset(vdev);
    }
}

static bool features_acceptable(const VirtIODevice *vdev)
{
    return !(vdev->driver_features & ~vdev->host_features);
}

void virtio_set_status(VirtIODevice *vdev, uint8_t status)
{
    if (status == 0) {
        virtio_reset(vdev);
        return;
    }
    uint8_t old = vdev->status;
    bool asks_features_ok = (status & VIRTIO_CONFIG_S_FEATURES_OK) &&
                            !(old & VIRTIO_CONFIG_S_FEATURES_OK);
    if (asks_features_ok && !features_acceptable(vdev)) {
        status &= ~VIRTIO_CONFIG_S_FEATURES_OK;     /* the driver reads back and gives up */
    }
    if (vdev->broken) {
        status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    }
    vdev->status = status;
    vdev->started = status & VIRTIO_CONFIG_S_DRIVER_OK;
    if (vdev->ops && vdev->ops->set_status) {
        vdev->ops->set_status(vdev, old);
    }
}

/* ---- configuration space ---- */

uint64_t virtio_config_read(VirtIODevice *vdev, uint32_t offset, unsigned size)
{
    if (!range_within(offset, size, vdev->config_len) || size > 8) {
        return 0;
    }
    if (vdev->ops && vdev->ops->config_refresh) {
        vdev->ops->config_refresh(vdev);
    }
    uint64_t val = 0;
    memcpy(&val, vdev->config + offset, size);     /* little endian host and guest */
    return val;
}

void virtio_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size)
{
    if (!range_within(offset, size, vdev->config_len) || size > 8 ||
        !vdev->ops || !vdev->ops->config_write) {
        return;     /* read-only configuration: writes are dropped */
    }
    vdev->ops->config_write(vdev, offset, val, size);
}

static void notify_transport(VirtIODevice *vdev, uint16_t vector)
{
    if (vdev->transport) {
        vdev->transport->notify(vdev, vector);
    }
}

void virtio_notify_config(VirtIODevice *vdev)
{
    vdev->config_generation++;
    if (!virtio_driver_ok(vdev)) {
        return;
    }
    /*
     * QEMU sets the queue bit as well: a driver polling the ISR for queue
     * work (libqos after a resize) then also looks at its queues, which is
     * harmless for the ones that only check the config bit.
     */
    vdev->isr |= VIRTIO_ISR_CONFIG | VIRTIO_ISR_QUEUE;
    notify_transport(vdev, vdev->config_vector);
}

/* ---- errors and kicks ---- */

void virtio_mark_broken(VirtIODevice *vdev, const char *fmt, ...)
{
    if (vdev->broken) {
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A guest can break, reset and break a device in a loop. */
    LOG_GUEST_WARN("%s (%s): %s; the device needs a reset", vdev->name,
                   vdev->path ? vdev->path : "?", msg);
    vdev->broken = true;
    vdev->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (virtio_driver_ok(vdev)) {
        vdev->isr |= VIRTIO_ISR_CONFIG;
        notify_transport(vdev, vdev->config_vector);
    }
}

void virtio_queue_notify(VirtIODevice *vdev, unsigned n)
{
    if (n >= vdev->nvqs) {
        return;     /* a kick for a queue we do not have: ignored, as QEMU does */
    }
    VirtQueue *vq = &vdev->vq[n];
    if (virtqueue_ready(vq) && vq->handle_output) {
        vq->handle_output(vdev, vq);
    }
}

void vhost_dev_info_set_queue(VhostDevInfo *info, unsigned i, const VirtQueue *vq,
                              uint64_t desc_size, uint64_t avail_size, uint64_t used_size)
{
    info->vq[i].desc_phys = vq->desc;
    info->vq[i].desc_size = desc_size;
    info->vq[i].avail_phys = vq->avail;
    info->vq[i].avail_size = avail_size;
    info->vq[i].used_phys = vq->used;
    info->vq[i].used_size = used_size;
}
