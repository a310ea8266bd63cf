/*
 * Split virtqueues, device side.
 *
 * The rings live in guest RAM and the driver writes them while we read, so
 * every value is read once into a local copy and checked before use. The
 * ring areas are checked once, when the driver enables the queue; each
 * descriptor chain is checked as a whole (indexes, cycles, nesting, buffer
 * ranges, direction order, total length) before the device sees any of it.
 * A chain that breaks a rule marks the device broken.
 */
#include "virtio/virtio.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

typedef struct VirtQueueDesc {
    uint64_t addr;              /* guest-physical buffer */
    uint32_t len;               /* bytes */
    uint16_t flags;             /* VRING_DESC_F_* */
    uint16_t next;              /* index of the next descriptor with F_NEXT */
} VirtQueueDesc;

typedef struct VirtQueueAvail {
    uint16_t flags;             /* VRING_AVAIL_F_NO_INTERRUPT */
    uint16_t idx;               /* where the driver puts the next entry */
    uint16_t ring[];            /* num heads, then used_event */
} VirtQueueAvail;

typedef struct VirtQueueUsedElem {
    uint32_t id;                /* head of the returned chain */
    uint32_t len;               /* bytes written into it */
} VirtQueueUsedElem;

typedef struct VirtQueueUsed {
    uint16_t flags;             /* VRING_USED_F_NO_NOTIFY */
    uint16_t idx;               /* where the device puts the next entry */
    VirtQueueUsedElem ring[];   /* num entries, then avail_event */
} VirtQueueUsed;

#define DESC_SIZE sizeof(VirtQueueDesc)

