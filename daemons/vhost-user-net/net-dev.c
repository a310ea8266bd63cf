/*
 * The vhost-user-net device: the guest's tx chains are written to the tap
 * (virtio net header and frame as they are, the kernel checks the header),
 * frames read from the tap fill the rx ring through libvirtio's shared
 * virtio-net rx code. Everything runs on one loop, so nothing needs a lock.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemons/vhost-user-net/vhost-user-net.h"
#include "net/tap.h"
#include "util/osdep.h"
#include "virtio/virtio-net-rx.h"

/* Feature bits of the virtio-net device (virtio spec 5.1.3). */
enum {
    NET_F_CSUM = 0, NET_F_GUEST_CSUM = 1, NET_F_MAC = 5, NET_F_GUEST_TSO4 = 7, NET_F_GUEST_TSO6 = 8,
    NET_F_GUEST_ECN = 9, NET_F_GUEST_UFO = 10, NET_F_HOST_TSO4 = 11, NET_F_HOST_TSO6 = 12,
    NET_F_HOST_ECN = 13, NET_F_HOST_UFO = 14, NET_F_MRG_RXBUF = 15, NET_F_STATUS = 16,
    NET_F_MQ = 22,
};

/* Configuration space: mac[6], status (le16), max_virtqueue_pairs (le16). */
enum { CFG_MAC = 0, CFG_STATUS = 6, CFG_MAX_PAIRS = 8, CFG_SIZE = 10 };
#define STATUS_LINK_UP  1

#define ETH_HDR_LEN     14
/* A GSO frame of 64 KiB plus headers; longer reads are truncated by the tap. */
#define PACKET_MAX      (65536 + VIRTIO_NET_HDR_LEN_MRG + ETH_HDR_LEN)
#define RX_BUDGET       256     /* frames per tap event, so tx and the socket get a turn */

static bool has(const NetDaemon *nd, unsigned bit)
{
    return nd->dev.acked_features >> bit & 1;
}

static VuVring *rx_vring(NetPair *p)
{
    return &p->nd->dev.vring[2 * p->index];
}

/* ---- features: the tap follows what the driver acked ---- */

static void apply_features(NetDaemon *nd)
{
    uint64_t f = nd->dev.acked_features;
    if (nd->features_applied && nd->applied_features == f) {
        return;
    }
    nd->hdr_len = virtio_net_hdr_len(f);
    for (unsigned i = 0; i < nd->pairs; i++) {
        int fd = nd->pair[i].tap_fd;
        nd->pair[i].packet_len = 0;     /* read with the old header length */
        /* What the tap may hand us is what the guest takes (its GUEST_* bits). */
        if (!tap_set_vnet_hdr_len(fd, nd->hdr_len) ||
            !tap_set_offload(fd, f >> NET_F_GUEST_CSUM & 1, f >> NET_F_GUEST_TSO4 & 1,
                             f >> NET_F_GUEST_TSO6 & 1, f >> NET_F_GUEST_ECN & 1,
                             nd->ufo && (f >> NET_F_GUEST_UFO & 1))) {
            error_report("%s: tap queue %u refused the negotiated offloads", nd->dev.name, i);
        }
    }
    nd->applied_features = f;
    nd->features_applied = true;
}

static uint64_t net_features(VuDev *dev)
{
    NetDaemon *nd = dev->opaque;
    uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC |
                 1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << NET_F_CSUM |
                 1ull << NET_F_GUEST_CSUM | 1ull << NET_F_GUEST_TSO4 |
                 1ull << NET_F_GUEST_TSO6 | 1ull << NET_F_GUEST_ECN |
                 1ull << NET_F_HOST_TSO4 | 1ull << NET_F_HOST_TSO6 | 1ull << NET_F_HOST_ECN |
                 1ull << NET_F_MRG_RXBUF;
    if (nd->ufo) {
        f |= 1ull << NET_F_GUEST_UFO | 1ull << NET_F_HOST_UFO;
    }
    if (nd->pairs > 1) {
        f |= 1ull << NET_F_MQ;
    }
    if (nd->has_mac) {
        f |= 1ull << NET_F_MAC | 1ull << NET_F_STATUS;
    }
    return f;
}

/* ---- transmit ---- */

