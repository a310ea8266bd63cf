/*
 * Rings: start (map through the checked virtqueue, kick fd or polling),
 * stop, notify, and the bookkeeping around each request (dirty log of what
 * the device wrote, inflight marks).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/osdep.h"
#include "vhost-user/vhost-user.h"

bool vu_vring_ready(const VuVring *vr)
{
    const VuDev *dev = vr->dev;
    return vr->started && vr->enabled && !dev->vdev.broken && dev->conn_fd >= 0 &&
           !dev->drop_pending;
}

VirtQueue *vu_vring_vq(VuDev *dev, VuVring *vr)
{
    return &dev->vdev.vq[vr->index];
}

/* Run the device on the ring, then drop a frontend whose ring broke. */
static void vring_run(VuDev *dev, VuVring *vr)
{
    if (vu_vring_ready(vr)) {
        dev->ops->process(dev, vr);
    }
    if (dev->vdev.broken && dev->conn_fd >= 0) {
        vu_dev_drop(dev, "ring %u broke the virtio rules (frontend dropped)", vr->index);
    }
}

static void kick_ready(void *opaque)
{
    VuVring *vr = opaque;
    uint64_t n;
    /* An eventfd: one read clears it; EAGAIN means someone read it already. */
    if (read(vr->kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
        return;
    }
    vring_run(vr->dev, vr);
    vu_dev_settle(vr->dev);
}

static void poll_ring(void *opaque)
{
    VuVring *vr = opaque;
    VuDev *dev = vr->dev;
    vring_run(dev, vr);
    vu_dev_settle(dev);
}

void vu_vring_notify(VuDev *dev, VuVring *vr)
{
    virtqueue_notify(vu_vring_vq(dev, vr));
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
    *fd = -1;
}

void vu_vring_reset(VuDev *dev, VuVring *vr)
{
    vu_vring_stop(dev, vr);
    close_fd(&vr->kick_fd);
    close_fd(&vr->call_fd);
    close_fd(&vr->err_fd);
    vr->polling = vr->addr_set = vr->log_used = false;
    vr->enabled = false;
    vr->base = 0;
    vr->log_guest_addr = 0;
    vr->inflight = NULL;
    vr->inflight_counter = 0;
    virtqueue_reset(vu_vring_vq(dev, vr));
}

void vu_vring_stop(VuDev *dev, VuVring *vr)
{
    VirtQueue *vq = vu_vring_vq(dev, vr);
    if (vr->started) {
        vr->base = vq->last_avail_idx;      /* resume here */
    }
    vr->started = false;
    if (vr->kick_fd >= 0) {
        Error *err = NULL;
        vu_loop_set_fd(dev->loop, vr->kick_fd, NULL, NULL, &err);
        error_free(err);
    }
    vu_loop_set_poll(dev->loop, vr, NULL, NULL);
    vq->enabled = false;
    vq->desc_hva = NULL;
    vq->avail_hva = NULL;
    vq->used_hva = NULL;
    free(vr->resubmit);
    vr->resubmit = NULL;
    vr->n_resubmit = 0;
}

static bool watch_kicks(VuDev *dev, VuVring *vr, Error **errp)
{
    if (vr->polling) {
        vu_loop_set_poll(dev->loop, vr, poll_ring, vr);
        return true;
    }
    return vu_loop_set_fd(dev->loop, vr->kick_fd, kick_ready, vr, errp);
}

bool vu_vring_start(VuDev *dev, VuVring *vr, Error **errp)
{
    VirtQueue *vq = vu_vring_vq(dev, vr);
    if (!vr->addr_set) {
        error_setg(errp, "ring %u started before its addresses were set", vr->index);
        return false;
    }
    if (!virtqueue_enable(vq)) {
        dev->vdev.broken = false;   /* reported here instead */
        error_setg(errp, "ring %u (size %u) does not lie in guest memory", vr->index, vq->num);
        return false;
    }
    vq->last_avail_idx = vq->shadow_avail_idx = vr->base;
    vq->msix_vector = vr->index;    /* the transport's notify() finds the call fd by it */
    vr->started = true;
    vu_inflight_attach(dev, vr);
    if (!watch_kicks(dev, vr, errp)) {
        vu_vring_stop(dev, vr);
        return false;
    }
    /* Requests may already wait (a reconnect, or resubmissions). */
    vring_run(dev, vr);
    return true;
}

/* ---- per request ---- */

void vu_request_begin(VuDev *dev, VuVring *vr, uint16_t head)
{
    VhostUserInflightQueue *q = vr->inflight;
    if (!q || head >= q->desc_num) {
        return;
    }
    q->desc[head].counter = vr->inflight_counter++;
    /* The counter first: a restarted back-end trusts it only when the flag is set. */
    __atomic_store_n(&q->desc[head].inflight, 1, __ATOMIC_RELEASE);
}

/* Log what the device wrote: the chain's writable buffers and the used ring. */
static void log_completion(VuDev *dev, VuVring *vr, const VirtQueueElement *elem,
                           uint32_t written)
{
    for (unsigned i = 0; written && i < elem->in_num; i++) {
        uint64_t gpa;
        if (gmem_gpa_of(&dev->mem, elem->in_sg[i].iov_base, elem->in_sg[i].iov_len, &gpa)) {
            vu_log_write(dev, gpa, elem->in_sg[i].iov_len);
        }
    }
    if (vr->log_used) {
        VirtQueue *vq = vu_vring_vq(dev, vr);
        vu_log_write(dev, vr->log_guest_addr, 6 + 8ull * vq->num);
    }
    if (dev->log_call_fd >= 0) {
        uint64_t one = 1;
        if (write(dev->log_call_fd, &one, sizeof(one)) < 0) {
            /* a full eventfd counter still signals */
        }
    }
}

void vu_request_done(VuDev *dev, VuVring *vr, const VirtQueueElement *elem,
                     uint32_t written)
{
    if (vu_logging(dev)) {
        log_completion(dev, vr, elem, written);
    }
    VhostUserInflightQueue *q = vr->inflight;
    if (q && elem->head < q->desc_num) {
        /* The used ring already holds the entry: clear the flag, then record the
         * index, so a restart between the two finds it in the used ring. */
        __atomic_store_n(&q->desc[elem->head].inflight, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&q->used_idx, vu_vring_vq(dev, vr)->used_idx, __ATOMIC_RELEASE);
    }
}
