/*
 * libFuzzer target for the split virtqueue (virtio/virtqueue.c) and the
 * virtio-blk request engine (virtio/virtio-blk-req.c): the input is the
 * guest. A 16-byte header says how the driver set the queue up, the rest
 * is guest RAM from address 0: rings, descriptors, indirect tables,
 * request headers and buffers, all as a hostile driver may write them.
 *
 * Header: byte 0 the queue size the driver wrote (1 << (b0 & 15), so
 * invalid sizes too), byte 1 the features it accepted (bit 0 indirect
 * descriptors, bit 1 event index), byte 2 what the device does with each
 * chain (bit 0 hand it to virtio-blk, bit 1 put the first chain back
 * unused once, bit 2 call notify after each push), byte 3 how many chains
 * to take at most; bytes 4-15 the desc, avail and used ring addresses
 * (little-endian u32, taken modulo the RAM layout below).
 *
 * RAM is 64 KiB at 0 and 64 KiB at 4 GiB (the layout above the PCI hole,
 * made by guest-memory.c itself), so buffers can straddle a region's end;
 * the input's RAM bytes are written to both regions, so small inputs can
 * put rings and buffers in either.
 * virtio-blk requests go to a 1 MiB raw image in a memfd through the real
 * asynchronous block queue.
 *
 * Checks besides the sanitizers: every buffer of every chain handed to the
 * device lies inside guest RAM, the element's totals match its buffers,
 * readable buffers come first, and the used index moves by one per push.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"
#include "util/osdep.h"
#include "virtio/virtio-blk-req.h"
#include "virtio/virtio.h"

#define LOW_RAM     (64u << 10)
#define RAM_SIZE    (2 * LOW_RAM)
#define HIGH_BASE   (1ULL << 32)
#define HDR         16
#define IMAGE_SIZE  (1u << 20)

static GuestMemory mem;
static VirtIODevice vdev;
static BlockImage *img;
static BlockQueue *bq;
static VirtioBlkBackend be;
static unsigned completions;
static uint8_t scratch[1 << 16];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-virtqueue: %s\n", what);
    abort();
}

static void transport_notify(VirtIODevice *d, uint16_t vector)
{
}

static const VirtIOTransportOps transport = {
    .notify = transport_notify,
};

static void blk_completed(VirtioBlkBackend *b, VirtQueue *vq, const VirtQueueElement *elem,
                          uint32_t written)
{
    if (written < 1 || written > elem->in_len) {
        fail("virtio-blk reports more written than the chain can hold");
    }
    completions++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    /* 64 KiB at 0 (the lowmem limit here), the other 64 KiB at 4 GiB. */
    if (!guest_memory_create_private(&mem, RAM_SIZE, LOW_RAM, &err)) {
        fprintf(stderr, "fuzz-virtqueue: %s\n", error_get_pretty(err));
        exit(1);
    }
    virtio_device_init(&vdev, "virtio-blk", VIRTIO_ID_BLOCK, &mem, VIRTIO_BLK_CFG_SIZE, 1);
    vdev.transport = &transport;
    virtio_queue_setup(&vdev, 0, VIRTQUEUE_MAX_SIZE, NULL);

    int fd = memfd_create("vireo-fuzz-disk", MFD_CLOEXEC);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (fd < 0 || ftruncate(fd, IMAGE_SIZE) < 0 ||
        !(img = blk_open(path, "raw", BLK_O_RDWR, &err)) ||
        !(bq = blk_queue_new(img, 16, &err))) {
        fprintf(stderr, "fuzz-virtqueue: disk: %s\n", err ? error_get_pretty(err) : "memfd");
        exit(1);
    }
    be.vdev = &vdev;
    be.img = img;
    be.bq = bq;
    be.serial = "fuzz-serial-0123456789";
    be.completed = blk_completed;
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Ring addresses land in either region, or just past them. */
static uint64_t ring_gpa(uint32_t v)
{
    uint64_t off = (v & 0x7fffffffu) % (LOW_RAM + 64);
    return v & 0x80000000u ? HIGH_BASE + off : off;
}

