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

#include "machine/memory.h"
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
};

/* Registry of realized devices (creation order), for introspection. */
VirtIODevice *virtio_device_first(void);
VirtIODevice *virtio_device_find_path(const char *path);

/* Number of queues with a non-zero size (QEMU's num-vqs). */
int virtio_num_queues(const VirtIODevice *vdev);

#endif
