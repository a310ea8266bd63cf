/*
 * virtio-balloon (virtio 1.2 section 5.5): the host sets a target number of
 * 4 KiB pages in config space; the guest hands pages over on the inflate
 * queue (we drop their host backing) and takes them back on the deflate
 * queue; memory statistics arrive on the stats queue.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "core/main-loop.h"
#include "util/byteorder.h"
#include "util/osdep.h"
#include "virtio/virtio-balloon.h"
#include "virtio/virtio-pci.h"

#define BALLOON_F_STATS_VQ      1
#define BALLOON_F_PAGE_POISON   4
#define BALLOON_PAGE_SHIFT      12
#define BALLOON_PAGE_SIZE       (1u << BALLOON_PAGE_SHIFT)
#define QUEUE_SIZE              128

enum { Q_INFLATE = 0, Q_DEFLATE = 1, Q_STATS = 2 };
/* Configuration: num_pages, actual, free_page_hint_cmd_id, poison_val */
enum { CFG_NUM_PAGES = 0, CFG_ACTUAL = 4, CFG_POISON = 12, CFG_SIZE = 16 };

typedef struct VirtIOBalloon {
    VirtIODevice vdev;
    uint64_t ram_size;
    uint32_t num_pages;         /* target the host asked for */
    uint32_t actual;            /* pages the guest reports it gave */
    VirtQueueElement stats_elem;
    bool stats_held;            /* a stats buffer waits for the next poll */
    /* guest-stats: the last numbers the driver sent, -1 for those it did not */
    int64_t stats[BALLOON_NR_STATS];
    int64_t stats_last_update;  /* host time (s) of the last report; 0: none */
    int64_t poll_interval;      /* guest-stats-polling-interval (s); 0: no polling */
    Timer *poll_timer;
} VirtIOBalloon;

void (*virtio_balloon_change_hook)(int64_t actual);
static VirtIOBalloon *the_balloon;

static const OptParam balloon_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "deflate-on-oom", OPT_BOOL, "deflate when the guest runs out of memory", "off" },
    { "free-page-reporting", OPT_BOOL, "free page reporting", "off" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};


/* Give the host page of a ballooned guest page back to the host. */
static void discard_page(VirtIOBalloon *b, uint32_t pfn)
{
    /* Outside RAM, or locked memory: nothing to give back. */
    gmem_discard(b->vdev.mem, (uint64_t)pfn << BALLOON_PAGE_SHIFT, BALLOON_PAGE_SIZE);
}

static void balloon_pages(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBalloon *b = vdev->opaque;
    VirtQueueElement elem;
    while (virtqueue_pop(vq, &elem)) {
        for (size_t off = 0; vq->index == Q_INFLATE && off + 4 <= elem.out_len; off += 4) {
            uint32_t pfn;
            iov_to_buf(elem.out_sg, elem.out_num, off, &pfn, 4);
            discard_page(b, le32toh(pfn));
        }
        virtqueue_push(vq, &elem, 0);
        virtqueue_element_free(&elem);
    }
    virtqueue_notify(vq);
}

/*
 * Keep the stats buffer: returning it asks the guest for fresh numbers.
 * The buffer holds (le16 tag, le64 value) pairs; unknown tags are skipped.
 */
static void balloon_stats(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBalloon *b = vdev->opaque;
    if (b->stats_held) {
        return;
    }
    b->stats_held = virtqueue_pop(vq, &b->stats_elem);
    if (!b->stats_held) {
        return;
    }
    for (size_t off = 0; off + 10 <= b->stats_elem.out_len && off < 4096; off += 10) {
        uint8_t rec[10];
        iov_to_buf(b->stats_elem.out_sg, b->stats_elem.out_num, off, rec, sizeof(rec));
        uint16_t tag = rec[0] | rec[1] << 8;
        uint64_t val;
        memcpy(&val, rec + 2, 8);
        if (tag < BALLOON_NR_STATS) {
            b->stats[tag] = (int64_t)le64toh(val);
        }
    }
    b->stats_last_update = clock_get_ns(CLOCK_REALTIME_HOST) / 1000000000;
}

/* Hand the buffer back: the driver refills it and returns it with new numbers. */
static void stats_poll(void *opaque)
{
    VirtIOBalloon *b = opaque;
    if (b->stats_held && virtio_driver_ok(&b->vdev)) {
        VirtQueue *vq = &b->vdev.vq[Q_STATS];
        virtqueue_push(vq, &b->stats_elem, 0);
        virtqueue_element_free(&b->stats_elem);
        b->stats_held = false;
        virtqueue_notify(vq);
    }
    if (b->poll_interval > 0) {
        timer_mod(b->poll_timer, clock_get_ns(CLOCK_VIRTUAL) + b->poll_interval * 1000000000);
    }
}

static void balloon_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val,
                                 unsigned size)
{
    VirtIOBalloon *b = vdev->opaque;
    if (offset != CFG_ACTUAL || size != 4) {
        return;
    }
    uint32_t old = b->actual;
    b->actual = val;
    st_le32(vdev->config + CFG_ACTUAL, b->actual);
    if (old != b->actual && virtio_balloon_change_hook) {
        virtio_balloon_change_hook(b->ram_size - ((uint64_t)b->actual << BALLOON_PAGE_SHIFT));
    }
}

