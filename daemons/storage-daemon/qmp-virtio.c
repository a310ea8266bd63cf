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
#include "virtio/virtio-features.h"

#define EXPORT_PATH_PREFIX "/exports/"
#define DESC_BYTES 16u

/* ---- bitmaps as names ---- */

/* Names of the bits of *bits that table knows (masks for status bits);
 * those bits are cleared, so what remains is unknown. */
static strList *bit_names(const VirtioFeatureName *table, bool masks, uint64_t *bits)
{
    strList *names = NULL, **tail = &names;
    for (; table->text; table++) {
        uint64_t m = masks ? table->bit : 1ull << table->bit;
        if (*bits & m) {
            *bits &= ~m;
            QAPI_LIST_APPEND(tail, xstrdup(table->text));
        }
    }
    return names;
}

static VirtioDeviceFeatures *blk_features(uint64_t bits)
{
    VirtioDeviceFeatures *f = xzalloc(sizeof(*f));
    f->transports = bit_names(virtio_transport_feature_names(), false, &bits);
    f->has_dev_features = true;
    f->dev_features = bit_names(virtio_device_feature_names(VIRTIO_ID_BLOCK), false, &bits);
    f->has_unknown_dev_features = bits != 0;
    f->unknown_dev_features = bits;
    return f;
}

static VhostDeviceProtocols *protocol_features(uint64_t bits)
{
    VhostDeviceProtocols *p = xzalloc(sizeof(*p));
    p->protocols = bit_names(virtio_vhost_user_protocol_names(), false, &bits);
    p->has_unknown_protocols = bits != 0;
    p->unknown_protocols = bits;
    return p;
}

static VirtioDeviceStatus *device_status(uint8_t status)
{
    VirtioDeviceStatus *s = xzalloc(sizeof(*s));
    uint64_t bits = status;
    s->statuses = bit_names(virtio_status_names(), true, &bits);
    s->has_unknown_statuses = bits != 0;
    s->unknown_statuses = (uint8_t)bits;
    return s;
}

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
    if (queue >= dev->num_queues || dev->vdev.vq[queue].num == 0) {
        error_setg(errp, "Invalid virtqueue number %d", queue);
        return NULL;
    }
    return &dev->vdev.vq[queue];
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
    s->features = blk_features(offered_features(dev));
    s->acked_features = blk_features(dev->acked_features);
    s->backend_features = blk_features(offered_features(dev));
    s->protocol_features = protocol_features(dev->protocol_features);
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
    s->guest_features = blk_features(dev->acked_features);
    s->host_features = blk_features(offered_features(dev));
    s->backend_features = blk_features(offered_features(dev));
    s->num_vqs = virtio_num_queues(v);
    s->status = device_status(dev->status);
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
    VirtQueueStatus *s = xzalloc(sizeof(*s));
    s->name = xstrdup("vhost-user-blk");
    s->queue_index = queue;
    s->inuse = vq->inuse;
    s->vring_num = vq->num;
    s->vring_num_default = vq->num_default;
    s->vring_align = vq->align;
    s->vring_desc = vq->desc;
    s->vring_avail = vq->avail;
    s->vring_used = vq->used;
    s->has_last_avail_idx = true;
    s->last_avail_idx = vq->last_avail_idx;
    s->has_shadow_avail_idx = true;
    s->shadow_avail_idx = vq->shadow_avail_idx;
    s->used_idx = vq->used_idx;
    s->signalled_used = vq->signalled_used;
    s->signalled_used_valid = vq->signalled_used_valid;
    return s;
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

/* ---- one element ---- */

/* A descriptor as the ring holds it (all little-endian, host order on x86). */
typedef struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
} Desc;

