/*
 * The vhost-user frontend. See virtio/vhost-user.h.
 *
 * Messages go out with sendmsg (descriptors as SCM_RIGHTS) and replies are
 * read with recvmsg under a poll deadline, so a silent back-end costs at
 * most VHOST_USER_REPLY_TIMEOUT_MS once: the first failure disconnects it
 * and later requests fail at once.
 */
#include "virtio/vhost-user.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "core/runstate.h"
#include "util/log.h"
#include "util/osdep.h"
#include "vhost-user/vhost-user-msg.h"
#include "virtio/vhost-user-chan.h"
#include "virtio/vhost-user-wire.h"

/* The protocol features vireo implements as a frontend. LOG_SHMFD and RARP
 * belong to migration, which vireo has not yet: they are never acked. The
 * back-end channel (BACKEND_REQ) serves configuration changes; host
 * notifiers and IOTLB messages on it are refused (virtio/vhost-user-chan.h). */
#define FRONTEND_PROTOCOL_FEATURES \
    (1ULL << VHOST_USER_PROTOCOL_F_MQ | 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK | \
     1ULL << VHOST_USER_PROTOCOL_F_CONFIG | 1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD | \
     1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS | 1ULL << VHOST_USER_PROTOCOL_F_STATUS | \
     1ULL << VHOST_USER_PROTOCOL_F_BACKEND_REQ)

/* One ring's eventfds; "own" ones are vireo's relays, the others the transport's. */
typedef struct VhostUserRing {
    VhostUserDev *dev;
    unsigned q;                 /* the device's queue index */
    int kick, call, err;        /* -1 when not set up */
    bool own_kick, own_call;
    bool active;                /* handed to the back-end (the driver enabled it) */
    bool enabled;               /* as last told with SET_VRING_ENABLE */
} VhostUserRing;

struct VhostUserDev {
    Chardev *chr;
    VirtIODevice *vdev;
    VhostUserSetup setup;
    int sock;                   /* -1 while disconnected */
    VhostUserChan *chan;        /* the back-end's requests (BACKEND_REQ), or NULL */
    uint64_t features;          /* GET_FEATURES */
    uint64_t protocol;          /* acked protocol features */
    uint64_t max_queues;        /* GET_QUEUE_NUM, or 1 */
    uint64_t max_mem_slots;     /* GET_MAX_MEM_SLOTS (CONFIGURE_MEM_SLOTS) */
    bool regions_added;         /* this connection has every region (ADD_MEM_REG) */
    bool started;               /* rings are the back-end's */
    bool waiting;               /* reconnect=N: the back-end is gone, rings held */
    VhostUserRing *rings;       /* nvqs */
    int inflight_fd;            /* GET_INFLIGHT_FD's area, kept across restarts */
    VhostUserInflight inflight;
    Timer *reconnect_timer;
    bool paused;                /* stopped with the VM, to restart on cont */
    VhostDevInfo info;          /* for x-query-virtio-status */
    VhostUserDev *next;         /* every live frontend, for VM stop/cont */
};

static VhostUserDev *all_devs;

static bool has_protocol(const VhostUserDev *dev, unsigned bit)
{
    return dev->protocol >> bit & 1;
}

/* The back-end broke the protocol or left: see backend_lost. */
static void backend_lost(VhostUserDev *dev, const char *why);

/*
 * Send one request. Requests that answer (GET_*) fill *reply; the others
 * ask for an ack when REPLY_ACK is negotiated, and a non-zero ack fails.
 */
