/*
 * virtio-pci transport (virtio 1.2 section 4.1): register layouts and ids
 * are the spec's; the BAR arrangement follows QEMU's so that guests and
 * tools see the same device (BAR0 legacy I/O, BAR1 MSI-X, BAR4 modern).
 */
#include "virtio/virtio-pci.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "core/qdev.h"
#include "hw/irq.h"
#include "memory/address-space.h"
#include "util/osdep.h"

/* Modern BAR (BAR4, 64-bit prefetchable): one 4 KiB page per structure. */
#define MODERN_BAR          4
#define MODERN_BAR_SIZE     0x4000
#define COMMON_OFFSET       0x0000
#define ISR_OFFSET          0x1000
#define DEVICE_OFFSET       0x2000
#define NOTIFY_OFFSET       0x3000
#define REGION_SIZE         0x1000
#define NOTIFY_MULTIPLIER   4
#define LEGACY_BAR          0
#define MSIX_BAR            1

/* virtio_pci_cap cfg_type */
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };

/* Common configuration structure (virtio_pci_common_cfg) offsets. */
enum {
    COMMON_DFSELECT = 0, COMMON_DF = 4, COMMON_GFSELECT = 8, COMMON_GF = 12,
    COMMON_MSIX = 16, COMMON_NUMQ = 18, COMMON_STATUS = 20, COMMON_CFGGEN = 21,
    COMMON_Q_SELECT = 22, COMMON_Q_SIZE = 24, COMMON_Q_MSIX = 26, COMMON_Q_ENABLE = 28,
    COMMON_Q_NOFF = 30, COMMON_Q_DESCLO = 32, COMMON_Q_DESCHI = 36, COMMON_Q_AVAILLO = 40,
    COMMON_Q_AVAILHI = 44, COMMON_Q_USEDLO = 48, COMMON_Q_USEDHI = 52,
    COMMON_Q_NDATA = 56, COMMON_Q_RESET = 58,
};

/* Legacy I/O BAR register offsets. */
enum {
    LEGACY_HOST_FEATURES = 0, LEGACY_GUEST_FEATURES = 4, LEGACY_QUEUE_PFN = 8,
    LEGACY_QUEUE_NUM = 12, LEGACY_QUEUE_SEL = 14, LEGACY_QUEUE_NOTIFY = 16,
    LEGACY_STATUS = 18, LEGACY_ISR = 19, LEGACY_CONFIG_VECTOR = 20, LEGACY_QUEUE_VECTOR = 22,
    LEGACY_CONFIG_NO_MSIX = 20, LEGACY_CONFIG_MSIX = 24,
};
#define LEGACY_PFN_SHIFT 12

typedef struct VirtIOPCIProxy VirtIOPCIProxy;

/* One queue's notify address bound to an eventfd (see "doorbells" below). */
typedef struct QueueKick {
    VirtIOPCIProxy *proxy;
    unsigned queue;
    int fd;             /* eventfd, made on first use and kept until teardown */
    bool bound;         /* the accelerator signals fd on writes to addr */
    bool lent;          /* a back-end (vhost) reads fd; the main loop leaves it alone */
    uint64_t addr;      /* guest-physical address the accelerator watches */
} QueueKick;

struct VirtIOPCIProxy {
    VirtIODevice *vdev;
    PciDevice *pci;
    VirtioPciOptions opts;
    QueueKick *kicks;   /* nvqs entries when the accelerator has doorbells */
    int *vector_fds;    /* opts.vectors eventfds when MSI-X goes through irqfds */
};

/* ---- interrupts ---- */

/*
 * With irqfds (KVM), each MSI-X vector has an eventfd that the PCI layer
 * keeps routed to the vector's current message (or turns into a pending
 * bit while masked), so an interrupt is one eventfd write.
 */