static void tx_frame(NetPair *p, const VirtQueueElement *elem)
{
    NetDaemon *nd = p->nd;
    if (elem->out_len < nd->hdr_len + ETH_HDR_LEN || elem->out_len > PACKET_MAX) {
        nd->tx_dropped++;   /* no Ethernet header, or larger than any frame */
        return;
    }
    /* A full tap drops the frame, as a wire would. */
    if (writev(p->tap_fd, elem->out_sg, elem->out_num) < 0) {
        nd->tx_dropped++;
    }
}

static void tx_process(NetPair *p, VuVring *vr)
{
    VuDev *dev = &p->nd->dev;
    VirtQueue *vq = vu_vring_vq(dev, vr);
    VirtQueueElement elem;
    do {
        virtqueue_set_notification(vq, false);
        while (virtqueue_pop(vq, &elem)) {
            tx_frame(p, &elem);
            virtqueue_push(vq, &elem, 0);
            vu_request_done(dev, vr, &elem, 0);
            virtqueue_element_free(&elem);
        }
        virtqueue_set_notification(vq, true);
    } while (!dev->vdev.broken && !virtqueue_empty(vq));
    vu_vring_notify(dev, vr);
}

/* ---- receive ---- */

static void tap_readable(void *opaque);

static void watch_tap(NetPair *p, bool on)
{
    if (on != p->watching) {
        Error *err = NULL;
        p->watching = on;
        if (!vu_loop_set_fd(p->nd->dev.loop, p->tap_fd, on ? tap_readable : NULL, p, &err)) {
            error_report_err(err);
            p->watching = false;
        }
    }
}

/*
 * Multi-queue taps steer each flow to one queue: a queue whose ring the
 * driver has not enabled is detached, or its frames would wait there unread.
 */
static void attach_queue(NetPair *p, bool on)
{
    if (p->nd->pairs > 1 && on != p->attached && tap_set_queue_enabled(p->tap_fd, on)) {
        p->attached = on;
    }
}

/* Read the next frame from the tap into p->packet; false when there is none. */
static bool read_frame(NetPair *p)
{
    NetDaemon *nd = p->nd;
    for (;;) {
        ssize_t r = read(p->tap_fd, p->packet, PACKET_MAX);
        if (r < 0) {
            return false;       /* EAGAIN: drained; other errors: wait for the next event */
        }
        if ((size_t)r >= nd->hdr_len + ETH_HDR_LEN) {
            p->packet_len = r;
            return true;
        }
        nd->rx_dropped++;       /* a runt: nothing the guest could use */
    }
}

static void rx_pushed(void *opaque, const VirtQueueElement *elem, uint32_t written)
{
    NetPair *p = opaque;
    vu_request_done(&p->nd->dev, rx_vring(p), elem, written);
}

static void rx_run(NetPair *p)
{
    NetDaemon *nd = p->nd;
    VuVring *vr = rx_vring(p);
    if (!vu_vring_ready(vr)) {
        /* Frames wait in the kernel (or go to enabled queues) until the ring runs. */
        watch_tap(p, false);
        attach_queue(p, false);
        return;
    }
    attach_queue(p, true);
    apply_features(nd);
    VirtQueue *vq = vu_vring_vq(&nd->dev, vr);
    bool pushed = false;
    for (int budget = RX_BUDGET; budget > 0 && !nd->dev.vdev.broken; budget--) {
        if (!p->packet_len && !read_frame(p)) {
            break;
        }
        int k = virtio_net_rx_fill(vq, has(nd, NET_F_MRG_RXBUF), nd->hdr_len, p->packet,
                                   p->packet_len, rx_pushed, p);
        if (k == 0) {
            break;              /* no room: the driver's next rx kick brings us back */
        }
        if (k < 0) {
            nd->rx_dropped++;   /* the driver's buffers can never hold it */
        }
        pushed |= k > 0;
        p->packet_len = 0;
    }
    if (pushed) {
        vu_vring_notify(&nd->dev, vr);
    }
    watch_tap(p, !p->packet_len && !nd->dev.vdev.broken);
}

static void tap_readable(void *opaque)
{
    NetPair *p = opaque;
    VuDev *dev = &p->nd->dev;
    rx_run(p);
    if (dev->vdev.broken && dev->conn_fd >= 0) {
        vu_dev_drop(dev, "ring %u broke the virtio rules (frontend dropped)", 2 * p->index);
    }
    vu_dev_settle(dev);
}

/* ---- the device ---- */

