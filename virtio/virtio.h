/*
 * The virtio device model shared by every virtio device and transport.
 *
 * A VirtIODevice is the device half of the virtio spec (1.x, split rings):
 * feature bits, status, ISR, config space, and its virtqueues. A transport
 * (virtio-pci) exposes it to the guest; a device type (blk, net, rng, ...)
 * fills in the callbacks. The fields below are the device's real state:
 * the QMP/HMP introspection commands (virtio/virtio-qmp.c) report them as
 * they are, so they must be kept exact by the core.
 */
#ifndef VIREO_VIRTIO_VIRTIO_H
#define VIREO_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memory/guest-memory.h"
#include "util/error.h"

/* Device IDs (virtio spec 5.x) */
enum {
    VIRTIO_ID_NET = 1,
    VIRTIO_ID_BLOCK = 2,
    VIRTIO_ID_CONSOLE = 3,
    VIRTIO_ID_RNG = 4,
    VIRTIO_ID_BALLOON = 5,
    VIRTIO_ID_SCSI = 8,
    VIRTIO_ID_9P = 9,
    VIRTIO_ID_GPU = 16,
    VIRTIO_ID_INPUT = 18,
    VIRTIO_ID_VSOCK = 19,
    VIRTIO_ID_CRYPTO = 20,
    VIRTIO_ID_IOMMU = 23,
    VIRTIO_ID_MEM = 24,
    VIRTIO_ID_FS = 26,
    VIRTIO_ID_PMEM = 27,
    VIRTIO_ID_I2C_ADAPTER = 34,
};

/* Device status bits */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE     1
#define VIRTIO_CONFIG_S_DRIVER          2
#define VIRTIO_CONFIG_S_DRIVER_OK       4
#define VIRTIO_CONFIG_S_FEATURES_OK     8
#define VIRTIO_CONFIG_S_NEEDS_RESET     0x40
#define VIRTIO_CONFIG_S_FAILED          0x80

/* Transport feature bits */
#define VIRTIO_F_NOTIFY_ON_EMPTY        24
#define VIRTIO_F_ANY_LAYOUT             27
#define VIRTIO_RING_F_INDIRECT_DESC     28
#define VIRTIO_RING_F_EVENT_IDX         29
#define VHOST_USER_F_PROTOCOL_FEATURES  30
#define VIRTIO_F_VERSION_1              32
#define VIRTIO_F_IOMMU_PLATFORM         33
#define VIRTIO_F_RING_PACKED            34
#define VIRTIO_F_ORDER_PLATFORM         36
#define VIRTIO_F_SR_IOV                 37
#define VIRTIO_F_RING_RESET             40

/* Descriptor flags */
#define VRING_DESC_F_NEXT       1
#define VRING_DESC_F_WRITE      2
#define VRING_DESC_F_INDIRECT   4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY  1

#define VIRTQUEUE_MAX_SIZE 1024
#define VIRTIO_PCI_VRING_ALIGN 4096

typedef struct VirtIODevice VirtIODevice;
struct VirtQueueElement;

typedef struct VirtQueue {
    VirtIODevice *vdev;
    uint16_t index;
    uint32_t num;               /* ring size in use (the driver may shrink it) */
    uint32_t num_default;       /* the size the device offers */
    uint32_t align;             /* VIRTIO_PCI_VRING_ALIGN */
    uint64_t desc, avail, used; /* guest-physical ring addresses */
    bool enabled;               /* queue_enable written by the driver */
    uint16_t msix_vector;
    /* Ring progress, exactly as the device sees it. */
    uint16_t last_avail_idx;    /* next avail entry the device will take */
    uint16_t shadow_avail_idx;  /* avail->idx as last read from the guest */
    uint16_t used_idx;          /* next used entry the device will write */
    uint16_t signalled_used;    /* used_idx when the driver was last notified */
    bool signalled_used_valid;
    uint32_t inuse;             /* chains taken and not yet returned */
    void (*handle_output)(VirtIODevice *vdev, struct VirtQueue *vq);
    void *opaque;               /* for the device type */
    /* Host views of the rings, checked once when the queue is enabled. */
    struct VirtQueueDesc *desc_hva;     /* num entries */
    struct VirtQueueAvail *avail_hva;   /* flags, idx, ring[num], used_event */
    struct VirtQueueUsed *used_hva;     /* flags, idx, ring[num], avail_event */
    bool notification_disabled;         /* the device asked not to be kicked */
} VirtQueue;

