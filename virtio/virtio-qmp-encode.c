/*
 * Virtio introspection encoders shared by vireo and vireo-storage-daemon
 * (see virtio-qmp-encode.h for why it is built once per program). Ring
 * contents come from guest memory through the bounds-checked helpers: the
 * driver (or a frontend) may point its rings anywhere.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#ifndef VIRTIO_QMP_TYPES_H
#define VIRTIO_QMP_TYPES_H "qapi/qapi-types.h"
#endif
#include VIRTIO_QMP_TYPES_H

#include "util/osdep.h"
#include "virtio/virtio-features.h"
#include "virtio/virtio-qmp-encode.h"

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

VirtioDeviceFeatures *virtio_qmp_features(uint16_t device_id, uint64_t bits)
{
    VirtioDeviceFeatures *f = xzalloc(sizeof(*f));
    f->transports = bit_names(virtio_transport_feature_names(), false, &bits);
    const VirtioFeatureName *table = virtio_device_feature_names(device_id);
    if (table) {
        f->has_dev_features = true;
        f->dev_features = bit_names(table, false, &bits);
    }
    f->has_unknown_dev_features = bits != 0;
    f->unknown_dev_features = bits;
    return f;
}

VirtioDeviceStatus *virtio_qmp_status_bits(uint8_t status)
{
    VirtioDeviceStatus *s = xzalloc(sizeof(*s));
    uint64_t bits = status;
    s->statuses = bit_names(virtio_status_names(), true, &bits);
    s->has_unknown_statuses = bits != 0;
    s->unknown_statuses = (uint8_t)bits;
    return s;
}

VhostDeviceProtocols *virtio_qmp_protocols(uint64_t bits)
{
    VhostDeviceProtocols *p = xzalloc(sizeof(*p));
    p->protocols = bit_names(virtio_vhost_user_protocol_names(), false, &bits);
    p->has_unknown_protocols = bits != 0;
    p->unknown_protocols = bits;
    return p;
}

/* ---- queues ---- */

VirtQueue *virtio_qmp_queue(VirtQueue *vq, unsigned nvqs, uint16_t queue, Error **errp)
{
    if (queue >= nvqs || vq[queue].num == 0) {
        error_setg(errp, "Invalid virtqueue number %d", queue);
        return NULL;
    }
    return &vq[queue];
}

VirtQueueStatus *virtio_qmp_queue_status(const char *name, uint16_t queue, const VirtQueue *vq)
{
    VirtQueueStatus *s = xzalloc(sizeof(*s));
    s->name = xstrdup(name);
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

/* ---- one element ---- */

#define DESC_BYTES 16u

typedef struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
} Desc;

static bool load_desc(const GuestMemory *mem, uint64_t table, uint32_t i, Desc *d,
                      Error **errp)
{
    uint64_t at = table + (uint64_t)i * DESC_BYTES;
    if (!gmem_read_u64(mem, at, &d->addr) || !gmem_read_u32(mem, at + 8, &d->len) ||
        !gmem_read_u16(mem, at + 12, &d->flags) || !gmem_read_u16(mem, at + 14, &d->next)) {
        error_setg(errp, "Descriptor %u at 0x%" PRIx64 " is outside guest memory", i, at);
        return false;
    }
    return true;
}

static strList *flag_names(uint16_t flags)
{
    /* As QEMU lists them: most significant bit first. */
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
 * The chain at head: one indirect table at most, never more descriptors
 * than the table holds, so a looping chain ends.
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

VirtioQueueElement *virtio_qmp_queue_element(const char *name, const GuestMemory *mem,
                                             const VirtQueue *vq, uint16_t queue,
                                             bool has_index, uint16_t index, Error **errp)
{
    if (!vq->desc || !vq->avail || !vq->used) {
        error_setg(errp, "Region caches not initialized");
        return NULL;
    }
    uint16_t slot = (has_index ? index : vq->last_avail_idx) % vq->num;
    VirtioRingAvail avail;
    VirtioRingUsed used;
    if (!gmem_read_u16(mem, vq->avail, &avail.flags) ||
        !gmem_read_u16(mem, vq->avail + 2, &avail.idx) ||
        !gmem_read_u16(mem, vq->avail + 4 + 2ull * slot, &avail.ring) ||
        !gmem_read_u16(mem, vq->used, &used.flags) ||
        !gmem_read_u16(mem, vq->used + 2, &used.idx)) {
        error_setg(errp, "The rings of queue %d are outside guest memory", queue);
        return NULL;
    }
    if (avail.ring >= vq->num) {
        error_setg(errp, "Invalid descriptor index %u", avail.ring);
        return NULL;
    }
    VirtioRingDescList *descs = chain(mem, vq, avail.ring, errp);
    if (!descs) {
        return NULL;
    }
    VirtioQueueElement *e = xzalloc(sizeof(*e));
    e->name = xstrdup(name);
    e->index = avail.ring;
    e->descs = descs;
    e->avail = xzalloc(sizeof(*e->avail));
    *e->avail = avail;
    e->used = xzalloc(sizeof(*e->used));
    *e->used = used;
    return e;
}