static void bind_vector_eventfds(VirtIOPCIProxy *p)
{
    if (!p->opts.vectors || !msi_irqfd_available()) {
        return;
    }
    p->vector_fds = xmalloc(p->opts.vectors * sizeof(int));
    for (unsigned v = 0; v < p->opts.vectors; v++) {
        p->vector_fds[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (p->vector_fds[v] >= 0 && !pci_msix_set_eventfd(p->pci, v, p->vector_fds[v], NULL)) {
            close(p->vector_fds[v]);
            p->vector_fds[v] = -1;
        }
    }
}

static void unbind_vector_eventfds(VirtIOPCIProxy *p)
{
    for (unsigned v = 0; p->vector_fds && v < p->opts.vectors; v++) {
        if (p->vector_fds[v] >= 0) {
            pci_msix_set_eventfd(p->pci, v, -1, NULL);
            close(p->vector_fds[v]);
        }
    }
    free(p->vector_fds);
    p->vector_fds = NULL;
}

static void proxy_notify(VirtIODevice *vdev, uint16_t vector)
{
    VirtIOPCIProxy *p = vdev->transport_opaque;
    if (pci_msix_enabled(p->pci)) {
        if (vector == VIRTIO_NO_VECTOR || vector >= p->opts.vectors) {
            return;
        }
        if (p->vector_fds && p->vector_fds[vector] >= 0) {
            eventfd_write(p->vector_fds[vector], 1);
        } else {
            pci_msix_notify(p->pci, vector);
        }
        return;
    }
    pci_set_irq(p->pci, vdev->isr != 0);   /* level until the driver reads ISR */
}

static int proxy_kick_fd(VirtIODevice *vdev, unsigned q, bool lend);
static int proxy_call_fd(VirtIODevice *vdev, unsigned q);

static const VirtIOTransportOps proxy_transport = {
    .notify = proxy_notify, .kick_fd = proxy_kick_fd, .call_fd = proxy_call_fd,
};

static uint8_t isr_read_and_clear(VirtIOPCIProxy *p)
{
    uint8_t isr = p->vdev->isr;
    p->vdev->isr = 0;
    pci_set_irq(p->pci, false);
    return isr;
}

/* A vector the guest names must exist, as QEMU checks; else "no vector". */
static uint16_t checked_vector(const VirtIOPCIProxy *p, uint16_t v)
{
    return v < p->opts.vectors ? v : VIRTIO_NO_VECTOR;
}

/*
 * ---- doorbells ----
 *
 * Once the driver is running (DRIVER_OK), each enabled queue's notify
 * address in the modern BAR is handed to the accelerator (KVM_IOEVENTFD):
 * a kick then signals an eventfd that the main loop serves, and the vCPU
 * never leaves the guest for it. The binding follows the BAR when the
 * guest moves it and is dropped on reset; without such an accelerator
 * (qtest) kicks take the register path in modern_write.
 */

enum { KICK_WIDTH = 2 };    /* the driver writes the 16-bit queue index */

static void kick_readable(void *opaque)
{
    QueueKick *k = opaque;
    eventfd_t count;
    if (eventfd_read(k->fd, &count) == 0) {
        virtio_queue_notify(k->proxy->vdev, k->queue);
    }
}

static void kick_watch(QueueKick *k, bool on)
{
    main_loop_set_fd_handler(k->fd, on ? kick_readable : NULL, NULL, k);
}

static uint64_t kick_address(const VirtIOPCIProxy *p, unsigned q)
{
    uint64_t bar = pci_bar_address(p->pci, MODERN_BAR);
    if (bar == PCI_BAR_UNMAPPED || (uint64_t)q * NOTIFY_MULTIPLIER >= REGION_SIZE) {
        return PCI_BAR_UNMAPPED;
    }
    return bar + NOTIFY_OFFSET + (uint64_t)q * NOTIFY_MULTIPLIER;
}

static void kick_bind(QueueKick *k, uint64_t addr)
{
    if (k->fd < 0) {
        k->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    if (k->fd < 0 || !io_eventfd_add(AS_MMIO, addr, KICK_WIDTH, k->fd)) {
        return;             /* kicks keep working through modern_write */
    }
    k->bound = true;
    k->addr = addr;
    if (!k->lent) {
        kick_watch(k, true);
    }
}

/* Serve a kick that is waiting in the eventfd (after a hand-over). */
static void kick_serve_pending(QueueKick *k)
{
    eventfd_t count;
    if (eventfd_read(k->fd, &count) == 0 && k->proxy->vdev->started) {
        virtio_queue_notify(k->proxy->vdev, k->queue);
    }
}

/* serve: a kick that raced the unbinding is handled now (not at teardown). */
static void kick_unbind(QueueKick *k, bool serve)
{
    io_eventfd_del(AS_MMIO, k->addr, KICK_WIDTH, k->fd);
    k->bound = false;
    if (!k->lent) {
        kick_watch(k, false);
        if (serve) {
            kick_serve_pending(k);
        }
    }
}

/* Bring every queue's binding in line with the device and BAR state. */
static void sync_kicks(VirtIOPCIProxy *p)
{
    for (unsigned q = 0; p->kicks && q < p->vdev->nvqs; q++) {
        QueueKick *k = &p->kicks[q];
        uint64_t addr = kick_address(p, q);
        bool want = p->vdev->started && p->vdev->vq[q].enabled && addr != PCI_BAR_UNMAPPED;
        if (k->bound && (!want || addr != k->addr)) {
            kick_unbind(k, true);
        }
        if (want && !k->bound) {
            kick_bind(k, addr);
        }
    }
}

static void init_kicks(VirtIOPCIProxy *p)
{
    if (!p->opts.modern || !io_eventfd_available()) {
        return;
    }
    p->kicks = xzalloc(MAX(p->vdev->nvqs, 1u) * sizeof(QueueKick));
    for (unsigned q = 0; q < p->vdev->nvqs; q++) {
        p->kicks[q] = (QueueKick){ .proxy = p, .queue = q, .fd = -1 };
    }
}

static void stop_kicks(VirtIOPCIProxy *p)
{
    for (unsigned q = 0; p->kicks && q < p->vdev->nvqs; q++) {
        QueueKick *k = &p->kicks[q];
        k->lent = false;
        if (k->bound) {
            kick_unbind(k, false);
        }
        if (k->fd >= 0) {
            close(k->fd);
        }
    }
    free(p->kicks);
    p->kicks = NULL;
}

/*
 * Hand queue q's kick eventfd to a back-end that reads it itself (vhost),
 * or take it back (lend = false; a kick that arrived meanwhile is served).
 * Returns the eventfd, or -1 when this accelerator has no doorbells.
 */
static int proxy_kick_fd(VirtIODevice *vdev, unsigned q, bool lend)
{
    VirtIOPCIProxy *p = vdev->transport_opaque;
    if (!p->kicks || q >= vdev->nvqs) {
        return -1;
    }
    QueueKick *k = &p->kicks[q];
    sync_kicks(p);
    if (lend == k->lent) {
        return lend && k->bound ? k->fd : -1;
    }
    k->lent = lend;
    if (k->bound) {
        kick_watch(k, !lend);
        if (!lend) {
            kick_serve_pending(k);
        }
    }
    return lend && k->bound ? k->fd : -1;
}

/* The irqfd-backed eventfd that raises queue q's MSI-X vector, or -1. */
static int proxy_call_fd(VirtIODevice *vdev, unsigned q)
{
    VirtIOPCIProxy *p = vdev->transport_opaque;
    uint16_t v = q < vdev->nvqs ? vdev->vq[q].msix_vector : VIRTIO_NO_VECTOR;
    if (!pci_msix_enabled(p->pci) || !p->vector_fds || v >= p->opts.vectors) {
        return -1;
    }
    return p->vector_fds[v];
}

/* ---- modern: common configuration ---- */

/* Both interfaces: a status write, where 0 resets the device and drops INTx. */
static void proxy_set_status(VirtIOPCIProxy *p, uint8_t val)
{
    virtio_set_status(p->vdev, val);
    if (val == 0) {
        pci_set_irq(p->pci, false);
    }
}

static VirtQueue *selected_queue(VirtIOPCIProxy *p)
{
    VirtIODevice *vdev = p->vdev;
    return vdev->queue_sel < vdev->nvqs ? &vdev->vq[vdev->queue_sel] : NULL;
}

static uint64_t queue_field_read(VirtQueue *vq, uint64_t off)
{
    switch (off) {
    case COMMON_Q_SIZE:    return vq->num;
    case COMMON_Q_MSIX:    return vq->msix_vector;
    case COMMON_Q_ENABLE:  return vq->enabled;
    case COMMON_Q_NOFF:    return vq->index;
    case COMMON_Q_DESCLO:  return (uint32_t)vq->desc;
    case COMMON_Q_DESCHI:  return vq->desc >> 32;
    case COMMON_Q_AVAILLO: return (uint32_t)vq->avail;
    case COMMON_Q_AVAILHI: return vq->avail >> 32;
    case COMMON_Q_USEDLO:  return (uint32_t)vq->used;
    case COMMON_Q_USEDHI:  return vq->used >> 32;
    default:               return 0;
    }
}

static uint64_t common_read(VirtIOPCIProxy *p, uint64_t off)
{
    VirtIODevice *vdev = p->vdev;
    switch (off) {
    case COMMON_DFSELECT:  return vdev->device_feature_sel;
    case COMMON_DF:        return virtio_read_device_features(vdev, vdev->device_feature_sel);
    case COMMON_GFSELECT:  return vdev->driver_feature_sel;
    case COMMON_GF:
        return vdev->driver_feature_sel < 2 ?
               (uint32_t)(vdev->guest_features >> (32 * vdev->driver_feature_sel)) : 0;
    case COMMON_MSIX:      return vdev->config_vector;
    case COMMON_NUMQ:      return vdev->nvqs;
    case COMMON_STATUS:    return vdev->status;
    case COMMON_CFGGEN:    return vdev->config_generation;
    case COMMON_Q_SELECT:  return vdev->queue_sel;
    default: {
        VirtQueue *vq = selected_queue(p);
        return vq ? queue_field_read(vq, off) : 0;
    }
    }
}

static void set_half(uint64_t *field, bool high, uint32_t val)
{
    *field = high ? (*field & 0xffffffffULL) | (uint64_t)val << 32
                  : (*field & ~0xffffffffULL) | val;
}

static void queue_field_write(VirtIOPCIProxy *p, VirtQueue *vq, uint64_t off, uint64_t val)
{
    if (off == COMMON_Q_MSIX) {
        vq->msix_vector = checked_vector(p, val);
        return;
    }
    if (off == COMMON_Q_RESET) {
        if (val == 1) {
            virtqueue_reset(vq);
        }
        return;
    }
    if (vq->enabled) {
        return;     /* size and addresses are fixed while the queue runs */
    }
    switch (off) {
    case COMMON_Q_SIZE:    vq->num = val; break;
    case COMMON_Q_ENABLE:
        if (val == 1) {
            virtqueue_enable(vq);
        }
        break;
    case COMMON_Q_DESCLO:  set_half(&vq->desc, false, val); break;
    case COMMON_Q_DESCHI:  set_half(&vq->desc, true, val); break;
    case COMMON_Q_AVAILLO: set_half(&vq->avail, false, val); break;
    case COMMON_Q_AVAILHI: set_half(&vq->avail, true, val); break;
    case COMMON_Q_USEDLO:  set_half(&vq->used, false, val); break;
    case COMMON_Q_USEDHI:  set_half(&vq->used, true, val); break;
    default: break;
    }
}

static void common_write(VirtIOPCIProxy *p, uint64_t off, uint64_t val)
{
    VirtIODevice *vdev = p->vdev;
    switch (off) {
    case COMMON_DFSELECT:  vdev->device_feature_sel = val; break;
    case COMMON_GFSELECT:  vdev->driver_feature_sel = val; break;
    case COMMON_GF:        virtio_write_driver_features(vdev, vdev->driver_feature_sel, val); break;
    case COMMON_MSIX:      vdev->config_vector = checked_vector(p, val); break;
    case COMMON_STATUS:    proxy_set_status(p, val); break;
    case COMMON_Q_SELECT:  vdev->queue_sel = val; break;
    default: {
        VirtQueue *vq = selected_queue(p);
        if (vq) {
            queue_field_write(p, vq, off, val);
        }
    }
    }
}

/* 64-bit queue addresses may be written in one access (qtest); split them. */
static void common_write_sized(VirtIOPCIProxy *p, uint64_t off, uint64_t val, unsigned size)
{
    if (size == 8 && off >= COMMON_Q_DESCLO && off <= COMMON_Q_USEDLO && off % 8 == 0) {
        common_write(p, off, (uint32_t)val);
        common_write(p, off + 4, val >> 32);
        return;
    }
    common_write(p, off, val);
}

/* A read narrower than the register (a byte of it, say) sees its low bytes
 * only, as on a real bus. */
static uint64_t narrow(uint64_t v, unsigned size)
{
    return size < 8 ? v & ((1ULL << (8 * size)) - 1) : v;
}

static uint64_t modern_read(void *opaque, uint64_t off, unsigned size)
{
    VirtIOPCIProxy *p = opaque;
    if (off < COMMON_OFFSET + REGION_SIZE) {
        return narrow(common_read(p, off), size);
    }
    if (off < ISR_OFFSET + REGION_SIZE) {
        return off == ISR_OFFSET ? isr_read_and_clear(p) : 0;
    }
    if (off < DEVICE_OFFSET + REGION_SIZE) {
        return virtio_config_read(p->vdev, off - DEVICE_OFFSET, size);
    }
    return 0;
}

static void modern_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    VirtIOPCIProxy *p = opaque;
    if (off < COMMON_OFFSET + REGION_SIZE) {
        common_write_sized(p, off, val, size);
        sync_kicks(p);      /* status, queue enable or reset may have changed */
    } else if (off < ISR_OFFSET + REGION_SIZE) {
        /* ISR is read-only */
    } else if (off < DEVICE_OFFSET + REGION_SIZE) {
        virtio_config_write(p->vdev, off - DEVICE_OFFSET, val, size);
    } else if (off < NOTIFY_OFFSET + REGION_SIZE) {
        virtio_queue_notify(p->vdev, (off - NOTIFY_OFFSET) / NOTIFY_MULTIPLIER);
    }
}

static const IoOps modern_ops = { .read = modern_read, .write = modern_write };

/* ---- legacy I/O BAR ---- */

static uint32_t legacy_config_offset(const VirtIOPCIProxy *p)
{
    return pci_msix_enabled(p->pci) ? LEGACY_CONFIG_MSIX : LEGACY_CONFIG_NO_MSIX;
}

static uint64_t legacy_register_read(VirtIOPCIProxy *p, uint64_t off, unsigned size)
{
    VirtIODevice *vdev = p->vdev;
    VirtQueue *vq = selected_queue(p);
    uint32_t cfg = legacy_config_offset(p);
    if (off >= cfg) {
        return virtio_config_read(vdev, off - cfg, size);
    }
    switch (off) {
    case LEGACY_HOST_FEATURES:  return (uint32_t)vdev->host_features;
    case LEGACY_GUEST_FEATURES: return (uint32_t)vdev->guest_features;
    case LEGACY_QUEUE_PFN:      return vq ? vq->desc >> LEGACY_PFN_SHIFT : 0;
    case LEGACY_QUEUE_NUM:      return vq ? vq->num : 0;
    case LEGACY_QUEUE_SEL:      return vdev->queue_sel;
    case LEGACY_STATUS:         return vdev->status;
    case LEGACY_ISR:            return isr_read_and_clear(p);
    case LEGACY_CONFIG_VECTOR:  return vdev->config_vector;
    case LEGACY_QUEUE_VECTOR:   return vq ? vq->msix_vector : VIRTIO_NO_VECTOR;
    default:                    return 0;
    }
}

static uint64_t legacy_read(void *opaque, uint64_t off, unsigned size)
{
    return narrow(legacy_register_read(opaque, off, size), size);
}

/* Legacy rings are contiguous: descriptors, avail, then used on the next page. */
static void legacy_set_pfn(VirtIOPCIProxy *p, VirtQueue *vq, uint32_t pfn)
{
    if (pfn == 0) {
        proxy_set_status(p, 0);     /* legacy drivers reset a device this way too */
        return;
    }
    if (vq->enabled) {
        return;
    }
    uint64_t n = vq->num;
    vq->desc = (uint64_t)pfn << LEGACY_PFN_SHIFT;
    vq->avail = vq->desc + n * 16;
    vq->used = ROUND_UP(vq->avail + 6 + 2 * n, VIRTIO_PCI_VRING_ALIGN);
    p->vdev->legacy = true;
    virtqueue_enable(vq);
}

static void legacy_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    VirtIOPCIProxy *p = opaque;
    VirtIODevice *vdev = p->vdev;
    VirtQueue *vq = selected_queue(p);
    uint32_t cfg = legacy_config_offset(p);
    if (off >= cfg) {
        virtio_config_write(vdev, off - cfg, val, size);
        return;
    }
    switch (off) {
    case LEGACY_GUEST_FEATURES:
        /* Legacy has no FEATURES_OK: keep what both sides know. */
        virtio_write_driver_features(vdev, 0, val);
        vdev->driver_features &= vdev->host_features;
        vdev->legacy = true;
        break;
    case LEGACY_QUEUE_PFN:
        if (vq) {
            legacy_set_pfn(p, vq, val);
        }
        break;
    case LEGACY_QUEUE_SEL:      vdev->queue_sel = val; break;
    case LEGACY_QUEUE_NOTIFY:   virtio_queue_notify(vdev, val); break;
    case LEGACY_STATUS:         proxy_set_status(p, val); break;
    case LEGACY_CONFIG_VECTOR:  vdev->config_vector = checked_vector(p, val); break;
    case LEGACY_QUEUE_VECTOR:
        if (vq) {
            vq->msix_vector = checked_vector(p, val);
        }
        break;
    default: break;
    }
    if (off != LEGACY_QUEUE_NOTIFY) {
        sync_kicks(p);      /* status or a queue address may have changed */
    }
}

