/*
 * virtio-blk requests (virtio 1.2 section 5.2) on the block layer, shared by
 * the virtio-blk device in vireo and the vhost-user-blk export of
 * vireo-storage-daemon: parse the header, run read/write/flush/discard/
 * write-zeroes/get-id, put the status byte and return the chain. The
 * caller pops chains and owns notification; `completed` tells it about each
 * chain put into the used ring.
 */
#ifndef VIREO_VIRTIO_VIRTIO_BLK_REQ_H
#define VIREO_VIRTIO_VIRTIO_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "block/node.h"
#include "virtio/virtio.h"

/* Feature bits */
#define VIRTIO_BLK_F_SIZE_MAX       1
#define VIRTIO_BLK_F_SEG_MAX        2
#define VIRTIO_BLK_F_GEOMETRY       4
#define VIRTIO_BLK_F_RO             5
#define VIRTIO_BLK_F_BLK_SIZE       6
#define VIRTIO_BLK_F_FLUSH          9
#define VIRTIO_BLK_F_TOPOLOGY       10
#define VIRTIO_BLK_F_CONFIG_WCE     11
#define VIRTIO_BLK_F_MQ             12
#define VIRTIO_BLK_F_DISCARD        13
#define VIRTIO_BLK_F_WRITE_ZEROES   14

#define VIRTIO_BLK_SECTOR_SIZE      512
#define VIRTIO_BLK_MAX_DISCARD_SECTORS 0x3fffff

/* Configuration layout (struct virtio_blk_config). */
enum {
    VIRTIO_BLK_CFG_CAPACITY = 0, VIRTIO_BLK_CFG_SIZE_MAX = 8, VIRTIO_BLK_CFG_SEG_MAX = 12,
    VIRTIO_BLK_CFG_CYLINDERS = 16, VIRTIO_BLK_CFG_HEADS = 18, VIRTIO_BLK_CFG_SECTORS = 19,
    VIRTIO_BLK_CFG_BLK_SIZE = 20, VIRTIO_BLK_CFG_PHYS_EXP = 24, VIRTIO_BLK_CFG_ALIGN_OFF = 25,
    VIRTIO_BLK_CFG_MIN_IO = 26, VIRTIO_BLK_CFG_OPT_IO = 28, VIRTIO_BLK_CFG_WRITEBACK = 32,
    VIRTIO_BLK_CFG_NUM_QUEUES = 34, VIRTIO_BLK_CFG_MAX_DISCARD = 36,
    VIRTIO_BLK_CFG_MAX_DISCARD_SEG = 40, VIRTIO_BLK_CFG_DISCARD_ALIGN = 44,
    VIRTIO_BLK_CFG_MAX_WZ = 48, VIRTIO_BLK_CFG_MAX_WZ_SEG = 52,
    VIRTIO_BLK_CFG_WZ_MAY_UNMAP = 56, VIRTIO_BLK_CFG_SIZE = 60,
};

typedef struct VirtioBlkBackend VirtioBlkBackend;

/* What a failed read, write or flush becomes (QEMU's rerror=/werror= actions). */
typedef enum VirtioBlkErrorAction {
    VIRTIO_BLK_ERROR_REPORT,    /* the guest sees an I/O error */
    VIRTIO_BLK_ERROR_IGNORE,    /* the guest sees success */
    VIRTIO_BLK_ERROR_STOP,      /* held until virtio_blk_retry_held() */
} VirtioBlkErrorAction;

struct VirtioBlkBackend {
    VirtIODevice *vdev;         /* its config byte WRITEBACK picks the cache mode */
    BlockImage *img;
    BlockQueue *bq;             /* reads, writes and flushes go here */
    const char *serial;         /* get-id answer, NULL: empty */
    bool readonly;
    bool gather_segments;       /* the image sits on a per-segment-costly file system */
    BlockNodeStats *stats;      /* counted here (query-blockstats), or NULL */
    /* The chain is in the used ring with `written` bytes; elem is freed after. */
    void (*completed)(VirtioBlkBackend *be, VirtQueue *vq, const VirtQueueElement *elem,
                      uint32_t written);
    /* A read (is_read) or write/flush failed with errno @err; NULL: report it. */
    VirtioBlkErrorAction (*io_error)(VirtioBlkBackend *be, bool is_read, int err);
    void *held;                 /* requests stopped by io_error, oldest first */
    void *opaque;               /* for the owner */
};

/* Submit the held requests again (the VM continues after an I/O error stop). */
void virtio_blk_retry_held(VirtioBlkBackend *be);
/* Forget the held requests without completing them (the rings are reset). */
void virtio_blk_drop_held(VirtioBlkBackend *be);

/* Run one popped chain; it completes now or from the block queue's eventfd. */
void virtio_blk_handle_request(VirtioBlkBackend *be, VirtQueue *vq, VirtQueueElement *elem);

/* Fill struct virtio_blk_config for an image of `size` bytes. */
void virtio_blk_fill_config(uint8_t *cfg, uint64_t size, unsigned num_queues,
                            unsigned queue_size, bool writeback, uint32_t blk_size);

/* Network and user-space file systems: each I/O segment is a message. */
bool virtio_blk_on_forwarding_fs(const char *file);

#endif