static void check_element(const VirtQueueElement *e)
{
    uint64_t out = 0, in = 0;
    if (e->out_num + e->in_num == 0 || e->in_sg != e->out_sg + e->out_num) {
        fail("element without buffers, or readable and writable ones mixed");
    }
    for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
        uint64_t gpa;
        const struct iovec *v = &e->out_sg[i];
        if (!gmem_gpa_of(&mem, v->iov_base, v->iov_len, &gpa)) {
            fail("a chain buffer lies outside guest RAM");
        }
        *(i < e->out_num ? &out : &in) += v->iov_len;
    }
    if (out != e->out_len || in != e->in_len) {
        fail("element totals do not match its buffers");
    }
}

/* What a device without a request parser does: read all, write all. */
static void plain_device(VirtQueue *vq, VirtQueueElement *e)
{
    size_t n = iov_to_buf(e->out_sg, e->out_num, 0, scratch, sizeof(scratch));
    size_t w = e->in_len < sizeof(scratch) ? e->in_len : sizeof(scratch);
    memset(scratch, 0xa5, w);
    if (iov_from_buf(e->in_sg, e->in_num, 0, scratch, w) != w) {
        fail("iov_from_buf wrote less than the chain holds");
    }
    struct iovec part[4];
    iov_slice(e->out_sg, e->out_num, n / 3, n / 2, part, 4);
    virtqueue_push(vq, e, (uint32_t)w);
    virtqueue_element_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR || size > HDR + LOW_RAM) {
        return -1;
    }
    const uint8_t *ram = data + HDR;
    size_t ram_len = size - HDR;
    gmem_fill(&mem, 0, 0, LOW_RAM);
    gmem_fill(&mem, HIGH_BASE, 0, LOW_RAM);
    gmem_write(&mem, 0, ram, ram_len);
    gmem_write(&mem, HIGH_BASE, ram, ram_len);

    virtio_reset(&vdev);
    vdev.broken = false;
    vdev.status = 0;
    vdev.guest_features = 1ULL << VIRTIO_F_VERSION_1;
    if (data[1] & 1) {
        vdev.guest_features |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
    }
    if (data[1] & 2) {
        vdev.guest_features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
    }
    VirtQueue *vq = &vdev.vq[0];
    vq->num = 1u << (data[0] & 15);
    vq->desc = ring_gpa(get32(data + 4));
    vq->avail = ring_gpa(get32(data + 8));
    vq->used = ring_gpa(get32(data + 12));
    if (!virtqueue_enable(vq)) {
        return 0;
    }
    vdev.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                  VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;

    unsigned max_chains = data[3] % 64 + 1;
    bool unpopped = false;
    completions = 0;
    unsigned pushed = 0;
    uint16_t used_start = vq->used_idx;
    for (unsigned i = 0; i < max_chains; i++) {
        VirtQueueElement e;
        if (!virtqueue_pop(vq, &e)) {
            break;
        }
        check_element(&e);
        if ((data[2] & 2) && !unpopped) {
            unpopped = true;
            virtqueue_unpop(vq, &e);
            continue;
        }
        if (data[2] & 1) {
            unsigned before = completions;
            virtio_blk_handle_request(&be, vq, &e);
            while (blk_queue_in_flight(bq)) {
                blk_queue_process(bq, true);
            }
            pushed += completions - before;
        } else {
            plain_device(vq, &e);
            pushed++;
        }
        if (data[2] & 4) {
            virtqueue_notify(vq);
        }
    }
    if (!(data[2] & 4)) {
        virtqueue_notify(vq);
    }
    if ((uint16_t)(vq->used_idx - used_start) != (uint16_t)pushed) {
        fail("the used index moved by other than one per push");
    }
    virtqueue_set_notification(vq, data[1] & 4);
    return 0;
}
