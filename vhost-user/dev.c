/*
 * The back-end device: one frontend connection at a time and the handler of
 * every message (see vhost-user.h for the rules on hostile frontends).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/osdep.h"
#include "vhost-user/vhost-user-proto.h"
#include "vhost-user/vhost-user.h"

/* A frontend that stops in the middle of a message is dropped after this. */
#define MSG_TIMEOUT_SEC 5

typedef bool VuHandler(VuDev *dev, VuMsg *m, Error **errp);

typedef struct VuRequestInfo {
    const char *name;
    VuHandler *fn;
    uint32_t min_size, max_size;    /* payload bytes accepted */
    unsigned max_fds;
    bool has_reply;                 /* answers with its own payload */
} VuRequestInfo;

static const VuRequestInfo *request_info(uint32_t request);

static void vu_log(const VuDev *dev, const char *fmt, va_list ap)
{
    /* The daemon's own name: several daemons share this library. */
    fprintf(stderr, "%s: %s: ", program_invocation_short_name, dev->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void vu_dev_drop(VuDev *dev, const char *fmt, ...)
{
    if (dev->drop_pending || dev->conn_fd < 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vu_log(dev, fmt, ap);
    va_end(ap);
    dev->drop_pending = true;
}

static void note(const VuDev *dev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vu_log(dev, fmt, ap);
    va_end(ap);
}

/* ---- connection ---- */

static void listen_ready(void *opaque);
static void conn_readable(void *opaque);

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
    *fd = -1;
}

/* Dirty logging ends (F_LOG_ALL cleared, or the frontend left): say how much it did. */
static void log_summary(VuDev *dev, const char *why)
{
    if (vu_logging(dev)) {
        note(dev, "dirty logging off (%s): %llu pages marked in the log", why,
             (unsigned long long)dev->log_pages_marked);
    }
}

/* Forget everything about the frontend; keep serving the socket. */
static void disconnect(VuDev *dev)
{
    log_summary(dev, "frontend gone");
    if (dev->ops->drain) {
        dev->ops->drain(dev);
    }
    for (unsigned q = 0; q < dev->num_queues; q++) {
        vu_vring_reset(dev, &dev->vring[q]);
    }
    vu_mem_reset(dev);
    vu_log_reset(dev);
    vu_inflight_reset(dev);
    close_fd(&dev->backend_fd);
    dev->acked_features = dev->protocol_features = 0;
    dev->status = 0;
    dev->vdev.guest_features = 0;
    dev->vdev.broken = false;
    dev->vdev.status = 0;
    Error *err = NULL;
    vu_loop_set_fd(dev->loop, dev->conn_fd, NULL, NULL, &err);
    close_fd(&dev->conn_fd);
    dev->drop_pending = false;
    if (!vu_loop_set_fd(dev->loop, dev->listen_fd, listen_ready, dev, &err)) {
        error_report_err(err);
    }
}

void vu_dev_settle(VuDev *dev)
{
    if (dev->drop_pending) {
        disconnect(dev);
    }
}

/* One frontend at a time: stop listening until it leaves. */
static void listen_ready(void *opaque)
{
    VuDev *dev = opaque;
    int fd = accept4(dev->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    struct timeval tv = { .tv_sec = MSG_TIMEOUT_SEC };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Error *err = NULL;
    vu_loop_set_fd(dev->loop, dev->listen_fd, NULL, NULL, &err);
    dev->conn_fd = fd;
    if (!vu_loop_set_fd(dev->loop, fd, conn_readable, dev, &err)) {
        error_report_err(err);
        disconnect(dev);
    }
}

static bool reply_ack(VuDev *dev, const VuMsg *m, bool ok)
{
    uint64_t status = ok ? 0 : 1;
    Error *err = NULL;
    if (!vu_msg_send(dev->conn_fd, m->hdr.request, &status, sizeof(status), -1, &err)) {
        vu_dev_drop(dev, "%s", error_get_pretty(err));
        error_free(err);
        return false;
    }
    return true;
}

static bool acks_negotiated(const VuDev *dev, const VuMsg *m)
{
    return (m->hdr.flags & VHOST_USER_NEED_REPLY_MASK) &&
           (dev->protocol_features >> VHOST_USER_PROTOCOL_F_REPLY_ACK & 1);
}

static bool run_handler(VuDev *dev, const VuRequestInfo *ri, VuMsg *m, Error **errp)
{
    if (m->hdr.size < ri->min_size || m->hdr.size > ri->max_size) {
        error_setg(errp, "%s with a payload of %u bytes", ri->name, m->hdr.size);
        return false;
    }
    if (m->nfds > ri->max_fds) {
        error_setg(errp, "%s with %u file descriptors", ri->name, m->nfds);
        return false;
    }
    return ri->fn(dev, m, errp);
}

/* Answer one message: its own reply, an ack, or (an error without either) a drop. */
static void answer(VuDev *dev, const VuRequestInfo *ri, VuMsg *m, bool ok, Error *err)
{
    const char *name = ri ? ri->name : "request";
    if (ri && ri->has_reply && ok) {
        Error *serr = NULL;
        if (!vu_msg_send(dev->conn_fd, m->hdr.request, &m->payload, m->reply_size,
                         m->reply_fd, &serr)) {
            vu_dev_drop(dev, "%s", error_get_pretty(serr));
            error_free(serr);
        }
    } else if (ri && ri->has_reply) {
        vu_dev_drop(dev, "%s (frontend dropped)", error_get_pretty(err));
    } else if (acks_negotiated(dev, m)) {
        if (!ok) {
            note(dev, "%s refused: %s", name, error_get_pretty(err));
        }
        reply_ack(dev, m, ok);
    } else if (!ok) {
        vu_dev_drop(dev, "%s (frontend dropped)", error_get_pretty(err));
    }
    close_fd(&m->reply_fd);
}

static void conn_readable(void *opaque)
{
    VuDev *dev = opaque;
    VuMsg m;
    Error *err = NULL;
    int r = vu_msg_recv(dev->conn_fd, &m, &err);
    if (r <= 0) {
        if (r < 0) {
            vu_dev_drop(dev, "%s (frontend dropped)", error_get_pretty(err));
            error_free(err);
        } else {
            note(dev, "frontend disconnected");
            dev->drop_pending = true;
        }
        vu_msg_close_fds(&m);
        vu_dev_settle(dev);
        return;
    }
    m.reply_size = 0;
    m.reply_fd = -1;
    const VuRequestInfo *ri = request_info(m.hdr.request);
    bool ok;
    if (!ri) {
        error_setg(&err, "unknown request %u", m.hdr.request);
        ok = false;
    } else {
        ok = run_handler(dev, ri, &m, &err);
    }
    vu_msg_close_fds(&m);
    answer(dev, ri, &m, ok, err);
    error_free(err);
    vu_dev_settle(dev);
}

/* ---- transport: notifications go to the call eventfds ---- */

static void vu_notify(VirtIODevice *vdev, uint16_t vector)
{
    VuDev *dev = vdev->transport_opaque;
    if (vector >= dev->num_queues || dev->vring[vector].call_fd < 0) {
        return;
    }
    uint64_t one = 1;
    if (write(dev->vring[vector].call_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the driver is signalled anyway */
    }
}

static const VirtIOTransportOps vu_transport = { .notify = vu_notify };

bool vu_dev_init(VuDev *dev, const char *name, VuLoop *loop, int listen_fd,
                 unsigned num_queues, uint32_t config_len, const VuDevOps *ops,
                 void *opaque, Error **errp)
{
    if (num_queues == 0 || num_queues > VU_MAX_QUEUES) {
        error_setg(errp, "num-queues must be between 1 and %d", VU_MAX_QUEUES);
        return false;
    }
    memset(dev, 0, sizeof(*dev));
    dev->name = name;
    dev->loop = loop;
    dev->ops = ops;
    dev->opaque = opaque;
    dev->num_queues = num_queues;
    dev->listen_fd = listen_fd;
    dev->conn_fd = dev->log_call_fd = dev->backend_fd = -1;
    guest_memory_init_empty(&dev->mem);
    virtio_device_init(&dev->vdev, name, 0, &dev->mem, config_len, num_queues);
    dev->vdev.transport = &vu_transport;
    dev->vdev.transport_opaque = dev;
    for (unsigned q = 0; q < num_queues; q++) {
        virtio_queue_setup(&dev->vdev, q, VIRTQUEUE_MAX_SIZE, NULL);
        dev->vring[q] = (VuVring){ .dev = dev, .index = q, .kick_fd = -1, .call_fd = -1,
                                   .err_fd = -1 };
    }
    return vu_loop_set_fd(loop, listen_fd, listen_ready, dev, errp);
}

void vu_dev_cleanup(VuDev *dev)
{
    if (dev->conn_fd >= 0) {
        disconnect(dev);
    }
    Error *err = NULL;
    vu_loop_set_fd(dev->loop, dev->listen_fd, NULL, NULL, &err);
    close_fd(&dev->listen_fd);
    free(dev->vdev.config);
    free(dev->vdev.vq);
}

/* ---- features ---- */

static uint64_t offered_features(VuDev *dev)
{
    uint64_t f = dev->ops->features(dev) | 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
    if (dev->protocol_offered >> VHOST_USER_PROTOCOL_F_LOG_SHMFD & 1) {
        f |= 1ull << VHOST_F_LOG_ALL;
    }
    return f;
}

static bool reply_u64(VuMsg *m, uint64_t v)
{
    m->payload.u64 = v;
    m->reply_size = sizeof(uint64_t);
    return true;
}

static bool h_get_features(VuDev *dev, VuMsg *m, Error **errp)
{
    return reply_u64(m, offered_features(dev));
}

static bool h_set_features(VuDev *dev, VuMsg *m, Error **errp)
{
    uint64_t f = m->payload.u64, extra = f & ~offered_features(dev);
    if (extra) {
        error_setg(errp, "SET_FEATURES with features 0x%llx not offered",
                   (unsigned long long)extra);
        return false;
    }
    bool log_all = f >> VHOST_F_LOG_ALL & 1;
    if (!log_all) {
        log_summary(dev, "F_LOG_ALL cleared");
    } else if (!(dev->acked_features >> VHOST_F_LOG_ALL & 1)) {
        dev->log_pages_marked = 0;
        note(dev, "dirty logging on (F_LOG_ALL), log of %llu bytes",
             (unsigned long long)dev->log_size);
    }
    dev->acked_features = f;
    dev->vdev.guest_features = f;
    /* Without protocol features a ring is enabled as soon as it starts. */
    for (unsigned q = 0; q < dev->num_queues && !(f >> VHOST_USER_F_PROTOCOL_FEATURES & 1);
         q++) {
        dev->vring[q].enabled = true;
    }
    return true;
}

static bool h_nothing(VuDev *dev, VuMsg *m, Error **errp)
{
    return true;        /* SET_OWNER, RESET_OWNER: nothing to own in this process */
}

static bool h_get_protocol_features(VuDev *dev, VuMsg *m, Error **errp)
{
    return reply_u64(m, dev->protocol_offered);
}

static bool h_set_protocol_features(VuDev *dev, VuMsg *m, Error **errp)
{
    uint64_t extra = m->payload.u64 & ~dev->protocol_offered;
    if (extra) {
        error_setg(errp, "SET_PROTOCOL_FEATURES with 0x%llx not offered",
                   (unsigned long long)extra);
        return false;
    }
    dev->protocol_features = m->payload.u64;
    return true;
}

static bool h_get_queue_num(VuDev *dev, VuMsg *m, Error **errp)
{
    return reply_u64(m, dev->num_queues);
}

static bool h_get_max_mem_slots(VuDev *dev, VuMsg *m, Error **errp)
{
    return reply_u64(m, VU_MAX_MEM_SLOTS);
}

static bool h_set_status(VuDev *dev, VuMsg *m, Error **errp)
{
    if (m->payload.u64 > 0xff) {
        error_setg(errp, "SET_STATUS 0x%llx is not a status byte",
                   (unsigned long long)m->payload.u64);
        return false;
    }
    dev->status = m->payload.u64;
    return true;
}

static bool h_get_status(VuDev *dev, VuMsg *m, Error **errp)
{
    return reply_u64(m, dev->status);
}

/* ---- memory, log, inflight, config ---- */

/*
 * The frontend's eventfds are read and written only when ready or in
 * passing: make them non-blocking, so a frontend that empties a kick fd
 * first, or hands over a pipe nobody reads, cannot stall the daemon.
 */
static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
}

static bool h_set_mem_table(VuDev *dev, VuMsg *m, Error **errp)
{
    return vu_mem_set_table(dev, &m->payload.memory, m->hdr.size, m->fds, m->nfds, errp);
}

static bool one_fd(const VuMsg *m, const char *what, Error **errp)
{
    if (m->nfds != 1) {
        error_setg(errp, "%s with %u file descriptors instead of 1", what, m->nfds);
        return false;
    }
    return true;
}

static bool h_add_mem_reg(VuDev *dev, VuMsg *m, Error **errp)
{
    return one_fd(m, "ADD_MEM_REG", errp) &&
           vu_mem_add_region(dev, &m->payload.memreg, m->fds[0], errp);
}

static bool h_rem_mem_reg(VuDev *dev, VuMsg *m, Error **errp)
{
    return vu_mem_rem_region(dev, &m->payload.memreg, errp);
}

static bool h_set_log_base(VuDev *dev, VuMsg *m, Error **errp)
{
    if (!one_fd(m, "SET_LOG_BASE", errp) ||
        !vu_log_set_base(dev, &m->payload.log, m->fds[0], errp)) {
        return false;
    }
    return reply_u64(m, 0);     /* the frontend waits for this before migrating */
}

static bool h_set_log_fd(VuDev *dev, VuMsg *m, Error **errp)
{
    if (!one_fd(m, "SET_LOG_FD", errp)) {
        return false;
    }
    close_fd(&dev->log_call_fd);
    dev->log_call_fd = m->fds[0];
    m->fds[0] = -1;
    set_nonblocking(dev->log_call_fd);
    return true;
}

static bool h_set_backend_req_fd(VuDev *dev, VuMsg *m, Error **errp)
{
    if (!one_fd(m, "SET_BACKEND_REQ_FD", errp)) {
        return false;
    }
    close_fd(&dev->backend_fd);
    dev->backend_fd = m->fds[0];
    m->fds[0] = -1;
    return true;
}

static bool h_get_inflight_fd(VuDev *dev, VuMsg *m, Error **errp)
{
    if (!vu_inflight_get(dev, &m->payload.inflight, &m->reply_fd, errp)) {
        return false;
    }
    m->reply_size = sizeof(VhostUserInflight);
    return true;
}

static bool h_set_inflight_fd(VuDev *dev, VuMsg *m, Error **errp)
{
    return one_fd(m, "SET_INFLIGHT_FD", errp) &&
           vu_inflight_set(dev, &m->payload.inflight, m->fds[0], errp);
}

static bool config_range(const VuDev *dev, const VuMsg *m, Error **errp)
{
    const VhostUserConfig *c = &m->payload.config;
    if (c->size > VHOST_USER_MAX_CONFIG_SIZE ||
        m->hdr.size != VHOST_USER_CONFIG_HDR_SIZE + c->size ||
        !range_within(c->offset, c->size, dev->vdev.config_len)) {
        error_setg(errp, "config access of %u bytes at %u (config space: %u bytes, "
                   "payload %u)", c->size, c->offset, dev->vdev.config_len, m->hdr.size);
        return false;
    }
    return true;
}

/* GET_CONFIG answers errors with an empty payload, which the frontend reads as one. */
static bool h_get_config(VuDev *dev, VuMsg *m, Error **errp)
{
    VhostUserConfig *c = &m->payload.config;
    Error *err = NULL;
    if (!config_range(dev, m, &err)) {
        note(dev, "GET_CONFIG refused: %s", error_get_pretty(err));
        error_free(err);
        m->reply_size = 0;
        return true;
    }
    memcpy(c->region, dev->vdev.config + c->offset, c->size);
    m->reply_size = VHOST_USER_CONFIG_HDR_SIZE + c->size;
    return true;
}

static bool h_set_config(VuDev *dev, VuMsg *m, Error **errp)
{
    const VhostUserConfig *c = &m->payload.config;
    if (!config_range(dev, m, errp)) {
        return false;
    }
    if (dev->ops->config_write) {
        dev->ops->config_write(dev, c->offset, c->region, c->size);
    }
    return true;
}

/* ---- rings ---- */

static VuVring *ring_of(VuDev *dev, uint64_t index, const char *what, Error **errp)
{
    if (index >= dev->num_queues) {
        error_setg(errp, "%s for ring %llu (the device has %u)", what,
                   (unsigned long long)index, dev->num_queues);
        return NULL;
    }
    return &dev->vring[index];
}

static bool h_set_vring_num(VuDev *dev, VuMsg *m, Error **errp)
{
    VuVring *vr = ring_of(dev, m->payload.state.index, "SET_VRING_NUM", errp);
    uint32_t num = m->payload.state.num;
    if (!vr) {
        return false;
    }
    if (vr->started && num != vu_vring_vq(dev, vr)->num) {
        /* The mapped ring areas were checked for the old size. */
        error_setg(errp, "ring %u: size changed while the ring runs", vr->index);
        return false;
    }
    if (num == 0 || num > VIRTQUEUE_MAX_SIZE || (num & (num - 1))) {
        error_setg(errp, "ring %u: size %u is not a power of 2 up to %u", vr->index, num,
                   VIRTQUEUE_MAX_SIZE);
        return false;
    }
    vu_vring_vq(dev, vr)->num = num;
    return true;
}

static bool h_set_vring_addr(VuDev *dev, VuMsg *m, Error **errp)
{
    const VhostUserVringAddr *a = &m->payload.addr;
    VuVring *vr = ring_of(dev, a->index, "SET_VRING_ADDR", errp);
    VirtQueue *vq = vr ? vu_vring_vq(dev, vr) : NULL;
    uint64_t desc, avail, used;
    if (!vr) {
        return false;
    }
    if (!vu_uva_to_gpa(dev, a->desc_user_addr, &desc) ||
        !vu_uva_to_gpa(dev, a->avail_user_addr, &avail) ||
        !vu_uva_to_gpa(dev, a->used_user_addr, &used)) {
        error_setg(errp, "ring %u: ring addresses outside the memory table", vr->index);
        return false;
    }
    vr->log_used = a->flags & VHOST_VRING_F_LOG;
    vr->log_guest_addr = a->log_guest_addr;
    bool was_started = vr->started;
    /*
     * Logging is switched on and off by re-sending the addresses of a running
     * ring: the ring keeps running, and its requests in flight stay in flight
     * (restarting it would take them for a restart's leftovers and submit
     * them twice).
     */
    if (was_started && vq->desc == desc && vq->avail == avail && vq->used == used) {
        return true;
    }
    if (was_started && dev->ops->drain) {
        dev->ops->drain(dev);       /* the ring moves: nothing may still point into it */
    }
    vu_vring_stop(dev, vr);
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    vr->addr_set = true;
    return !was_started || vu_vring_start(dev, vr, errp);
}

static bool h_set_vring_base(VuDev *dev, VuMsg *m, Error **errp)
{
    VuVring *vr = ring_of(dev, m->payload.state.index, "SET_VRING_BASE", errp);
    if (!vr) {
        return false;
    }
    if (m->payload.state.num > UINT16_MAX) {
        error_setg(errp, "ring %u: base %u is not a 16-bit index", vr->index,
                   m->payload.state.num);
        return false;
    }
    vr->base = m->payload.state.num;
    return true;
}

/* Stop the ring after its requests finished and report where it stopped. */
static bool h_get_vring_base(VuDev *dev, VuMsg *m, Error **errp)
{
    VuVring *vr = ring_of(dev, m->payload.state.index, "GET_VRING_BASE", errp);
    if (!vr) {
        return false;
    }
    if (dev->ops->drain) {
        dev->ops->drain(dev);
    }
    vu_vring_stop(dev, vr);
    Error *err = NULL;
    vu_loop_set_fd(dev->loop, vr->kick_fd, NULL, NULL, &err);
    close_fd(&vr->kick_fd);
    vr->polling = false;
    m->payload.state.num = vr->base;
    m->reply_size = sizeof(VhostUserVringState);
    return true;
}

/* The u64 of SET_VRING_KICK/CALL/ERR: index, and whether an fd came with it. */
static VuVring *ring_fd(VuDev *dev, VuMsg *m, const char *what, int *fd, Error **errp)
{
    uint64_t v = m->payload.u64;
    bool nofd = v & VHOST_USER_VRING_NOFD_MASK;
    if (v & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)) {
        error_setg(errp, "%s with unknown bits 0x%llx", what, (unsigned long long)v);
        return NULL;
    }
    VuVring *vr = ring_of(dev, v & VHOST_USER_VRING_IDX_MASK, what, errp);
    if (vr && m->nfds != (nofd ? 0u : 1u)) {
        error_setg(errp, "%s for ring %u with %u file descriptors (flag says %s)", what,
                   vr->index, m->nfds, nofd ? "none" : "one");
        return NULL;
    }
    *fd = nofd ? -1 : m->fds[0];
    if (vr && !nofd) {
        m->fds[0] = -1;         /* ours now */
        set_nonblocking(*fd);
    }
    return vr;
}

static bool h_set_vring_kick(VuDev *dev, VuMsg *m, Error **errp)
{
    int fd;
    VuVring *vr = ring_fd(dev, m, "SET_VRING_KICK", &fd, errp);
    if (!vr) {
        return false;
    }
    vu_vring_stop(dev, vr);
    close_fd(&vr->kick_fd);
    vr->kick_fd = fd;
    vr->polling = fd < 0;       /* no kick fd: the frontend expects us to poll */
    return vu_vring_start(dev, vr, errp);
}

static bool h_set_vring_call(VuDev *dev, VuMsg *m, Error **errp)
{
    int fd;
    VuVring *vr = ring_fd(dev, m, "SET_VRING_CALL", &fd, errp);
    if (vr) {
        close_fd(&vr->call_fd);
        vr->call_fd = fd;
        /*
         * A running ring may have used entries whose interrupt went nowhere
         * (no call fd yet: a migration destination starts its rings before
         * QEMU hands over the guest's notifiers, and frames waiting in a tap
         * are delivered at once); with EVENT_IDX the device then believes it
         * signalled and never signals again. One interrupt too many is
         * harmless: the driver looks at the used ring and finds nothing new.
         */
        uint64_t one = 1;
        if (fd >= 0 && vr->started && write(fd, &one, sizeof(one)) < 0) {
            /* a saturated eventfd is signalled anyway */
        }
    }
    return vr != NULL;
}

static bool h_set_vring_err(VuDev *dev, VuMsg *m, Error **errp)
{
    int fd;
    VuVring *vr = ring_fd(dev, m, "SET_VRING_ERR", &fd, errp);
    if (vr) {
        close_fd(&vr->err_fd);
        vr->err_fd = fd;
    }
    return vr != NULL;
}

static bool h_set_vring_enable(VuDev *dev, VuMsg *m, Error **errp)
{
    VuVring *vr = ring_of(dev, m->payload.state.index, "SET_VRING_ENABLE", errp);
    if (!vr) {
        return false;
    }
    if (m->payload.state.num > 1) {
        error_setg(errp, "SET_VRING_ENABLE %u for ring %u", m->payload.state.num, vr->index);
        return false;
    }
    vr->enabled = m->payload.state.num;
    if (vr->enabled && vr->started && vr->kick_fd >= 0) {
        uint64_t one = 1;
        /* Look at the ring now: requests may have come while it was disabled. */
        if (write(vr->kick_fd, &one, sizeof(one)) < 0) {
            /* a saturated eventfd is readable anyway */
        }
    }
    return true;
}

/* The guest moved (migration): a net device makes the switches learn where. */
static bool h_send_rarp(VuDev *dev, VuMsg *m, Error **errp)
{
    if (!dev->ops->send_rarp ||
        !(dev->protocol_features >> VHOST_USER_PROTOCOL_F_RARP & 1)) {
        error_setg(errp, "SEND_RARP without the RARP protocol feature");
        return false;
    }
    uint8_t mac[6];
    memcpy(mac, &m->payload.u64, sizeof(mac));  /* the MAC is the payload's first bytes */
    dev->ops->send_rarp(dev, mac);
    return true;
}

/* ---- the table ---- */

#define U64     sizeof(uint64_t), sizeof(uint64_t)
#define STATE   sizeof(VhostUserVringState), sizeof(VhostUserVringState)
#define NONE    0, 0

static const VuRequestInfo requests[VHOST_USER_REQUEST_MAX] = {
    [VHOST_USER_GET_FEATURES] = { "GET_FEATURES", h_get_features, NONE, 0, true },
    [VHOST_USER_SET_FEATURES] = { "SET_FEATURES", h_set_features, U64, 0, false },
    /* No payload in the spec, but some frontends (vireo's among them) send a u64 of 0. */
    [VHOST_USER_SET_OWNER] = { "SET_OWNER", h_nothing, 0, sizeof(uint64_t), 0, false },
    [VHOST_USER_RESET_OWNER] = { "RESET_OWNER", h_nothing, 0, sizeof(uint64_t), 0, false },
    [VHOST_USER_SET_MEM_TABLE] = { "SET_MEM_TABLE", h_set_mem_table, 8,
                                   sizeof(VhostUserMemory), VHOST_USER_MAX_FDS, false },
    [VHOST_USER_SET_LOG_BASE] = { "SET_LOG_BASE", h_set_log_base,
                                  sizeof(VhostUserLog), sizeof(VhostUserLog), 1, true },
    [VHOST_USER_SET_LOG_FD] = { "SET_LOG_FD", h_set_log_fd, 0, sizeof(uint64_t), 1, false },
    [VHOST_USER_SET_VRING_NUM] = { "SET_VRING_NUM", h_set_vring_num, STATE, 0, false },
    [VHOST_USER_SET_VRING_ADDR] = { "SET_VRING_ADDR", h_set_vring_addr,
                                    sizeof(VhostUserVringAddr), sizeof(VhostUserVringAddr),
                                    0, false },
    [VHOST_USER_SET_VRING_BASE] = { "SET_VRING_BASE", h_set_vring_base, STATE, 0, false },
    [VHOST_USER_GET_VRING_BASE] = { "GET_VRING_BASE", h_get_vring_base, STATE, 0, true },
    [VHOST_USER_SET_VRING_KICK] = { "SET_VRING_KICK", h_set_vring_kick, U64, 1, false },
    [VHOST_USER_SET_VRING_CALL] = { "SET_VRING_CALL", h_set_vring_call, U64, 1, false },
    [VHOST_USER_SET_VRING_ERR] = { "SET_VRING_ERR", h_set_vring_err, U64, 1, false },
    [VHOST_USER_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", h_get_protocol_features,
                                           NONE, 0, true },
    [VHOST_USER_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", h_set_protocol_features,
                                           U64, 0, false },
    [VHOST_USER_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", h_get_queue_num, NONE, 0, true },
    [VHOST_USER_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", h_set_vring_enable, STATE, 0,
                                      false },
    [VHOST_USER_SET_BACKEND_REQ_FD] = { "SET_BACKEND_REQ_FD", h_set_backend_req_fd, 0,
                                        sizeof(uint64_t), 1, false },
    [VHOST_USER_GET_CONFIG] = { "GET_CONFIG", h_get_config, VHOST_USER_CONFIG_HDR_SIZE,
                                sizeof(VhostUserConfig), 0, true },
    [VHOST_USER_SET_CONFIG] = { "SET_CONFIG", h_set_config, VHOST_USER_CONFIG_HDR_SIZE,
                                sizeof(VhostUserConfig), 0, false },
    [VHOST_USER_GET_INFLIGHT_FD] = { "GET_INFLIGHT_FD", h_get_inflight_fd,
                                     VHOST_USER_INFLIGHT_MIN_SIZE, sizeof(VhostUserInflight),
                                     0, true },
    [VHOST_USER_SET_INFLIGHT_FD] = { "SET_INFLIGHT_FD", h_set_inflight_fd,
                                     VHOST_USER_INFLIGHT_MIN_SIZE, sizeof(VhostUserInflight),
                                     1, false },
    [VHOST_USER_GET_MAX_MEM_SLOTS] = { "GET_MAX_MEM_SLOTS", h_get_max_mem_slots, NONE, 0,
                                       true },
    [VHOST_USER_ADD_MEM_REG] = { "ADD_MEM_REG", h_add_mem_reg, sizeof(VhostUserMemRegMsg),
                                 sizeof(VhostUserMemRegMsg), 1, false },
    /* QEMU sends the region's fd along; it is not needed. */
    [VHOST_USER_REM_MEM_REG] = { "REM_MEM_REG", h_rem_mem_reg, sizeof(VhostUserMemRegMsg),
                                 sizeof(VhostUserMemRegMsg), 1, false },
    [VHOST_USER_SEND_RARP] = { "SEND_RARP", h_send_rarp, U64, 0, false },
    [VHOST_USER_SET_STATUS] = { "SET_STATUS", h_set_status, U64, 0, false },
    [VHOST_USER_GET_STATUS] = { "GET_STATUS", h_get_status, NONE, 0, true },
};

static const VuRequestInfo *request_info(uint32_t request)
{
    if (request >= VHOST_USER_REQUEST_MAX || !requests[request].fn) {
        return NULL;
    }
    return &requests[request];
}