/* vhost back-end state, reported by x-query-virtio-status when active. */
typedef struct VhostDevInfo {
    int n_mem_sections, n_tmp_sections;
    uint32_t nvqs;
    int vq_index;
    uint64_t features, acked_features, backend_features, protocol_features;
    uint64_t max_queues, backend_cap;
    bool log_enabled;
    uint64_t log_size;
    struct VhostDev *dev;       /* the back-end itself (virtio/vhost.h) */
    /* per queue, for x-query-virtio-vhost-queue-status */
    struct {
        uint64_t desc_phys, avail_phys, used_phys;
        uint32_t desc_size, avail_size, used_size;
    } *vq;
} VhostDevInfo;

struct VirtIODevice {
    const char *name;           /* "virtio-blk", as QEMU names the backend */
    uint16_t device_id;
    char *path;                 /* "/machine/peripheral/ID/virtio-backend" */
    GuestMemory *mem;

    uint64_t host_features;     /* offered */
    uint64_t guest_features;    /* accepted by the driver (FEATURES_OK) */
    uint64_t backend_features;
    uint8_t status;
    uint8_t isr;
    uint16_t queue_sel;
    uint32_t device_feature_sel, driver_feature_sel;
    uint8_t config_generation;

    bool broken;                /* the driver broke the rules: NEEDS_RESET set */
    bool disabled;
    bool started;
    bool use_started;
    bool start_on_kick;
    bool disable_legacy_check;
    bool use_guest_notifier_mask;
    bool vhost_started;
    VhostDevInfo *vhost;        /* NULL without vhost */

    VirtQueue *vq;
    unsigned nvqs;

    VirtIODevice *next;         /* registry, in creation order */

    /* ---- below: for the core, transports and device types ---- */
    uint64_t driver_features;   /* as written by the driver, unmasked */
    uint16_t config_vector;     /* MSI-X vector of configuration changes */
    uint8_t *config;            /* device-specific configuration space */
    uint32_t config_len;
    bool legacy;                /* the driver talks through the legacy I/O BAR */
    const struct VirtIODeviceOps *ops;
    void *opaque;               /* the device type's state */
    const struct VirtIOTransportOps *transport;
    void *transport_opaque;
};

/* What a device type provides (every callback optional). */
typedef struct VirtIODeviceOps {
    /* Back to power-on state; the core already reset the queues. */
    void (*reset)(VirtIODevice *vdev);
    /* Status changed (e.g. DRIVER_OK set); old is the previous value. */
    void (*set_status)(VirtIODevice *vdev, uint8_t old);
    /* The driver writes config bytes [offset, offset+size): the device applies
     * what it allows (NULL: configuration space is read-only). */
    void (*config_write)(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size);
    /* Refresh config space before the driver reads it. */
    void (*config_refresh)(VirtIODevice *vdev);
    /* The machine is going away: finish and release back-end I/O while guest
     * RAM is still mapped (in-flight requests write into it). */
    void (*quiesce)(VirtIODevice *vdev);
    /* Hot-unplug, after quiesce and with the transport gone: release the
     * back-end and free the device (vq, config, the type's state). NULL:
     * the device type cannot be unplugged. */
    void (*unrealize)(VirtIODevice *vdev);
} VirtIODeviceOps;

/* What the transport provides to the core. */
typedef struct VirtIOTransportOps {
    /* Signal the driver on MSI-X vector (VIRTIO_NO_VECTOR: legacy INTx). */
    void (*notify)(VirtIODevice *vdev, uint16_t vector);
    /*
     * For back-ends that run queues outside vireo (vhost), optional:
     * kick_fd lends queue q's kick eventfd (lend = true; it stays the
     * back-end's until taken back with lend = false) and returns it, or -1
     * when kicks cannot arrive as an eventfd; call_fd returns an eventfd
     * that interrupts the driver for queue q, or -1.
     */
    int (*kick_fd)(VirtIODevice *vdev, unsigned q, bool lend);
    int (*call_fd)(VirtIODevice *vdev, unsigned q);
} VirtIOTransportOps;

#define VIRTIO_NO_VECTOR 0xffff
#define VIRTIO_ISR_QUEUE  1
#define VIRTIO_ISR_CONFIG 2

/* The features every device offers (QEMU 7.2's transport defaults). */
#define VIRTIO_COMMON_FEATURES \
    (1ULL << VIRTIO_F_NOTIFY_ON_EMPTY | 1ULL << VIRTIO_F_ANY_LAYOUT | \
     1ULL << VIRTIO_RING_F_INDIRECT_DESC | 1ULL << VIRTIO_RING_F_EVENT_IDX | \
     1ULL << VHOST_USER_F_PROTOCOL_FEATURES | 1ULL << VIRTIO_F_VERSION_1 | \
     1ULL << VIRTIO_F_RING_RESET)