static void net_process(VuDev *dev, VuVring *vr)
{
    NetDaemon *nd = dev->opaque;
    NetPair *p = &nd->pair[vr->index / 2];
    apply_features(nd);
    if (vr->index & 1) {
        tx_process(p, vr);
    } else {
        rx_run(p);              /* new rx buffers: a waiting frame may fit now */
    }
}

/* Nothing is in flight between events; a frame kept for rx is simply dropped. */
static void net_drain(VuDev *dev)
{
    NetDaemon *nd = dev->opaque;
    for (unsigned i = 0; i < nd->pairs; i++) {
        nd->pair[i].packet_len = 0;
    }
    nd->features_applied = false;   /* the next frontend negotiates afresh */
}

void rarp_frame(uint8_t frame[RARP_FRAME_LEN], const uint8_t mac[6])
{
    static const uint8_t head[] = {
        0x80, 0x35,             /* ethertype: reverse ARP */
        0x00, 0x01,             /* hardware: Ethernet */
        0x08, 0x00,             /* protocol: IPv4 */
        6, 4,                   /* address lengths */
        0x00, 0x03,             /* operation: request reverse */
    };
    memset(frame, 0, RARP_FRAME_LEN);      /* padded to the Ethernet minimum */
    memset(frame, 0xff, 6);                 /* broadcast */
    memcpy(frame + 6, mac, 6);
    memcpy(frame + 12, head, sizeof(head));
    memcpy(frame + 22, mac, 6);             /* sender hardware address; IP 0 */
    memcpy(frame + 32, mac, 6);             /* target hardware address; IP 0 */
}

/* The guest arrived here (migration): tell the switches where its MAC lives now. */
static void net_send_rarp(VuDev *dev, const uint8_t mac[6])
{
    NetDaemon *nd = dev->opaque;
    uint8_t buf[VIRTIO_NET_HDR_LEN_MRG + RARP_FRAME_LEN] = { 0 };
    apply_features(nd);
    rarp_frame(buf + nd->hdr_len, mac);
    if (write(nd->pair[0].tap_fd, buf, nd->hdr_len + RARP_FRAME_LEN) < 0) {
        error_report("%s: RARP announcement not sent: %s", dev->name, strerror(errno));
    }
}

static const VuDevOps net_ops = {
    .features = net_features,
    .process = net_process,
    .drain = net_drain,
    .send_rarp = net_send_rarp,
};

static void fill_config(NetDaemon *nd, const uint8_t *mac)
{
    uint8_t *cfg = nd->dev.vdev.config;
    uint16_t status = htole16(STATUS_LINK_UP), pairs = htole16(nd->pairs);
    memcpy(cfg + CFG_MAC, mac, 6);
    memcpy(cfg + CFG_STATUS, &status, 2);
    memcpy(cfg + CFG_MAX_PAIRS, &pairs, 2);
}

bool net_daemon_init(NetDaemon *nd, VuLoop *loop, int listen_fd, const int *tap_fds,
                     unsigned pairs, const uint8_t *mac, Error **errp)
{
    nd->pairs = pairs;
    nd->hdr_len = VIRTIO_NET_HDR_LEN_LEGACY;    /* the tap's default */
    nd->ufo = tap_probe_ufo(tap_fds[0]);
    for (unsigned i = 0; i < pairs; i++) {
        nd->pair[i] = (NetPair){ .nd = nd, .index = i, .tap_fd = tap_fds[i], .attached = true,
                                 .packet = xmalloc(PACKET_MAX) };
    }
    if (!vu_dev_init(&nd->dev, "vhost-user-net", loop, listen_fd, 2 * pairs,
                     mac ? CFG_SIZE : 0, &net_ops, nd, errp)) {
        return false;
    }
    nd->dev.protocol_offered =
        1ull << VHOST_USER_PROTOCOL_F_MQ | 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD |
        1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK | 1ull << VHOST_USER_PROTOCOL_F_RARP;
    if (mac) {
        /* Only then: QEMU keeps its own config for vhost-user-net and needs none. */
        nd->has_mac = true;
        nd->dev.protocol_offered |= 1ull << VHOST_USER_PROTOCOL_F_CONFIG;
        fill_config(nd, mac);
    }
    return true;
}

void net_daemon_cleanup(NetDaemon *nd)
{
    if (nd->dev.loop) {
        vu_dev_cleanup(&nd->dev);
    }
    for (unsigned i = 0; i < nd->pairs; i++) {
        free(nd->pair[i].packet);
        if (nd->pair[i].tap_fd >= 0) {
            close(nd->pair[i].tap_fd);
        }
    }
}
