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
#include "virtio/virtio-features.h"
#include "virtio/virtio.h"

/* ---- decoding bitmaps into names ---- */

/* Append the names of the set bits of *bits found in table, clearing them. */
static strList *decode(const VirtioFeatureName *table, uint64_t *bits, bool is_mask)
{
    strList *list = NULL, **tail = &list;
    for (const VirtioFeatureName *f = table; f->text; f++) {
        uint64_t mask = is_mask ? f->bit : 1ULL << f->bit;
        if (*bits & mask) {
            QAPI_LIST_APPEND(tail, xstrdup(f->text));
            *bits &= ~mask;
        }
    }
    return list;
}

static VirtioDeviceFeatures *decode_features(uint16_t device_id, uint64_t bitmap)
{
    VirtioDeviceFeatures *f = xzalloc(sizeof(*f));
    f->transports = decode(virtio_transport_feature_names(), &bitmap, false);
    const VirtioFeatureName *table = virtio_device_feature_names(device_id);
    if (table) {
        f->has_dev_features = true;
        f->dev_features = decode(table, &bitmap, false);
    }
    if (bitmap) {
        f->has_unknown_dev_features = true;
        f->unknown_dev_features = bitmap;
    }
    return f;
}

static VirtioDeviceStatus *decode_status(uint8_t status)
{
    VirtioDeviceStatus *s = xzalloc(sizeof(*s));
    uint64_t bits = status;
    s->statuses = decode(virtio_status_names(), &bits, true);
    if (bits) {
        s->has_unknown_statuses = true;
        s->unknown_statuses = (uint8_t)bits;
    }
    return s;
}

static VhostDeviceProtocols *decode_protocols(uint64_t bitmap)
{
    VhostDeviceProtocols *p = xzalloc(sizeof(*p));
    p->protocols = decode(virtio_vhost_user_protocol_names(), &bitmap, false);
    if (bitmap) {
        p->has_unknown_protocols = true;
        p->unknown_protocols = bitmap;
    }
    return p;
}

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
    if (queue >= vdev->nvqs || vdev->vq[queue].num == 0) {
        error_setg(errp, "Invalid virtqueue number %d", queue);
        return NULL;
    }
    return &vdev->vq[queue];
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
    s->features = decode_features(vdev->device_id, h->features);
    s->acked_features = decode_features(vdev->device_id, h->acked_features);
    s->backend_features = decode_features(vdev->device_id, h->backend_features);
    s->protocol_features = decode_protocols(h->protocol_features);
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
    s->guest_features = decode_features(vdev->device_id, vdev->guest_features);
    s->host_features = decode_features(vdev->device_id, vdev->host_features);
    s->backend_features = decode_features(vdev->device_id, vdev->backend_features);
    s->num_vqs = virtio_num_queues(vdev);
    s->status = decode_status(vdev->status);
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
    VirtQueueStatus *s = xzalloc(sizeof(*s));
    s->name = xstrdup(vdev->name);
    s->queue_index = vq->index;
    s->inuse = vq->inuse;
    s->vring_num = vq->num;
    s->vring_num_default = vq->num_default;
    s->vring_align = vq->align;
    s->vring_desc = vq->desc;
    s->vring_avail = vq->avail;
    s->vring_used = vq->used;
    /*
     * With vhost running, ring progress lives in the kernel: it is asked for
     * the avail position of its own queues, and there is no shadow index.
     */
    if (!vdev->vhost_started) {
        s->has_last_avail_idx = true;
        s->last_avail_idx = vq->last_avail_idx;
        s->has_shadow_avail_idx = true;
        s->shadow_avail_idx = vq->shadow_avail_idx;
    } else if (vdev->vhost && vdev->vhost->dev) {
        int idx = vhost_dev_last_avail_idx(vdev->vhost->dev, queue);
        s->has_last_avail_idx = idx >= 0;
        s->last_avail_idx = idx >= 0 ? idx : 0;
    }
    s->used_idx = vq->used_idx;
    s->signalled_used = vq->signalled_used;
    s->signalled_used_valid = vq->signalled_used_valid;
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

/* ---- one element of a ring ---- */

typedef struct RingDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} RingDesc;

#define DESC_SIZE 16

