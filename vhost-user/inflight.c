/*
 * The inflight area (INFLIGHT_SHMFD): shared memory the back-end allocates
 * and the frontend keeps across back-end restarts. Each queue has a header
 * and one state per descriptor head: a flag set while the request is being
 * processed and a counter giving the submission order. A restarted
 * back-end resubmits the flagged heads, oldest first, so a request in
 * flight at a crash is neither lost nor done twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/osdep.h"
#include "vhost-user/vhost-user.h"

#define INFLIGHT_ALIGN      64
#define INFLIGHT_VERSION    1

static uint64_t queue_region_size(uint16_t queue_size)
{
    return ROUND_UP(sizeof(VhostUserInflightQueue) +
                    (uint64_t)queue_size * sizeof(VhostUserInflightDesc), INFLIGHT_ALIGN);
}

static VhostUserInflightQueue *queue_region(VuDev *dev, unsigned q)
{
    return (VhostUserInflightQueue *)(dev->inflight_map +
                                      q * queue_region_size(dev->inflight_queue_size));
}

void vu_inflight_reset(VuDev *dev)
{
    if (dev->inflight_map) {
        munmap(dev->inflight_map, dev->inflight_size);
    }
    dev->inflight_map = NULL;
    dev->inflight_size = 0;
    dev->inflight_num_queues = dev->inflight_queue_size = 0;
}

static bool geometry_valid(const VuDev *dev, uint16_t num_queues, uint16_t queue_size,
                           Error **errp)
{
    if (num_queues == 0 || num_queues > dev->num_queues || queue_size == 0 ||
        queue_size > VIRTQUEUE_MAX_SIZE || (queue_size & (queue_size - 1))) {
        error_setg(errp, "inflight area for %u queues of %u entries (at most %u queues of "
                   "%u)", num_queues, queue_size, dev->num_queues, VIRTQUEUE_MAX_SIZE);
        return false;
    }
    return true;
}

static bool map_area(VuDev *dev, int fd, uint64_t offset, uint64_t size,
                     uint16_t num_queues, uint16_t queue_size, Error **errp)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map the inflight area");
        return false;
    }
    vu_inflight_reset(dev);
    dev->inflight_map = p;
    dev->inflight_size = size;
    dev->inflight_num_queues = num_queues;
    dev->inflight_queue_size = queue_size;
    return true;
}

bool vu_inflight_get(VuDev *dev, VhostUserInflight *inf, int *fd_out, Error **errp)
{
    if (!geometry_valid(dev, inf->num_queues, inf->queue_size, errp)) {
        return false;
    }
    uint64_t size = inf->num_queues * queue_region_size(inf->queue_size);
    int fd = memfd_create("vireo-inflight", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        error_setg_errno(errp, errno, "cannot create the inflight area");
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    if (!map_area(dev, fd, 0, size, inf->num_queues, inf->queue_size, errp)) {
        close(fd);
        return false;
    }
    for (unsigned q = 0; q < inf->num_queues; q++) {
        VhostUserInflightQueue *r = queue_region(dev, q);
        r->version = INFLIGHT_VERSION;
        r->desc_num = inf->queue_size;
    }
    inf->mmap_size = size;
    inf->mmap_offset = 0;
    *fd_out = fd;
    return true;
}

bool vu_inflight_set(VuDev *dev, const VhostUserInflight *inf, int fd, Error **errp)
{
    struct stat st;
    if (!geometry_valid(dev, inf->num_queues, inf->queue_size, errp)) {
        return false;
    }
    uint64_t need = inf->num_queues * queue_region_size(inf->queue_size);
    if (inf->mmap_size < need || inf->mmap_offset > UINT64_MAX - inf->mmap_size ||
        fstat(fd, &st) < 0 ||
        (S_ISREG(st.st_mode) && inf->mmap_offset + inf->mmap_size > (uint64_t)st.st_size)) {
        error_setg(errp, "inflight area of %llu bytes at offset %llu: %llu needed inside its "
                   "file", (unsigned long long)inf->mmap_size,
                   (unsigned long long)inf->mmap_offset, (unsigned long long)need);
        return false;
    }
    if (!map_area(dev, fd, inf->mmap_offset, inf->mmap_size, inf->num_queues,
                  inf->queue_size, errp)) {
        return false;
    }
    for (unsigned q = 0; q < inf->num_queues; q++) {
        VhostUserInflightQueue *r = queue_region(dev, q);
        if (r->version != INFLIGHT_VERSION || r->desc_num != inf->queue_size) {
            /* Not ours (or never used): start it afresh. */
            memset(r, 0, queue_region_size(inf->queue_size));
            r->version = INFLIGHT_VERSION;
            r->desc_num = inf->queue_size;
        }
    }
    return true;
}