static void balloon_reset(VirtIODevice *vdev)
{
    VirtIOBalloon *b = vdev->opaque;
    if (b->stats_held) {
        virtqueue_element_free(&b->stats_elem);
        b->stats_held = false;
    }
    b->actual = 0;
    st_le32(vdev->config + CFG_ACTUAL, 0);
    for (int i = 0; i < BALLOON_NR_STATS; i++) {
        b->stats[i] = -1;
    }
    b->stats_last_update = 0;
}

/* Hot-unplug: the pages the guest gave back stay with the host until it touches them. */
static void balloon_unrealize(VirtIODevice *vdev)
{
    VirtIOBalloon *b = vdev->opaque;
    if (b->stats_held) {
        virtqueue_element_free(&b->stats_elem);
    }
    if (b->poll_timer) {
        timer_free(b->poll_timer);
    }
    if (the_balloon == b) {
        the_balloon = NULL;
    }
    free(b->vdev.config);
    free(b->vdev.vq);
    free(b);
}

static const VirtIODeviceOps balloon_ops = {
    .reset = balloon_reset, .config_write = balloon_config_write,
    .unrealize = balloon_unrealize,
};

bool virtio_balloon_set_target(int64_t target, Error **errp)
{
    VirtIOBalloon *b = the_balloon;
    if (!b) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_ACTIVE, "No balloon device has been activated");
        return false;
    }
    if (target <= 0) {
        error_setg(errp, "Parameter 'target' expects a size");
        return false;
    }
    uint64_t t = MIN((uint64_t)target, b->ram_size);
    b->num_pages = (b->ram_size - t) >> BALLOON_PAGE_SHIFT;
    st_le32(b->vdev.config + CFG_NUM_PAGES, b->num_pages);
    virtio_notify_config(&b->vdev);
    return true;
}

bool virtio_balloon_query(int64_t *actual, Error **errp)
{
    VirtIOBalloon *b = the_balloon;
    if (!b) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_ACTIVE, "No balloon device has been activated");
        return false;
    }
    *actual = b->ram_size - ((uint64_t)b->actual << BALLOON_PAGE_SHIFT);
    return true;
}

bool virtio_balloon_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    VirtioPciOptions po;
    if (!keyval_parse(opts, "driver", balloon_params, &kv, errp)) {
        return false;
    }
    bool ok = virtio_pci_parse_options(&kv, 0, &po, errp);
    if (ok && the_balloon) {
        error_setg(errp, "Only one balloon device is supported");
        ok = false;
    }
    VirtIOBalloon *b = ok ? xzalloc(sizeof(*b)) : NULL;
    if (b) {
        virtio_device_init(&b->vdev, "virtio-balloon", VIRTIO_ID_BALLOON, ctx->mem, CFG_SIZE, 3);
        virtio_queue_setup(&b->vdev, Q_INFLATE, QUEUE_SIZE, balloon_pages);
        virtio_queue_setup(&b->vdev, Q_DEFLATE, QUEUE_SIZE, balloon_pages);
        virtio_queue_setup(&b->vdev, Q_STATS, QUEUE_SIZE, balloon_stats);
        b->vdev.host_features |= 1ULL << BALLOON_F_STATS_VQ | 1ULL << BALLOON_F_PAGE_POISON;
        b->vdev.ops = &balloon_ops;
        b->vdev.opaque = b;
        b->ram_size = ctx->mem->ram_size;
        for (int i = 0; i < BALLOON_NR_STATS; i++) {
            b->stats[i] = -1;
        }
        virtio_pci_apply_feature_props(&kv, &b->vdev);
        ok = virtio_pci_plug(ctx, &kv, "virtio-balloon-pci", &b->vdev, 0x00ff00, &po, errp);
        if (ok) {
            the_balloon = b;
        } else {
            free(b->vdev.config);
            free(b->vdev.vq);
            free(b);
        }
    }
    keyval_free(&kv);
    return ok;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *virtio_balloon_pci_params(void);
const OptParam *virtio_balloon_pci_params(void)
{
    return balloon_params;
}

/* ---- guest-stats, guest-stats-polling-interval (qom-get/qom-set) ---- */

bool virtio_balloon_get_stats(int64_t stats[BALLOON_NR_STATS], int64_t *last_update)
{
    if (!the_balloon) {
        return false;
    }
    memcpy(stats, the_balloon->stats, sizeof(the_balloon->stats));
    *last_update = the_balloon->stats_last_update;
    return true;
}

int64_t virtio_balloon_poll_interval(void)
{
    return the_balloon ? the_balloon->poll_interval : 0;
}

bool virtio_balloon_set_poll_interval(int64_t secs, Error **errp)
{
    VirtIOBalloon *b = the_balloon;
    if (secs < 0) {
        error_setg(errp, "timer value must be greater than zero");
        return false;
    }
    if (secs > UINT32_MAX) {
        error_setg(errp, "timer value is too big");
        return false;
    }
    if (!b) {
        error_setg(errp, "No balloon device has been activated");
        return false;
    }
    if (!b->poll_timer) {
        b->poll_timer = timer_new(CLOCK_VIRTUAL, stats_poll, b);
    }
    b->poll_interval = secs;
    if (secs == 0) {
        timer_del(b->poll_timer);
    } else {
        timer_mod(b->poll_timer, clock_get_ns(CLOCK_VIRTUAL) + secs * 1000000000);
    }
    return true;
}