/*
 * One descriptor chain taken from the avail ring, already validated: every
 * buffer lies in guest RAM, readable ones first, totals below 4 GiB.
 */
typedef struct VirtQueueElement {
    uint16_t head;              /* descriptor index, returned in the used ring */
    unsigned out_num, in_num;   /* device-readable, device-writable buffers */
    struct iovec *out_sg, *in_sg;
    uint32_t out_len, in_len;   /* total bytes */
} VirtQueueElement;

/* ---- core (virtio/virtio.c) ---- */
void virtio_device_init(VirtIODevice *vdev, const char *name, uint16_t device_id,
                        GuestMemory *mem, uint32_t config_len, unsigned nvqs);
void virtio_device_register(VirtIODevice *vdev, const char *path);
/* Out of the registry (the device is being unplugged); frees path. */
void virtio_device_unregister(VirtIODevice *vdev);
VirtQueue *virtio_queue_setup(VirtIODevice *vdev, unsigned index, uint32_t size,
                              void (*handle_output)(VirtIODevice *, VirtQueue *));
bool virtio_has_feature(const VirtIODevice *vdev, unsigned bit);
void virtio_set_status(VirtIODevice *vdev, uint8_t status);
void virtio_reset(VirtIODevice *vdev);
/* Driver writes one 32-bit half of its features (sel 0 or 1). */
void virtio_write_driver_features(VirtIODevice *vdev, unsigned sel, uint32_t val);
uint32_t virtio_read_device_features(const VirtIODevice *vdev, unsigned sel);
/* Configuration space as the driver sees it (little endian). */
uint64_t virtio_config_read(VirtIODevice *vdev, uint32_t offset, unsigned size);
void virtio_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size);
/* The device changed its config: bump the generation, interrupt the driver. */
void virtio_notify_config(VirtIODevice *vdev);
/* A guest protocol violation: the device stops until the driver resets it. */
void virtio_mark_broken(VirtIODevice *vdev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool virtio_driver_ok(const VirtIODevice *vdev);
/* A vhost back-end runs vq as its queue i: note where the rings are, for QMP. */
void vhost_dev_info_set_queue(VhostDevInfo *info, unsigned i, const VirtQueue *vq,
                              uint64_t desc_size, uint64_t avail_size, uint64_t used_size);
/* The driver kicked queue n. */
void virtio_queue_notify(VirtIODevice *vdev, unsigned n);

/* ---- split virtqueue (virtio/virtqueue.c) ---- */
/* Map the rings (after the driver set addresses and size); false: broken. */
bool virtqueue_enable(VirtQueue *vq);
void virtqueue_reset(VirtQueue *vq);
bool virtqueue_ready(const VirtQueue *vq);
bool virtqueue_empty(VirtQueue *vq);
/* Next chain, or false when empty or the chain was bad (device broken). */
bool virtqueue_pop(VirtQueue *vq, VirtQueueElement *elem);
/*
 * Take the chain at head without consuming an avail entry: a vhost-user
 * back-end resubmitting a request that was in flight when it restarted.
 */
bool virtqueue_take_head(VirtQueue *vq, uint16_t head, VirtQueueElement *elem);
void virtqueue_element_free(VirtQueueElement *elem);
/* Put back the last popped chain unused (e.g. no room in a back-end). */
void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem);
/* Return a chain with len bytes written into its device-writable buffers. */
void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len);
/* Interrupt the driver if it wants to hear about the used entries so far. */
void virtqueue_notify(VirtQueue *vq);
/* Ask the driver to kick (or not) on new avail entries. */
void virtqueue_set_notification(VirtQueue *vq, bool enable);

/* iovec helpers: copy between a flat buffer and a scatter list. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                    size_t len);
/* Copy the sub-range [offset, offset+len) of iov into dst (max dst_n entries). */
unsigned iov_slice(const struct iovec *iov, unsigned n, size_t offset, size_t len,
                   struct iovec *dst, unsigned dst_n);

/* Registry of realized devices (creation order), for introspection. */
VirtIODevice *virtio_device_first(void);
VirtIODevice *virtio_device_find_path(const char *path);

/* Number of queues with a non-zero size (QEMU's num-vqs). */
int virtio_num_queues(const VirtIODevice *vdev);

#endif