static bool request(VhostUserDev *dev, uint32_t req, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds, VhostUserMsg *reply, size_t reply_size,
                    Error **errp)
{
    if (dev->sock < 0) {
        error_setg(errp, "%s: back-end not connected", dev->setup.name);
        return false;
    }
    VhostUserMsg m = { .hdr = { .request = req, .flags = VHOST_USER_VERSION, .size = size } };
    bool want_ack = !reply && has_protocol(dev, VHOST_USER_PROTOCOL_F_REPLY_ACK);
    if (want_ack) {
        m.hdr.flags |= VHOST_USER_NEED_REPLY_MASK;
    }
    if (size) {
        memcpy(&m.payload, payload, size);
    }
    VhostUserMsg ack;
    unsigned nrecv = 0;
    Error *err = NULL;
    bool ok = vhost_user_send(dev->sock, &m, sizeof(m.hdr) + size, fds, nfds, &err);
    if (ok && reply) {
        ok = vhost_user_recv_reply(dev->sock, req, reply, reply_size, NULL, 0, &nrecv, &err);
    } else if (ok && want_ack) {
        ok = vhost_user_recv_reply(dev->sock, req, &ack, sizeof(uint64_t), NULL, 0, &nrecv, &err);
        if (ok && ack.payload.u64 != 0) {
            error_setg(&err, "refused (ack %llu)", (unsigned long long)ack.payload.u64);
            ok = false;
        }
    }
    if (!ok) {
        /* Callers that do not want the error (errp NULL) still break the device. */
        Error *out = NULL;
        error_setg(&out, "%s: %s: %s", dev->setup.name, vhost_user_request_name(req),
                   error_get_pretty(err));
        /* A refusal leaves the connection sane; anything else does not. */
        if (!strstr(error_get_pretty(err), "refused (ack")) {
            backend_lost(dev, error_get_pretty(out));
        }
        error_free(err);
        error_propagate(errp, out);
    }
    return ok;
}

static bool set_u64(VhostUserDev *dev, uint32_t req, uint64_t v, Error **errp)
{
    return request(dev, req, &v, sizeof(v), NULL, 0, NULL, 0, errp);
}

static bool get_u64(VhostUserDev *dev, uint32_t req, uint64_t *v, Error **errp)
{
    VhostUserMsg r;
    if (!request(dev, req, NULL, 0, NULL, 0, &r, sizeof(uint64_t), errp)) {
        return false;
    }
    *v = r.payload.u64;
    return true;
}

static bool set_state(VhostUserDev *dev, uint32_t req, unsigned index, unsigned num,
                      Error **errp)
{
    VhostUserVringState s = { .index = index, .num = num };
    return request(dev, req, &s, sizeof(s), NULL, 0, NULL, 0, errp);
}

/* SET_VRING_KICK/CALL/ERR: the fd, or the no-fd flag (the back-end polls). */
static bool set_ring_fd(VhostUserDev *dev, uint32_t req, unsigned index, int fd, Error **errp)
{
    uint64_t v = (index & VHOST_USER_VRING_IDX_MASK) | (fd < 0 ? VHOST_USER_VRING_NOFD_MASK : 0);
    return request(dev, req, &v, sizeof(v), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1, NULL, 0,
                   errp);
}

/* ---- connection ---- */

static void socket_readable(void *opaque);

static void watch_socket(VhostUserDev *dev, bool on)
{
    if (dev->sock >= 0) {
        main_loop_set_fd_handler(dev->sock, on ? socket_readable : NULL, NULL, dev);
    }
}

static void disconnect(VhostUserDev *dev)
{
    vhost_user_chan_free(dev->chan);
    dev->chan = NULL;
    if (dev->sock >= 0) {
        watch_socket(dev, false);
        close(dev->sock);
        dev->sock = -1;
    }
    dev->regions_added = false;
}

/*
 * Between requests the back-end has nothing to say on this socket (its own
 * requests would come on the back-end channel): data means a broken peer,
 * end of file means it went away.
 */