static const IoOps legacy_ops = { .read = legacy_read, .write = legacy_write };

/* ---- PCI identity and capabilities ---- */

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v) {
        p <<= 1;
    }
    return p;
}

/* virtio_pci_cap: cfg_type, bar, offset, length (+ notify multiplier). */
static bool add_virtio_cap(PciDevice *d, uint8_t type, uint32_t offset, uint32_t len,
                           Error **errp)
{
    uint8_t cap_len = type == CAP_NOTIFY ? 20 : 16;
    int cap = pci_capability_add(d, PCI_CAP_ID_VENDOR, cap_len, errp);
    if (cap < 0) {
        return false;
    }
    uint8_t *c = pci_device_config(d) + cap;
    c[2] = cap_len;
    c[3] = type;
    c[4] = MODERN_BAR;
    c[5] = 0;
    uint32_t le_off = htole32(offset), le_len = htole32(len);
    memcpy(c + 8, &le_off, 4);
    memcpy(c + 12, &le_len, 4);
    if (type == CAP_NOTIFY) {
        uint32_t mult = htole32(NOTIFY_MULTIPLIER);
        memcpy(c + 16, &mult, 4);
    }
    return true;
}

static bool add_modern_interface(VirtIOPCIProxy *p, Error **errp)
{
    PciDevice *d = p->pci;
    uint32_t notify_len = MAX(p->vdev->nvqs, 1u) * NOTIFY_MULTIPLIER;
    return pci_bar_register(d, MODERN_BAR, PCI_BAR_MEM64, true, MODERN_BAR_SIZE,
                            &modern_ops, p, errp) &&
           add_virtio_cap(d, CAP_COMMON, COMMON_OFFSET, REGION_SIZE, errp) &&
           add_virtio_cap(d, CAP_ISR, ISR_OFFSET, REGION_SIZE, errp) &&
           add_virtio_cap(d, CAP_DEVICE, DEVICE_OFFSET, REGION_SIZE, errp) &&
           add_virtio_cap(d, CAP_NOTIFY, NOTIFY_OFFSET, MIN(notify_len, REGION_SIZE), errp);
}