/* Barriers between our ring accesses and the driver's, on another CPU. */
static inline void smp_mb(void)  { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void smp_rmb(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

static uint16_t load16(const uint16_t *p)
{
    return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static void store16(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static bool has_event_idx(const VirtQueue *vq)
{
    return virtio_has_feature(vq->vdev, VIRTIO_RING_F_EVENT_IDX);
}

static uint16_t *used_event_ptr(const VirtQueue *vq)
{
    return &vq->avail_hva->ring[vq->num];
}

static uint16_t *avail_event_ptr(const VirtQueue *vq)
{
    return (uint16_t *)&vq->used_hva->ring[vq->num];
}

/* ---- set-up ---- */

void virtqueue_reset(VirtQueue *vq)
{
    vq->num = vq->num_default;
    vq->desc = vq->avail = vq->used = 0;
    vq->enabled = false;
    vq->msix_vector = VIRTIO_NO_VECTOR;
    vq->last_avail_idx = vq->shadow_avail_idx = vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->inuse = 0;
    vq->desc_hva = NULL;
    vq->avail_hva = NULL;
    vq->used_hva = NULL;
    vq->notification_disabled = false;
}

static bool ring_size_valid(uint32_t num, uint32_t max)
{
    return num && num <= max && (num & (num - 1)) == 0;
}

/* Resolve one ring area, refusing misalignment and anything outside RAM. */
static void *map_ring(VirtQueue *vq, const char *what, uint64_t gpa, uint64_t len,
                      uint64_t align)
{
    void *p = gpa % align ? NULL : gmem_ptr(vq->vdev->mem, gpa, len);
    /*
     * A vhost-user frontend places regions in our address space: an aligned
     * guest address can still land on an unaligned host one.
     */
    if ((uintptr_t)p % align) {
        p = NULL;
    }
    if (!p) {
        virtio_mark_broken(vq->vdev, "queue %u: %s ring at 0x%llx (%llu bytes) is not "
                           "%llu-aligned guest RAM", vq->index, what,
                           (unsigned long long)gpa, (unsigned long long)len,
                           (unsigned long long)align);
    }
    return p;
}

bool virtqueue_enable(VirtQueue *vq)
{
    if (!ring_size_valid(vq->num, vq->num_default)) {
        virtio_mark_broken(vq->vdev, "queue %u: invalid size %u", vq->index, vq->num);
        return false;
    }
    uint64_t n = vq->num;
    vq->desc_hva = map_ring(vq, "descriptor", vq->desc, n * DESC_SIZE, 16);
    vq->avail_hva = vq->desc_hva ? map_ring(vq, "avail", vq->avail, 6 + 2 * n, 2) : NULL;
    vq->used_hva = vq->avail_hva ? map_ring(vq, "used", vq->used, 6 + 8 * n, 4) : NULL;
    if (!vq->used_hva) {
        vq->desc_hva = NULL;
        vq->avail_hva = NULL;
        return false;
    }
    vq->enabled = true;
    /* Resume where the used ring says (zero for a fresh ring). */
    vq->used_idx = load16(&vq->used_hva->idx);
    vq->last_avail_idx = vq->shadow_avail_idx = vq->used_idx;
    return true;
}

bool virtqueue_ready(const VirtQueue *vq)
{
    return vq->enabled && vq->used_hva && !vq->vdev->broken;
}

/* ---- the descriptor-chain walker ---- */

typedef struct ChainWalk {
    VirtQueue *vq;
    struct iovec iov[VIRTQUEUE_MAX_SIZE];
    unsigned out_num, in_num;
    uint64_t out_len, in_len;
} ChainWalk;

static bool chain_error(ChainWalk *w, const char *what, uint16_t head)
{
    virtio_mark_broken(w->vq->vdev, "queue %u: chain at head %u: %s", w->vq->index, head, what);
    return false;
}

/* Add one buffer to the element after checking it completely. */
static bool chain_add_buffer(ChainWalk *w, const VirtQueueDesc *d, uint16_t head)
{
    bool writable = d->flags & VRING_DESC_F_WRITE;
    if (d->len == 0) {
        return chain_error(w, "zero-length buffer", head);
    }
    if (!writable && w->in_num) {
        return chain_error(w, "device-readable buffer after a writable one", head);
    }
    if (w->out_num + w->in_num >= VIRTQUEUE_MAX_SIZE) {
        return chain_error(w, "too many buffers", head);
    }
    void *p = gmem_ptr(w->vq->vdev->mem, d->addr, d->len);
    if (!p) {
        return chain_error(w, "buffer outside guest RAM", head);
    }
    uint64_t *total = writable ? &w->in_len : &w->out_len;
    *total += d->len;           /* at most 1024 * 2^32: no 64-bit overflow */
    if (*total > UINT32_MAX) {
        return chain_error(w, "total length reaches 4 GiB", head);
    }
    w->iov[w->out_num + w->in_num] = (struct iovec){ .iov_base = p, .iov_len = d->len };
    if (writable) {
        w->in_num++;
    } else {
        w->out_num++;
    }
    return true;
}

static VirtQueueDesc read_desc(const void *table, unsigned i)
{
    VirtQueueDesc d;
    memcpy(&d, (const uint8_t *)table + (size_t)i * DESC_SIZE, sizeof(d));
    d.addr = le64toh(d.addr);
    d.len = le32toh(d.len);
    d.flags = le16toh(d.flags);
    d.next = le16toh(d.next);
    return d;
}

/*
 * Follow the chain at head. Each table (the ring's or an indirect one) may
 * be visited at most as many times as it has entries: a longer walk is a
 * loop.
 */
static bool chain_walk(ChainWalk *w, uint16_t head)
{
    VirtQueue *vq = w->vq;
    const void *table = vq->desc_hva;
    unsigned table_n = vq->num, visited = 0, i = head;
    bool indirect = false;
    for (;;) {
        if (i >= table_n) {
            return chain_error(w, "descriptor index out of range", head);
        }
        if (++visited > table_n) {
            return chain_error(w, "descriptor chain loops", head);
        }
        VirtQueueDesc d = read_desc(table, i);
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (indirect) {
                return chain_error(w, "indirect table inside an indirect table", head);
            }
            if (!virtio_has_feature(vq->vdev, VIRTIO_RING_F_INDIRECT_DESC)) {
                return chain_error(w, "indirect descriptor not negotiated", head);
            }
            if (d.flags & VRING_DESC_F_NEXT) {
                return chain_error(w, "indirect descriptor with NEXT", head);
            }
            if (d.len == 0 || d.len % DESC_SIZE || d.len / DESC_SIZE > VIRTQUEUE_MAX_SIZE) {
                return chain_error(w, "bad indirect table length", head);
            }
            table = gmem_ptr(vq->vdev->mem, d.addr, d.len);
            if (!table) {
                return chain_error(w, "indirect table outside guest RAM", head);
            }
            table_n = d.len / DESC_SIZE;
            indirect = true;
            visited = 0;
            i = 0;
            continue;
        }
        if (!chain_add_buffer(w, &d, head)) {
            return false;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return true;
        }
        i = d.next;
    }
}

static void element_fill(VirtQueueElement *elem, const ChainWalk *w, uint16_t head)
{
    unsigned n = w->out_num + w->in_num;
    elem->head = head;
    elem->out_num = w->out_num;
    elem->in_num = w->in_num;
    elem->out_len = w->out_len;
    elem->in_len = w->in_len;
    elem->out_sg = xmalloc(n * sizeof(struct iovec));
    memcpy(elem->out_sg, w->iov, n * sizeof(struct iovec));
    elem->in_sg = elem->out_sg + w->out_num;
}

/* ---- taking and returning chains ---- */

static uint16_t read_avail_idx(VirtQueue *vq)
{
    vq->shadow_avail_idx = load16(&vq->avail_hva->idx);
    return vq->shadow_avail_idx;
}

bool virtqueue_empty(VirtQueue *vq)
{
    if (!virtqueue_ready(vq)) {
        return true;
    }
    if (vq->shadow_avail_idx != vq->last_avail_idx) {
        return false;
    }
    return read_avail_idx(vq) == vq->last_avail_idx;
}

/* Walk and check the chain at head into elem; false: broken. */
static bool take_chain(VirtQueue *vq, uint16_t head, VirtQueueElement *elem)
{
    ChainWalk *w = xmalloc(sizeof(*w));
    w->vq = vq;
    w->out_num = w->in_num = 0;
    w->out_len = w->in_len = 0;
    bool ok = chain_walk(w, head);
    if (ok) {
        element_fill(elem, w, head);
        vq->inuse++;
    }
    free(w);
    return ok;
}

bool virtqueue_take_head(VirtQueue *vq, uint16_t head, VirtQueueElement *elem)
{
    return virtqueue_ready(vq) && take_chain(vq, head, elem);
}

bool virtqueue_pop(VirtQueue *vq, VirtQueueElement *elem)
{
    if (virtqueue_empty(vq)) {
        return false;
    }
    uint16_t pending = vq->shadow_avail_idx - vq->last_avail_idx;
    if (pending > vq->num) {
        virtio_mark_broken(vq->vdev, "queue %u: avail index moved %u entries ahead of %u",
                           vq->index, pending, vq->num);
        return false;
    }
    smp_rmb();      /* the ring entry and descriptors after the index */
    uint16_t head = load16(&vq->avail_hva->ring[vq->last_avail_idx % vq->num]);
    if (!take_chain(vq, head, elem)) {
        return false;
    }
    vq->last_avail_idx++;
    if (has_event_idx(vq)) {
        store16(avail_event_ptr(vq), vq->last_avail_idx);
    }
    return true;
}

void virtqueue_element_free(VirtQueueElement *elem)
{
    free(elem->out_sg);
    elem->out_sg = elem->in_sg = NULL;
}

void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem)
{
    vq->last_avail_idx--;
    vq->inuse--;
    virtqueue_element_free(elem);
}

void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len)
{
    if (!vq->used_hva || vq->vdev->broken) {
        return;
    }
    VirtQueueUsedElem *u = &vq->used_hva->ring[vq->used_idx % vq->num];
    u->id = htole32(elem->head);
    u->len = htole32(len);
    vq->used_idx++;
    /* The entry must be visible before the index that publishes it. */
    __atomic_store_n(&vq->used_hva->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
    if (vq->inuse) {
        vq->inuse--;
    }
}

/* Does the driver want an interrupt for the used entries added so far? */
static bool should_notify(VirtQueue *vq)
{
    smp_mb();       /* our used->idx store before its flags / used_event */
    if (virtio_has_feature(vq->vdev, VIRTIO_F_NOTIFY_ON_EMPTY) && !vq->inuse &&
        read_avail_idx(vq) == vq->last_avail_idx) {
        return true;
    }
    if (!has_event_idx(vq)) {
        return !(load16(&vq->avail_hva->flags) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    uint16_t old = vq->signalled_used, now = vq->used_idx;
    bool valid = vq->signalled_used_valid;
    vq->signalled_used = now;
    vq->signalled_used_valid = true;
    if (!valid) {
        return true;
    }
    uint16_t event = load16(used_event_ptr(vq));
    /* Did used_idx cross event since we last signalled? */
    return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

void virtqueue_notify(VirtQueue *vq)
{
    if (!virtqueue_ready(vq) || !should_notify(vq)) {
        return;
    }
    VirtIODevice *vdev = vq->vdev;
    vdev->isr |= VIRTIO_ISR_QUEUE;
    if (vdev->transport) {
        vdev->transport->notify(vdev, vq->msix_vector);
    }
}

void virtqueue_set_notification(VirtQueue *vq, bool enable)
{
    if (!virtqueue_ready(vq)) {
        return;
    }
    vq->notification_disabled = !enable;
    if (has_event_idx(vq)) {
        if (enable) {
            store16(avail_event_ptr(vq), read_avail_idx(vq));
        }
    } else {
        uint16_t flags = load16(&vq->used_hva->flags);
        flags = enable ? flags & ~VRING_USED_F_NO_NOTIFY : flags | VRING_USED_F_NO_NOTIFY;
        store16(&vq->used_hva->flags, flags);
    }
    if (enable) {
        smp_mb();   /* the driver must see the request before we look again */
    }
}

/* ---- scatter lists ---- */

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = MIN(iov[i].iov_len - offset, len - done);
        memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                    size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = MIN(iov[i].iov_len - offset, len - done);
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

unsigned iov_slice(const struct iovec *iov, unsigned n, size_t offset, size_t len,
                   struct iovec *dst, unsigned dst_n)
{
    unsigned out = 0;
    for (unsigned i = 0; i < n && len && out < dst_n; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = MIN(iov[i].iov_len - offset, len);
        dst[out++] = (struct iovec){ (uint8_t *)iov[i].iov_base + offset, chunk };
        len -= chunk;
        offset = 0;
    }
    return out;
}