/* Entries the used ring holds beyond what the area recorded were completed. */
static void settle_used(VuDev *dev, VuVring *vr, VhostUserInflightQueue *q)
{
    VirtQueue *vq = vu_vring_vq(dev, vr);
    uint16_t recorded = q->used_idx, ring = vq->used_idx;
    if ((uint16_t)(ring - recorded) > vq->num) {
        return;     /* unrelated indexes (a fresh area): nothing to settle */
    }
    for (uint16_t i = recorded; i != ring; i++) {
        uint32_t id;
        if (gmem_read_u32(&dev->mem, vq->used + 4 + 8ull * (i % vq->num), &id) &&
            id < q->desc_num) {
            q->desc[id].inflight = 0;
        }
    }
    q->used_idx = ring;
}

static VhostUserInflightQueue *sort_q;

static int by_counter(const void *a, const void *b)
{
    uint64_t ca = sort_q->desc[*(const uint16_t *)a].counter;
    uint64_t cb = sort_q->desc[*(const uint16_t *)b].counter;
    return ca < cb ? -1 : ca > cb;
}

/* Collect the heads still flagged, oldest first. */
static void collect_inflight(VuDev *dev, VuVring *vr, VhostUserInflightQueue *q)
{
    VirtQueue *vq = vu_vring_vq(dev, vr);
    uint64_t max_counter = 0;
    vr->resubmit = xmalloc(sizeof(uint16_t) * vq->num);
    vr->n_resubmit = 0;
    for (unsigned h = 0; h < vq->num; h++) {
        if (q->desc[h].inflight) {
            vr->resubmit[vr->n_resubmit++] = h;
            max_counter = MAX(max_counter, q->desc[h].counter);
        }
    }
    sort_q = q;
    qsort(vr->resubmit, vr->n_resubmit, sizeof(uint16_t), by_counter);
    vr->inflight_counter = max_counter + 1;
    if (vr->n_resubmit) {
        /* The frontend rewound to the used index; the flagged heads were taken
         * from the avail entries after it. */
        vq->last_avail_idx = vq->shadow_avail_idx = vq->used_idx + vr->n_resubmit;
    }
}

void vu_inflight_attach(VuDev *dev, VuVring *vr)
{
    VirtQueue *vq = vu_vring_vq(dev, vr);
    vr->inflight = NULL;
    if (!dev->inflight_map || vr->index >= dev->inflight_num_queues ||
        dev->inflight_queue_size < vq->num) {
        return;
    }
    VhostUserInflightQueue *q = queue_region(dev, vr->index);
    vr->inflight = q;
    settle_used(dev, vr, q);
    collect_inflight(dev, vr, q);
    if (vr->n_resubmit) {
        fprintf(stderr, "%s: %s: ring %u: resubmitting %u requests that were in flight\n",
                program_invocation_short_name, dev->name, vr->index, vr->n_resubmit);
    }
}

unsigned vu_inflight_resubmit(VuDev *dev, VuVring *vr,
                              void (*submit)(VuDev *, VuVring *, VirtQueueElement *))
{
    unsigned n = vr->n_resubmit, done = 0;
    uint16_t *heads = vr->resubmit;
    vr->resubmit = NULL;
    vr->n_resubmit = 0;
    for (unsigned i = 0; i < n; i++) {
        VirtQueueElement elem;
        if (!virtqueue_take_head(vu_vring_vq(dev, vr), heads[i], &elem)) {
            break;      /* the ring is broken now: the frontend is dropped */
        }
        vu_request_begin(dev, vr, heads[i]);
        submit(dev, vr, &elem);
        done++;
    }
    free(heads);
    return done;
}