static void proxy_reset(PciDevice *dev, void *opaque)
{
    VirtIOPCIProxy *p = opaque;
    virtio_reset(p->vdev);
    sync_kicks(p);
}

/* The guest may have moved BAR4 or switched memory decoding. */
static void proxy_config_written(PciDevice *dev, void *opaque, unsigned offset, unsigned size)
{
    sync_kicks(opaque);
}

/* Transitional PCI device ids (virtio 1.2 section 4.1.2.1); 0: none. */
static uint16_t transitional_device_id(uint16_t virtio_id)
{
    switch (virtio_id) {
    case VIRTIO_ID_NET:     return 0x1000;
    case VIRTIO_ID_BLOCK:   return 0x1001;
    case VIRTIO_ID_BALLOON: return 0x1002;
    case VIRTIO_ID_CONSOLE: return 0x1003;
    case VIRTIO_ID_SCSI:    return 0x1004;
    case VIRTIO_ID_RNG:     return 0x1005;
    case VIRTIO_ID_9P:      return 0x1009;
    default:                return 0;
    }
}

static PciDeviceInfo proxy_pci_info(const VirtIOPCIProxy *p, uint32_t class_code,
                                    const char *type)
{
    uint16_t id = p->vdev->device_id;
    PciDeviceInfo info = {
        .name = type,
        .vendor_id = VIRTIO_PCI_VENDOR_ID,
        .subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID,
        .class_code = class_code,
        .intx_pin = 1,
        .reset = proxy_reset,
        .config_written = proxy_config_written,
    };
    if (p->opts.legacy && transitional_device_id(id)) {
        /* Transitional: the subsystem id names the device type. */
        info.device_id = transitional_device_id(id);
        info.subsystem_id = id;
        info.revision = 0;
    } else {
        info.device_id = 0x1040 + id;
        info.subsystem_id = 0x1100;
        info.revision = 1;
    }
    return info;
}