static void socket_readable(void *opaque)
{
    VhostUserDev *dev = opaque;
    uint8_t byte;
    ssize_t n = recv(dev->sock, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    backend_lost(dev, n == 0 ? "the back-end closed the connection"
                             : "unexpected message from the back-end");
}

/* ---- the back-end channel ---- */

static void chan_config_change(void *opaque)
{
    VhostUserDev *dev = opaque;
    if (dev->sock >= 0) {
        dev->setup.config_change(dev->vdev);
    }
}

static void chan_lost(void *opaque, const char *why)
{
    backend_lost(opaque, why);
}

static const VhostUserChanOps chan_ops = {
    .config_change = chan_config_change, .lost = chan_lost,
};
static const VhostUserChanOps chan_ops_no_config = { .lost = chan_lost };

/* SET_BACKEND_REQ_FD: a socket pair, the far end to the back-end (after SET_OWNER). */
static bool open_backend_channel(VhostUserDev *dev, Error **errp)
{
    int far = -1;
    dev->chan = vhost_user_chan_new(dev->setup.name,
                                    dev->setup.config_change ? &chan_ops : &chan_ops_no_config,
                                    dev, &far, errp);
    if (!dev->chan) {
        return false;
    }
    bool ok = request(dev, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &far, 1, NULL, 0, errp);
    close(far);
    return ok;
}

/* GET_FEATURES, protocol features, queue count, owner: what every connection starts with. */
static bool handshake(VhostUserDev *dev, Error **errp)
{
    dev->protocol = 0;
    if (!get_u64(dev, VHOST_USER_GET_FEATURES, &dev->features, errp)) {
        return false;
    }
    dev->max_queues = 1;
    if (dev->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)) {
        uint64_t offered;
        if (!get_u64(dev, VHOST_USER_GET_PROTOCOL_FEATURES, &offered, errp)) {
            return false;
        }
        uint64_t acked = offered & FRONTEND_PROTOCOL_FEATURES;
        if (!dev->setup.want_config) {
            acked &= ~(1ULL << VHOST_USER_PROTOCOL_F_CONFIG);
        }
        if (!dev->setup.want_inflight) {
            acked &= ~(1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
        }
        if (!set_u64(dev, VHOST_USER_SET_PROTOCOL_FEATURES, acked, errp)) {
            return false;
        }
        dev->protocol = acked;      /* from here on acks may be asked for */
        if (has_protocol(dev, VHOST_USER_PROTOCOL_F_MQ) &&
            !get_u64(dev, VHOST_USER_GET_QUEUE_NUM, &dev->max_queues, errp)) {
            return false;
        }
    }
    if (!set_u64(dev, VHOST_USER_SET_OWNER, 0, errp)) {
        return false;
    }
    if (has_protocol(dev, VHOST_USER_PROTOCOL_F_BACKEND_REQ) &&
        !open_backend_channel(dev, errp)) {
        return false;
    }
    if (has_protocol(dev, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) &&
        !get_u64(dev, VHOST_USER_GET_MAX_MEM_SLOTS, &dev->max_mem_slots, errp)) {
        return false;
    }
    dev->info.features = dev->features;
    dev->info.protocol_features = dev->protocol;
    dev->info.max_queues = dev->max_queues;
    return true;
}

static bool check_needs(VhostUserDev *dev, Error **errp)
{
    const char *name = dev->setup.name;
    unsigned needed = dev->setup.units;
    if (dev->setup.want_config && !has_protocol(dev, VHOST_USER_PROTOCOL_F_CONFIG)) {
        error_setg(errp, "%s: the back-end does not offer the CONFIG protocol feature, "
                   "needed for the device's configuration space", name);
        return false;
    }
    if (!(dev->features & (1ULL << VIRTIO_F_VERSION_1))) {
        error_setg(errp, "%s: the back-end does not offer VIRTIO_F_VERSION_1", name);
        return false;
    }
    if (dev->max_queues < needed) {     /* 1 without MQ */
        error_setg(errp, "%s: the back-end offers %llu queues, %u requested", name,
                   (unsigned long long)dev->max_queues, needed);
        return false;
    }
    return true;
}

/*
 * A stopped VM (stop, or paused for migration later) must not have its
 * rings move: the back-ends give them back with GET_VRING_BASE and get
 * them again, from the same positions, on cont.
 */
static void vm_stopped(void *opaque)
{
    for (VhostUserDev *dev = all_devs; dev; dev = dev->next) {
        dev->paused = dev->started;
        vhost_user_stop(dev);
    }
}

static void vm_started(void *opaque)
{
    for (VhostUserDev *dev = all_devs; dev; dev = dev->next) {
        if (dev->paused && virtio_driver_ok(dev->vdev) && !dev->vdev->broken) {
            vhost_user_start(dev);
        }
        dev->paused = false;
    }
}

static void track(VhostUserDev *dev)
{
    static bool registered;
    if (!registered) {
        register_vm_stop_handler(vm_stopped, NULL);
        register_vm_start_handler(vm_started, NULL);
        registered = true;
    }
    dev->next = all_devs;
    all_devs = dev;
}

static void untrack(VhostUserDev *dev)
{
    for (VhostUserDev **p = &all_devs; *p; p = &(*p)->next) {
        if (*p == dev) {
            *p = dev->next;
            return;
        }
    }
}

VhostUserDev *vhost_user_connect(Chardev *chr, VirtIODevice *vdev, const VhostUserSetup *setup,
                                 Error **errp)
{
    if (!vdev->mem || vdev->mem->fd < 0) {
        error_setg(errp, "%s: guest RAM is private, but a vhost-user back-end must map it: "
                   "use a shared memory backend (-object memory-backend-memfd,id=mem0,"
                   "size=SIZE,share=on -machine memory-backend=mem0)", setup->name);
        return NULL;
    }
    int sock = chardev_socket_take_fd(chr, errp);
    if (sock < 0) {
        error_prepend(errp, "%s: ", setup->name);
        return NULL;
    }
    VhostUserDev *dev = xzalloc(sizeof(*dev));
    dev->chr = chr;
    dev->vdev = vdev;
    dev->setup = *setup;
    dev->sock = sock;
    dev->inflight_fd = -1;
    dev->rings = xzalloc(setup->nvqs * sizeof(*dev->rings));
    for (unsigned i = 0; i < setup->nvqs; i++) {
        dev->rings[i] = (VhostUserRing){ .dev = dev, .q = setup->vq_index + i,
                                         .kick = -1, .call = -1, .err = -1 };
    }
    dev->info = (VhostDevInfo){ .nvqs = setup->info_nvqs ? setup->info_nvqs : setup->nvqs,
                                .vq_index = setup->vq_index };
    dev->info.vq = xzalloc(setup->nvqs * sizeof(*dev->info.vq));
    if (!handshake(dev, errp) || !check_needs(dev, errp)) {
        vhost_user_free(dev);
        return NULL;
    }
    watch_socket(dev, true);
    track(dev);
    return dev;
}

uint64_t vhost_user_max_queues(const VhostUserDev *dev)
{
    return dev->max_queues;
}

uint64_t vhost_user_mask_features(const VhostUserDev *dev, uint64_t host_features)
{
    for (const unsigned *b = dev->setup.feature_bits; b && *b != UINT32_MAX; b++) {
        if (!(dev->features >> *b & 1)) {
            host_features &= ~(1ULL << *b);
        }
    }
    return host_features;
}

/* ---- configuration space ---- */

bool vhost_user_get_config(VhostUserDev *dev, uint8_t *buf, uint32_t len, Error **errp)
{
    if (len > VHOST_USER_MAX_CONFIG_SIZE) {
        error_setg(errp, "%s: config space of %u bytes is too large", dev->setup.name, len);
        return false;
    }
    VhostUserConfig c = { .offset = 0, .size = len };
    VhostUserMsg r;
    uint32_t size = VHOST_USER_CONFIG_HDR_SIZE + len;
    if (!request(dev, VHOST_USER_GET_CONFIG, &c, size, NULL, 0, &r, size, errp)) {
        return false;
    }
    if (r.payload.config.offset != 0 || r.payload.config.size != len) {
        error_setg(errp, "%s: GET_CONFIG answered bytes %u+%u, not 0+%u", dev->setup.name,
                   r.payload.config.offset, r.payload.config.size, len);
        backend_lost(dev, error_get_pretty(*errp));
        return false;
    }
    memcpy(buf, r.payload.config.region, len);
    return true;
}

bool vhost_user_set_config(VhostUserDev *dev, const uint8_t *data, uint32_t offset,
                           uint32_t len, Error **errp)
{
    if (len > VHOST_USER_MAX_CONFIG_SIZE) {
        error_setg(errp, "%s: config write too large", dev->setup.name);
        return false;
    }
    VhostUserConfig c = { .offset = offset, .size = len,
                          .flags = VHOST_SET_CONFIG_TYPE_FRONTEND };
    memcpy(c.region, data, len);
    return request(dev, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + len, NULL, 0,
                   NULL, 0, errp);
}

/* ---- guest memory ---- */

static VhostUserMemoryRegion region_of(const GuestRegion *g)
{
    return (VhostUserMemoryRegion){
        .guest_phys_addr = g->gpa, .memory_size = g->size,
        .userspace_addr = (uint64_t)(uintptr_t)g->hva, .mmap_offset = g->fd_offset,
    };
}

/* All of guest RAM: one SET_MEM_TABLE, or ADD_MEM_REG per region (mem slots). */
static bool send_memory(VhostUserDev *dev, Error **errp)
{
    const GuestMemory *mem = dev->vdev->mem;
    int n = mem->nr_regions;
    if (has_protocol(dev, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
        if ((uint64_t)n > dev->max_mem_slots) {
            error_setg(errp, "%s: guest RAM needs %d memory slots, the back-end has %llu",
                       dev->setup.name, n, (unsigned long long)dev->max_mem_slots);
            return false;
        }
        /* RAM never changes: a connection is told about each region once. */
        for (int i = 0; !dev->regions_added && i < n; i++) {
            VhostUserMemRegMsg m = { .region = region_of(&mem->regions[i]) };
            if (!request(dev, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &mem->fd, 1, NULL, 0,
                         errp)) {
                return false;
            }
        }
        dev->regions_added = true;
    } else {
        if (n > VHOST_USER_MAX_MEM_REGIONS) {
            error_setg(errp, "%s: guest RAM has %d regions, SET_MEM_TABLE takes %d",
                       dev->setup.name, n, VHOST_USER_MAX_MEM_REGIONS);
            return false;
        }
        VhostUserMemory table = { .nregions = (uint32_t)n };
        int fds[VHOST_USER_MAX_MEM_REGIONS];
        for (int i = 0; i < n; i++) {
            table.regions[i] = region_of(&mem->regions[i]);
            fds[i] = mem->fd;
        }
        uint32_t size = offsetof(VhostUserMemory, regions) + n * sizeof(VhostUserMemoryRegion);
        if (!request(dev, VHOST_USER_SET_MEM_TABLE, &table, size, fds, n, NULL, 0, errp)) {
            return false;
        }
    }
    dev->info.n_mem_sections = dev->info.n_tmp_sections = n;
    return true;
}

/* ---- inflight area ---- */

/*
 * GET_INFLIGHT_FD once (the back-end sizes and owns the layout), then
 * SET_INFLIGHT_FD on every start, so a restarted back-end finds the
 * requests it had taken and not finished.
 */
static bool send_inflight(VhostUserDev *dev, Error **errp)
{
    if (!has_protocol(dev, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)) {
        return true;
    }
    if (dev->inflight_fd < 0) {
        VhostUserInflight want = {
            .num_queues = (uint16_t)dev->setup.nvqs,
            .queue_size = (uint16_t)dev->vdev->vq[dev->setup.vq_index].num_default,
        };
        VhostUserMsg r;
        unsigned nfds = 0;
        int fd = -1;
        VhostUserMsg m = { .hdr = { VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION,
                                    sizeof(want) } };
        m.payload.inflight = want;
        Error *err = NULL;
        if (!vhost_user_send(dev->sock, &m, sizeof(m.hdr) + sizeof(want), NULL, 0, &err) ||
            !vhost_user_recv_reply(dev->sock, VHOST_USER_GET_INFLIGHT_FD, &r, sizeof(want), &fd, 1, &nfds,
                        &err) || (nfds != 1 && (error_setg(&err, "no descriptor"), true))) {
            error_setg(errp, "%s: GET_INFLIGHT_FD: %s", dev->setup.name,
                       error_get_pretty(err));
            error_free(err);
            backend_lost(dev, error_get_pretty(*errp));
            return false;
        }
        dev->inflight_fd = fd;
        dev->inflight = r.payload.inflight;
        dev->inflight.num_queues = want.num_queues;
        dev->inflight.queue_size = want.queue_size;
    }
    return request(dev, VHOST_USER_SET_INFLIGHT_FD, &dev->inflight, sizeof(dev->inflight),
                   &dev->inflight_fd, 1, NULL, 0, errp);
}

static void drop_inflight(VhostUserDev *dev)
{
    if (dev->inflight_fd >= 0) {
        close(dev->inflight_fd);
        dev->inflight_fd = -1;
    }
}

/* ---- rings ---- */

/* The back-end signalled a ring: interrupt the driver through the transport. */
static void call_relay(void *opaque)
{
    VhostUserRing *r = opaque;
    VirtIODevice *vdev = r->dev->vdev;
    eventfd_t n;
    if (eventfd_read(r->call, &n) == 0 && vdev->transport) {
        vdev->isr |= VIRTIO_ISR_QUEUE;
        vdev->transport->notify(vdev, vdev->vq[r->q].msix_vector);
    }
}

static void err_signalled(void *opaque)
{
    VhostUserRing *r = opaque;
    eventfd_t n;
    if (eventfd_read(r->err, &n) == 0) {
        LOG_GUEST_WARN("%s: the back-end reports an error on queue %u", r->dev->setup.name,
                       r->q);
        virtio_mark_broken(r->dev->vdev, "back-end error on queue %u", r->q);
    }
}

static int new_eventfd(void)
{
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

/* Kick, call and error eventfds: the transport's where it has them, else relays. */
static bool ring_fds(VhostUserRing *r, Error **errp)
{
    VirtIODevice *vdev = r->dev->vdev;
    const VirtIOTransportOps *t = vdev->transport;
    r->kick = t && t->kick_fd ? t->kick_fd(vdev, r->q, true) : -1;
    r->own_kick = r->kick < 0;
    if (r->own_kick) {
        r->kick = new_eventfd();
    }
    r->call = t && t->call_fd ? t->call_fd(vdev, r->q) : -1;
    r->own_call = r->call < 0;
    if (r->own_call) {
        r->call = new_eventfd();
        if (r->call >= 0) {
            main_loop_set_fd_handler(r->call, call_relay, NULL, r);
        }
    }
    r->err = new_eventfd();
    if (r->kick < 0 || r->call < 0 || r->err < 0) {
        error_setg_errno(errp, errno, "%s: cannot create eventfds", r->dev->setup.name);
        return false;
    }
    main_loop_set_fd_handler(r->err, err_signalled, NULL, r);
    return true;
}

static void ring_fds_release(VhostUserRing *r)
{
    VirtIODevice *vdev = r->dev->vdev;
    if (r->own_kick && r->kick >= 0) {
        close(r->kick);
    } else if (r->kick >= 0 && vdev->transport && vdev->transport->kick_fd) {
        vdev->transport->kick_fd(vdev, r->q, false);
    }
    if (r->own_call && r->call >= 0) {
        main_loop_set_fd_handler(r->call, NULL, NULL, NULL);
        close(r->call);
    }
    if (r->err >= 0) {
        main_loop_set_fd_handler(r->err, NULL, NULL, NULL);
        close(r->err);
    }
    r->kick = r->call = r->err = -1;
}

static bool start_ring(VhostUserDev *dev, unsigned i, Error **errp)
{
    VhostUserRing *r = &dev->rings[i];
    VirtQueue *vq = &dev->vdev->vq[r->q];
    if (!vq->enabled) {
        return true;            /* a ring the driver did not set up stays idle */
    }
    uint64_t desc_size = 16ULL * vq->num, avail_size = 6 + 2ULL * vq->num,
             used_size = 6 + 8ULL * vq->num;
    void *desc = gmem_ptr(dev->vdev->mem, vq->desc, desc_size);
    void *avail = gmem_ptr(dev->vdev->mem, vq->avail, avail_size);
    void *used = gmem_ptr(dev->vdev->mem, vq->used, used_size);
    if (!desc || !avail || !used) {
        error_setg(errp, "%s: queue %u rings are outside guest RAM", dev->setup.name, r->q);
        return false;
    }
    VhostUserVringAddr addr = {
        .index = r->q,
        .desc_user_addr = (uint64_t)(uintptr_t)desc,
        .used_user_addr = (uint64_t)(uintptr_t)used,
        .avail_user_addr = (uint64_t)(uintptr_t)avail,
        .log_guest_addr = vq->used,
    };
    if (!ring_fds(r, errp) ||
        !set_state(dev, VHOST_USER_SET_VRING_NUM, r->q, vq->num, errp) ||
        !set_state(dev, VHOST_USER_SET_VRING_BASE, r->q, vq->last_avail_idx, errp) ||
        !request(dev, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0, NULL, 0, errp) ||
        !set_ring_fd(dev, VHOST_USER_SET_VRING_KICK, r->q, r->kick, errp) ||
        !set_ring_fd(dev, VHOST_USER_SET_VRING_CALL, r->q, r->call, errp) ||
        !set_ring_fd(dev, VHOST_USER_SET_VRING_ERR, r->q, r->err, errp)) {
        return false;
    }
    r->active = true;
    vhost_dev_info_set_queue(&dev->info, i, vq, desc_size, avail_size, used_size);
    return true;
}

/* The driver's used index is where the back-end's work is known to be done. */
static uint16_t guest_used_idx(VhostUserDev *dev, VirtQueue *vq)
{
    uint16_t idx = 0;
    gmem_read_u16(dev->vdev->mem, vq->used + 2, &idx);
    return idx;
}

/*
 * Take ring i back. ask: GET_VRING_BASE stops it in the back-end and
 * returns where it was; without it (the back-end is gone) the ring resumes
 * from the used index, the inflight area carrying what was in between.
 */
static void stop_ring(VhostUserDev *dev, unsigned i, bool ask)
{
    VhostUserRing *r = &dev->rings[i];
    VirtQueue *vq = &dev->vdev->vq[r->q];
    VhostUserMsg reply;
    if (!r->active) {
        ring_fds_release(r);    /* one that failed half-way */
        return;
    }
    r->active = false;
    VhostUserVringState s = { .index = r->q };
    Error *err = NULL;
    uint16_t used = guest_used_idx(dev, vq);
    vq->last_avail_idx = used;
    if (ask && request(dev, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &reply,
                       sizeof(VhostUserVringState), &err)) {
        if (reply.payload.state.index != r->q) {
            backend_lost(dev, "GET_VRING_BASE answered for another ring");
        } else {
            vq->last_avail_idx = (uint16_t)reply.payload.state.num;
        }
    }
    error_free(err);
    vq->shadow_avail_idx = vq->last_avail_idx;
    vq->used_idx = guest_used_idx(dev, vq);
    vq->inuse = 0;
    vq->signalled_used_valid = false;
    ring_fds_release(r);
}

static bool enable_rings(VhostUserDev *dev, bool on, Error **errp)
{
    if (!(dev->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))) {
        return true;    /* rings start enabled without protocol features */
    }
    for (unsigned i = 0; i < dev->setup.nvqs; i++) {
        if (dev->rings[i].active &&
            !set_state(dev, VHOST_USER_SET_VRING_ENABLE, dev->rings[i].q, on, errp)) {
            return false;
        }
        dev->rings[i].enabled = on && dev->rings[i].active;
    }
    return true;
}

void vhost_user_enable_queue(VhostUserDev *dev, unsigned q, bool on)
{
    unsigned i = q - dev->setup.vq_index;
    if (!dev->started || q < dev->setup.vq_index || i >= dev->setup.nvqs ||
        !dev->rings[i].active || dev->rings[i].enabled == on ||
        !(dev->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))) {
        return;
    }
    Error *err = NULL;
    dev->rings[i].enabled = on;
    if (!set_state(dev, VHOST_USER_SET_VRING_ENABLE, q, on, &err)) {
        virtio_mark_broken(dev->vdev, "%s", error_get_pretty(err));
        error_free(err);
    }
}

/* SET_FEATURES: what the driver acked of the listed bits, plus the protocol bit. */
static uint64_t acked_features(const VhostUserDev *dev)
{
    uint64_t acked = 0, guest = dev->vdev->guest_features;
    for (const unsigned *b = dev->setup.feature_bits; b && *b != UINT32_MAX; b++) {
        acked |= guest & (1ULL << *b);
    }
    return acked | (dev->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
}

static bool start(VhostUserDev *dev, Error **errp)
{
    uint64_t acked = acked_features(dev);
    unsigned i = 0;
    if (!set_u64(dev, VHOST_USER_SET_FEATURES, acked, errp) || !send_memory(dev, errp) ||
        !send_inflight(dev, errp)) {
        return false;
    }
    dev->info.acked_features = acked;
    for (; i < dev->setup.nvqs; i++) {
        if (!start_ring(dev, i, errp)) {
            break;
        }
    }
    bool ok = i == dev->setup.nvqs && enable_rings(dev, true, errp) &&
              (!has_protocol(dev, VHOST_USER_PROTOCOL_F_STATUS) ||
               set_u64(dev, VHOST_USER_SET_STATUS, dev->vdev->status, errp));
    if (!ok) {
        for (unsigned k = 0; k <= i && k < dev->setup.nvqs; k++) {
            stop_ring(dev, k, false);
        }
        return false;
    }
    dev->started = true;
    dev->vdev->vhost_started = true;
    dev->vdev->vhost = &dev->info;
    return true;
}

void vhost_user_start(VhostUserDev *dev)
{
    if (dev->started || dev->waiting) {
        return;
    }
    if (!runstate_is_running() && runstate_get() != RUN_STATE_PRELAUNCH) {
        dev->paused = true;     /* the rings start with the VM (cont) */
        return;
    }
    Error *err = NULL;
    if (!start(dev, &err)) {
        virtio_mark_broken(dev->vdev, "%s", error_get_pretty(err));
        error_free(err);
    }
}

static void stop(VhostUserDev *dev, bool ask)
{
    if (!dev->started) {
        return;
    }
    for (unsigned i = 0; i < dev->setup.nvqs; i++) {
        stop_ring(dev, i, ask && dev->sock >= 0);
    }
    if (ask && dev->sock >= 0 && has_protocol(dev, VHOST_USER_PROTOCOL_F_STATUS)) {
        set_u64(dev, VHOST_USER_SET_STATUS, 0, NULL);
    }
    dev->started = false;
    dev->vdev->vhost_started = false;
    dev->vdev->vhost = NULL;
}

void vhost_user_stop(VhostUserDev *dev)
{
    stop(dev, true);
}

void vhost_user_reset(VhostUserDev *dev)
{
    stop(dev, true);
    drop_inflight(dev);
}

void vhost_user_set_status(VhostUserDev *dev)
{
    if (virtio_driver_ok(dev->vdev) && !dev->vdev->broken) {
        vhost_user_start(dev);
    } else if (!virtio_driver_ok(dev->vdev)) {
        vhost_user_stop(dev);
    }
}

void vhost_user_kick(VhostUserDev *dev, unsigned q)
{
    if (!dev->started || q < dev->setup.vq_index || q >= dev->setup.vq_index + dev->setup.nvqs) {
        return;
    }
    VhostUserRing *r = &dev->rings[q - dev->setup.vq_index];
    if (r->active && r->own_kick && r->kick >= 0) {
        eventfd_write(r->kick, 1);
    }
}

/* ---- losing and finding the back-end ---- */

/*
 * Kicks that came while no back-end was there were dropped: a new one is
 * told once that every ring may hold work (a spurious kick is harmless).
 */
static void kick_all(VhostUserDev *dev)
{
    for (unsigned i = 0; dev->started && i < dev->setup.nvqs; i++) {
        if (dev->rings[i].active && dev->rings[i].kick >= 0) {
            eventfd_write(dev->rings[i].kick, 1);
        }
    }
}

static void try_reconnect(void *opaque);

static void arm_reconnect(VhostUserDev *dev)
{
    if (!dev->reconnect_timer) {
        dev->reconnect_timer = timer_new(CLOCK_REALTIME_HOST, try_reconnect, dev);
    }
    unsigned secs = chardev_socket_reconnect_secs(dev->chr);
    timer_mod(dev->reconnect_timer,
              clock_get_ns(CLOCK_REALTIME_HOST) + (int64_t)secs * 1000000000LL);
}

/*
 * The connection is unusable. Rings the back-end had are taken back at the
 * used index. With reconnect=N the device waits (its driver sees stalled
 * queues, not an error) and a new back-end gets the same set-up; otherwise
 * the device is broken until its driver resets it.
 */
static void backend_lost(VhostUserDev *dev, const char *why)
{
    if (dev->sock < 0) {
        return;
    }
    bool was_started = dev->started;
    disconnect(dev);
    stop(dev, false);
    if (chardev_socket_reconnect_secs(dev->chr)) {
        LOG_GUEST_WARN("%s: %s; reconnecting", dev->setup.name, why);
        dev->waiting = was_started || virtio_driver_ok(dev->vdev);
        arm_reconnect(dev);
        return;
    }
    virtio_mark_broken(dev->vdev, "vhost-user back-end: %s", why);
}

static void try_reconnect(void *opaque)
{
    VhostUserDev *dev = opaque;
    Error *err = NULL;
    dev->sock = chardev_socket_connect(dev->chr, &err);
    if (dev->sock < 0) {
        error_free(err);
        arm_reconnect(dev);
        return;
    }
    uint64_t old_features = dev->features;
    if (!handshake(dev, &err) || !check_needs(dev, &err) ||
        (dev->features & old_features) != old_features) {
        LOG_GUEST_WARN("%s: the back-end that came back is unusable: %s", dev->setup.name,
                       err ? error_get_pretty(err) : "fewer features than before");
        error_free(err);
        disconnect(dev);
        arm_reconnect(dev);
        return;
    }
    watch_socket(dev, true);
    bool resume = dev->waiting && virtio_driver_ok(dev->vdev) && !dev->vdev->broken;
    dev->waiting = false;
    if (resume) {
        vhost_user_start(dev);
        kick_all(dev);
    }
}

void vhost_user_free(VhostUserDev *dev)
{
    if (!dev) {
        return;
    }
    untrack(dev);
    stop(dev, true);
    disconnect(dev);
    drop_inflight(dev);
    if (dev->reconnect_timer) {
        timer_free(dev->reconnect_timer);
    }
    free(dev->rings);
    free(dev->info.vq);
    free(dev);
}