static bool read_desc(const GuestMemory *mem, uint64_t table, uint32_t i, RingDesc *d,
                      Error **errp)
{
    uint64_t at = table + (uint64_t)i * DESC_SIZE;
    if (!gmem_read_u64(mem, at, &d->addr) || !gmem_read_u32(mem, at + 8, &d->len) ||
        !gmem_read_u16(mem, at + 12, &d->flags) || !gmem_read_u16(mem, at + 14, &d->next)) {
        error_setg(errp, "Descriptor %u at 0x%" PRIx64 " is outside guest memory", i, at);
        return false;
    }
    return true;
}

static strList *desc_flags(uint16_t flags)
{
    /* Listed as QEMU lists them: most significant first. */
    static const struct { uint16_t mask; const char *name; } names[] = {
        { 1u << 15, "used" }, { 1u << 7, "avail" }, { VRING_DESC_F_INDIRECT, "indirect" },
        { VRING_DESC_F_WRITE, "write" }, { VRING_DESC_F_NEXT, "next" },
    };
    strList *list = NULL, **tail = &list;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (flags & names[i].mask) {
            QAPI_LIST_APPEND(tail, xstrdup(names[i].name));
        }
    }
    return list;
}

/*
 * Walk the chain starting at head, following one indirect table at most,
 * and never more descriptors than the table holds (a looping chain ends).
 */
static VirtioRingDescList *walk_chain(const VirtIODevice *vdev, const VirtQueue *vq,
                                      uint16_t head, Error **errp)
{
    VirtioRingDescList *list = NULL, **tail = &list;
    uint64_t table = vq->desc;
    uint32_t max = vq->num, i = head;
    RingDesc d;
    if (!read_desc(vdev->mem, table, i, &d, errp)) {
        return NULL;
    }
    if (d.flags & VRING_DESC_F_INDIRECT) {
        if (d.len == 0 || d.len % DESC_SIZE) {
            error_setg(errp, "Invalid size for indirect buffer table");
            return NULL;
        }
        table = d.addr;
        max = d.len / DESC_SIZE;
        i = 0;
        if (!read_desc(vdev->mem, table, i, &d, errp)) {
            return NULL;
        }
    }
    for (uint32_t count = 0;; count++) {
        VirtioRingDesc *out = xzalloc(sizeof(*out));
        out->addr = d.addr;
        out->len = d.len;
        out->flags = desc_flags(d.flags);
        QAPI_LIST_APPEND(tail, out);
        if (!(d.flags & VRING_DESC_F_NEXT) || count + 1 >= max) {
            break;
        }
        if (d.next >= max) {
            break;
        }
        i = d.next;
        if (!read_desc(vdev->mem, table, i, &d, errp)) {
            qapi_free_VirtioRingDescList(list);
            return NULL;
        }
    }
    return list;
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
    if (!vq->desc || !vq->avail || !vq->used) {
        error_setg(errp, "Region caches not initialized");
        return NULL;
    }
    uint16_t pos = has_index ? index : vq->last_avail_idx;
    uint16_t avail_flags, avail_idx, head, used_flags, used_idx;
    if (!gmem_read_u16(vdev->mem, vq->avail, &avail_flags) ||
        !gmem_read_u16(vdev->mem, vq->avail + 2, &avail_idx) ||
        !gmem_read_u16(vdev->mem, vq->avail + 4 + 2ULL * (pos % vq->num), &head) ||
        !gmem_read_u16(vdev->mem, vq->used, &used_flags) ||
        !gmem_read_u16(vdev->mem, vq->used + 2, &used_idx)) {
        error_setg(errp, "The rings of queue %d are outside guest memory", queue);
        return NULL;
    }
    if (head >= vq->num) {
        error_setg(errp, "Invalid descriptor index %u", head);
        return NULL;
    }
    VirtioRingDescList *descs = walk_chain(vdev, vq, head, errp);
    if (!descs) {
        return NULL;
    }
    VirtioQueueElement *e = xzalloc(sizeof(*e));
    e->name = xstrdup(vdev->name);
    e->index = head;
    e->descs = descs;
    e->avail = xzalloc(sizeof(*e->avail));
    e->avail->flags = avail_flags;
    e->avail->idx = avail_idx;
    e->avail->ring = head;
    e->used = xzalloc(sizeof(*e->used));
    e->used->flags = used_flags;
    e->used->idx = used_idx;
    return e;
}