static bool slot_from_addr(const char *addr, int *slot, Error **errp)
{
    char *end;
    unsigned long v = strtoul(addr, &end, 16);
    if (end == addr || (*end && strcmp(end, ".0") != 0) || v >= PCI_MAX_SLOTS) {
        error_setg(errp, "Property 'addr' doesn't take value '%s'", addr);
        return false;
    }
    *slot = v;
    return true;
}

bool virtio_pci_parse_options(const KeyValList *kv, unsigned default_vectors,
                              VirtioPciOptions *o, Error **errp)
{
    const char *dl = keyval_get(kv, "disable-legacy");
    bool disable_legacy = false;
    if (dl && strcmp(dl, "auto") != 0 && !parse_bool("disable-legacy", dl, &disable_legacy, errp)) {
        return false;
    }
    o->legacy = !disable_legacy;
    o->modern = !keyval_get_bool(kv, "disable-modern", false);
    if (!o->legacy && !o->modern) {
        error_setg(errp, "device cannot work as neither modern nor legacy mode is enabled");
        return false;
    }
    o->vectors = keyval_get_number(kv, "vectors", default_vectors);
    if (o->vectors > 2048) {
        error_setg(errp, "Property 'vectors' is out of range (at most 2048)");
        return false;
    }
    o->slot = -1;
    const char *addr = keyval_get(kv, "addr");
    const char *bus = keyval_get(kv, "bus");
    if (bus && strcmp(bus, "pci.0") != 0) {
        error_setg(errp, "Bus '%s' not found", bus);
        return false;
    }
    return !addr || slot_from_addr(addr, &o->slot, errp);
}