static bool load_desc(const GuestMemory *mem, uint64_t table, uint32_t i, Desc *d,
                      Error **errp)
{
    uint64_t at = table + (uint64_t)i * DESC_BYTES;
    const uint8_t *p = gmem_ptr(mem, at, DESC_BYTES);
    if (!p) {
        error_setg(errp, "Descriptor %u at 0x%" PRIx64 " is outside guest memory", i, at);
        return false;
    }
    memcpy(&d->addr, p, 8);
    memcpy(&d->len, p + 8, 4);
    memcpy(&d->flags, p + 12, 2);
    memcpy(&d->next, p + 14, 2);
    return true;
}

static strList *flag_names(uint16_t flags)
{
    /* The device-side names, most significant bit first. */
    static const struct { uint16_t bit; const char *name; } bits[] = {
        { 15, "used" }, { 7, "avail" }, { 2, "indirect" }, { 1, "write" }, { 0, "next" },
    };
    strList *names = NULL, **tail = &names;
    for (size_t i = 0; i < ARRAY_SIZE(bits); i++) {
        if (flags >> bits[i].bit & 1) {
            QAPI_LIST_APPEND(tail, xstrdup(bits[i].name));
        }
    }
    return names;
}

/*
 * The chain at head: one indirect table at most, never more descriptors
 * than the table holds, so a looping chain from the frontend ends.
 */
static VirtioRingDescList *chain(const GuestMemory *mem, const VirtQueue *vq, uint16_t head,
                                 Error **errp)
{
    VirtioRingDescList *list = NULL, **tail = &list;
    uint64_t table = vq->desc;
    uint32_t size = vq->num, i = head, seen = 0;
    Desc d;
    if (!load_desc(mem, table, i, &d, errp)) {
        return NULL;
    }
    if (d.flags & VRING_DESC_F_INDIRECT) {
        if (d.len == 0 || d.len % DESC_BYTES) {
            error_setg(errp, "Invalid size for indirect buffer table");
            return NULL;
        }
        table = d.addr;
        size = d.len / DESC_BYTES;
        i = 0;
        if (!load_desc(mem, table, i, &d, errp)) {
            return NULL;
        }
    }
    for (;;) {
        VirtioRingDesc *out = xzalloc(sizeof(*out));
        *out = (VirtioRingDesc){ .addr = d.addr, .len = d.len, .flags = flag_names(d.flags) };
        QAPI_LIST_APPEND(tail, out);
        if (!(d.flags & VRING_DESC_F_NEXT) || ++seen >= size || d.next >= size) {
            return list;
        }
        i = d.next;
        if (!load_desc(mem, table, i, &d, errp)) {
            qapi_free_VirtioRingDescList(list);
            return NULL;
        }
    }
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
    if (!vq->desc || !vq->avail || !vq->used) {
        error_setg(errp, "Region caches not initialized");
        return NULL;
    }
    uint16_t slot = (has_index ? index : vq->last_avail_idx) % vq->num;
    VirtioRingAvail avail;
    VirtioRingUsed used;
    if (!gmem_read_u16(&dev->mem, vq->avail, &avail.flags) ||
        !gmem_read_u16(&dev->mem, vq->avail + 2, &avail.idx) ||
        !gmem_read_u16(&dev->mem, vq->avail + 4 + 2ull * slot, &avail.ring) ||
        !gmem_read_u16(&dev->mem, vq->used, &used.flags) ||
        !gmem_read_u16(&dev->mem, vq->used + 2, &used.idx)) {
        error_setg(errp, "The rings of queue %d are outside guest memory", queue);
        return NULL;
    }
    if (avail.ring >= vq->num) {
        error_setg(errp, "Invalid descriptor index %u", avail.ring);
        return NULL;
    }
    VirtioRingDescList *descs = chain(&dev->mem, vq, avail.ring, errp);
    if (!descs) {
        return NULL;
    }
    VirtioQueueElement *e = xzalloc(sizeof(*e));
    e->name = xstrdup("vhost-user-blk");
    e->index = avail.ring;
    e->descs = descs;
    e->avail = xzalloc(sizeof(*e->avail));
    *e->avail = avail;
    e->used = xzalloc(sizeof(*e->used));
    *e->used = used;
    return e;
}