void virtio_pci_apply_feature_props(const KeyValList *kv, VirtIODevice *vdev)
{
    if (!keyval_get_bool(kv, "event_idx", true)) {
        vdev->host_features &= ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
    }
    if (!keyval_get_bool(kv, "indirect_desc", true)) {
        vdev->host_features &= ~(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
    }
}

static bool proxy_realize(VirtIOPCIProxy *p, PciHost *host, uint32_t class_code,
                          const char *type, Error **errp)
{
    PciDeviceInfo info = proxy_pci_info(p, class_code, type);
    p->pci = pci_device_add(host, p->opts.slot, &info, p, errp);
    if (!p->pci) {
        return false;
    }
    if (p->opts.legacy) {
        uint64_t size = pow2_at_least(LEGACY_CONFIG_MSIX + p->vdev->config_len);
        if (!pci_bar_register(p->pci, LEGACY_BAR, PCI_BAR_IO, false, MAX(size, 4),
                              &legacy_ops, p, errp)) {
            return false;
        }
    }
    if (p->opts.vectors && !pci_msix_init(p->pci, p->opts.vectors, MSIX_BAR, errp)) {
        return false;
    }
    if (p->opts.modern && !add_modern_interface(p, errp)) {
        return false;
    }
    bind_vector_eventfds(p);
    init_kicks(p);
    return true;
}

/* device_del, once the guest ejected the slot (core/qdev.h). */
static void proxy_unplug(void *opaque)
{
    VirtIODevice *vdev = opaque;
    VirtIOPCIProxy *p = vdev->transport_opaque;
    stop_kicks(p);
    unbind_vector_eventfds(p);
    if (vdev->ops->quiesce) {
        vdev->ops->quiesce(vdev);
    }
    virtio_device_unregister(vdev);
    pci_device_remove(p->pci);
    free(p);
    vdev->transport = NULL;
    vdev->transport_opaque = NULL;
    vdev->ops->unrealize(vdev);
}

static const DeviceOps proxy_qdev_ops = { .unplug = proxy_unplug };

bool virtio_pci_plug(const VirtioCreateContext *ctx, const KeyValList *kv,
                     const char *type, VirtIODevice *vdev, uint32_t class_code,
                     const VirtioPciOptions *o, Error **errp)
{
    if (!o->modern) {
        vdev->host_features &= ~(1ULL << VIRTIO_F_VERSION_1);
    }
    Device *holder = o->slot >= 0 ? qdev_find_by_pci_slot(o->slot) : NULL;
    if (holder) {
        error_setg(errp, "PCI: slot %d function 0 not available for %s, in use by %s%s%s",
                   o->slot, type, holder->type, holder->id ? ",id=" : "",
                   holder->id ? holder->id : "");
        return false;
    }
    bool unpluggable = vdev->ops && vdev->ops->unrealize;
    Device *dev = qdev_add(type, keyval_get(kv, "id"), "pci.0", DEVICE_USER,
                           unpluggable ? &proxy_qdev_ops : NULL, vdev, errp);
    if (!dev) {
        return false;
    }
    VirtIOPCIProxy *p = xzalloc(sizeof(*p));
    p->vdev = vdev;
    p->opts = *o;
    vdev->transport = &proxy_transport;
    vdev->transport_opaque = p;
    if (!proxy_realize(p, ctx->pci, class_code, type, errp)) {
        if (p->pci) {
            pci_device_remove(p->pci);
        }
        qdev_remove(dev);
        free(p);
        return false;
    }
    qdev_set_pci_slot(dev, pci_device_slot(p->pci));
    char *path = xasprintf("%s/virtio-backend", dev->path);
    virtio_device_register(vdev, path);
    free(path);
    return true;
}

void virtio_pci_destroy_devices(void)
{
    for (VirtIODevice *d = virtio_device_first(); d; d = d->next) {
        if (d->transport == &proxy_transport) {
            VirtIOPCIProxy *p = d->transport_opaque;
            stop_kicks(p);
            unbind_vector_eventfds(p);
        }
        if (d->ops && d->ops->quiesce) {
            d->ops->quiesce(d);
        }
    }
}
