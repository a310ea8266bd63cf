/*
 * virtio-net (virtio 1.2 section 5.1) on tap: packets keep their virtio net
 * header across the tap (IFF_VNET_HDR), so checksum and TSO offloads reach
 * the host kernel unchanged. Receive copies each packet into one chain, or
 * several with mergeable rx buffers; the control queue takes rx mode, MAC
 * table, VLAN, announce, multiqueue and guest offload commands. Each queue
 * pair has its own tap descriptor (IFF_MULTI_QUEUE when there are several).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "net/net.h"
#include "net/tap.h"
#include "util/log.h"
#include "util/osdep.h"
#include "virtio/vhost.h"
#include "virtio/vhost-user.h"
#include "virtio/virtio-net-rx.h"
#include "virtio/virtio-pci.h"

enum {
    NET_F_CSUM = 0, NET_F_GUEST_CSUM = 1, NET_F_CTRL_GUEST_OFFLOADS = 2, NET_F_MAC = 5,
    NET_F_GSO = 6, NET_F_GUEST_TSO4 = 7, NET_F_GUEST_TSO6 = 8, NET_F_GUEST_ECN = 9,
    NET_F_GUEST_UFO = 10, NET_F_HOST_TSO4 = 11, NET_F_HOST_TSO6 = 12, NET_F_HOST_ECN = 13,
    NET_F_HOST_UFO = 14, NET_F_MRG_RXBUF = 15, NET_F_STATUS = 16, NET_F_CTRL_VQ = 17,
    NET_F_CTRL_RX = 18, NET_F_CTRL_VLAN = 19, NET_F_CTRL_RX_EXTRA = 20,
    NET_F_GUEST_ANNOUNCE = 21, NET_F_MQ = 22, NET_F_CTRL_MAC_ADDR = 23,
};

enum { CTRL_RX = 0, CTRL_MAC = 1, CTRL_VLAN = 2, CTRL_ANNOUNCE = 3, CTRL_MQ = 4,
       CTRL_GUEST_OFFLOADS = 5 };
enum { ACK_OK = 0, ACK_ERR = 1 };
enum { RX_PROMISC, RX_ALLMULTI, RX_ALLUNI, RX_NOMULTI, RX_NOUNI, RX_NOBCAST };
#define STATUS_LINK_UP  1
#define STATUS_ANNOUNCE 2

#define QUEUE_SIZE      256
#define CTRL_QUEUE_SIZE 64
#define MAX_PAIRS       8
#define HDR_LEN_MRG     12      /* virtio_net_hdr_v1 / _mrg_rxbuf */
#define HDR_LEN_LEGACY  10
#define PACKET_MAX      (65536 + HDR_LEN_MRG)
#define MAC_TABLE_MAX   64

/* Configuration: mac[6], status, max_virtqueue_pairs */
enum { CFG_MAC = 0, CFG_STATUS = 6, CFG_MAX_PAIRS = 8 };

typedef struct VirtIONet VirtIONet;

typedef struct NetQueuePair {
    VirtIONet *net;
    int fd;                     /* tap queue */
    NetClient *nc;              /* or a frame back-end (socket, hubport); neither: no peer */
    VirtQueue *rx, *tx;
    uint8_t *packet;            /* a received packet waiting for rx buffers */
    ssize_t packet_len;         /* 0: none */
    bool polling;               /* tap fd is watched for packets */
    VhostDev *vhost;            /* vhost=on: the kernel runs this pair's rings */
} NetQueuePair;

struct VirtIONet {
    VirtIODevice vdev;
    unsigned max_pairs, active_pairs;
    NetQueuePair pairs[MAX_PAIRS];
    unsigned hdr_len;
    bool ufo;                   /* the host tap takes UFO */
    bool vhost_running;         /* the pairs' rings are in the kernel now */
    Chardev *vu_chr;            /* -netdev vhost-user: its socket chardev */
    VhostUserDev *vu;           /* ... and the frontend running the data rings */
    uint8_t conf_mac[6];        /* mac= (or the default): what a reset brings back */
    /* Control-queue state (kept as the driver set it). */
    uint8_t rx_mode[6];         /* indexed by RX_PROMISC.. */
    uint8_t mac_table[MAC_TABLE_MAX][6];    /* unicast entries, then multicast */
    unsigned mac_table_n, mac_table_uni;
    bool uni_overflow, multi_overflow;      /* more than fit: take the whole class */
    uint32_t vlans[4096 / 32];
};

static const OptParam net_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "netdev", OPT_STRING, "id of the -netdev" },
    { "mac", OPT_STRING, "MAC address" },
    { "mq", OPT_BOOL, "multiqueue", "off" },
    { "rx_queue_size", OPT_NUMBER, "receive queue size", "256" },
    { "tx_queue_size", OPT_NUMBER, "transmit queue size", "256" },
    { "romfile", OPT_STRING, "option ROM (ignored)" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};

static const OptParam netdev_params[] = {
    { "type", OPT_STRING, "back-end type" },
    { "id", OPT_STRING, "netdev id" },
    { "ifname", OPT_STRING, "tap interface" },
    { "script", OPT_STRING, "up script (only 'no')" },
    { "downscript", OPT_STRING, "down script (only 'no')" },
    { "queues", OPT_NUMBER, "queue pairs", "1" },
    { "vhost", OPT_BOOL, "vhost-net", "off" },
    { "vnet_hdr", OPT_BOOL, "virtio net header", "on" },
    { "sndbuf", OPT_SIZE, "tap: send buffer limit in bytes (0: unlimited)", "0" },
    { "chardev", OPT_STRING, "vhost-user: UNIX socket chardev of the back-end" },
    { "fd", OPT_STRING, "tap: an open tap descriptor (IFF_VNET_HDR) from the parent" },
    { "fds", OPT_STRING, "tap: open tap descriptors, one per queue pair, colon-separated" },
    { "vhostfd", OPT_STRING, "tap: an open /dev/vhost-net descriptor" },
    { "vhostfds", OPT_STRING, "tap: open /dev/vhost-net descriptors, colon-separated" },
    { NULL },
};

/*
 * fd=N or fds=N:M:...: descriptors management tools opened for vireo.
 * Returns how many were parsed into out (at most max), or -1 with errp set.
 */
static int parse_fd_list(const char *key, const char *text, int *out, unsigned max,
                         Error **errp)
{
    unsigned n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p || fd <= 2 || fd > INT32_MAX || (*end && *end != ':')) {
            error_setg(errp, "%s=%s: expected descriptor numbers above 2", key, text);
            return -1;
        }
        if (n == max) {
            error_setg(errp, "%s=%s: more than %u descriptors", key, text, max);
            return -1;
        }
        if (fcntl((int)fd, F_GETFD) < 0) {
            error_setg(errp, "%s: descriptor %ld is not open", key, fd);
            return -1;
        }
        out[n++] = (int)fd;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        error_setg(errp, "%s= needs a descriptor number", key);
        return -1;
    }
    return (int)n;
}

/* tap with fd=/fds= (and vhostfd=/vhostfds=): adopt what the parent opened. */
static bool open_tap_fds(VirtIONet *n, const KeyValList *kv, bool mq, Error **errp)
{
    int taps[MAX_PAIRS], vhosts[MAX_PAIRS];
    const char *one = keyval_get(kv, "fd") ? "fd" : "fds";
    int nt = parse_fd_list(one, keyval_get(kv, one), taps, MAX_PAIRS, errp);
    if (nt < 0) {
        return false;
    }
    if (nt > 1 && (!mq || !strcmp(one, "fd"))) {
        error_setg(errp, "tap: %d descriptors need fds= and a device with mq=on", nt);
        return false;
    }
    const char *vkey = keyval_get(kv, "vhostfd") ? "vhostfd" :
                       keyval_get(kv, "vhostfds") ? "vhostfds" : NULL;
    int nv = vkey ? parse_fd_list(vkey, keyval_get(kv, vkey), vhosts, MAX_PAIRS, errp) : 0;
    if (nv < 0) {
        return false;
    }
    if (vkey && nv != nt) {
        error_setg(errp, "tap: %d tap descriptors but %d vhost descriptors", nt, nv);
        return false;
    }
    n->max_pairs = (unsigned)nt;
    for (int i = 0; i < nt; i++) {
        if (!tap_adopt_fd(taps[i], errp)) {
            return false;
        }
        fcntl(taps[i], F_SETFD, FD_CLOEXEC);
        n->pairs[i].fd = taps[i];
    }
    n->ufo = tap_probe_ufo(n->pairs[0].fd);
    for (int i = 0; i < nv; i++) {
        fcntl(vhosts[i], F_SETFD, FD_CLOEXEC);
        n->pairs[i].vhost = vhost_dev_open("/dev/vhost-net", vhosts[i], 2 * (unsigned)i, 2,
                                           errp);
        if (!n->pairs[i].vhost) {
            return false;
        }
    }
    return true;
}

static bool has(const VirtIONet *n, unsigned bit)
{
    return virtio_has_feature(&n->vdev, bit);
}

/* ---- transmit ---- */

/* A frame back-end carries no virtio net header: skip it. */
static void send_frame(NetQueuePair *qp, const VirtQueueElement *elem)
{
    struct iovec iov[64];
    size_t skip = qp->net->hdr_len;
    int n = 0;
    for (unsigned i = 0; i < elem->out_num; i++) {
        size_t len = elem->out_sg[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        if (n == (int)ARRAY_SIZE(iov)) {
            return;             /* more pieces than any frame needs: dropped */
        }
        iov[n].iov_base = (uint8_t *)elem->out_sg[i].iov_base + skip;
        iov[n].iov_len = len - skip;
        skip = 0;
        n++;
    }
    if (skip == 0 && n > 0) {
        net_client_send(qp->nc, iov, n);
    }
}

static void net_tx(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIONet *n = vdev->opaque;
    NetQueuePair *qp = &n->pairs[vq->index / 2];
    VirtQueueElement elem;
    if (n->vu) {
        vhost_user_kick(n->vu, vq->index);
        return;
    }
    do {
        virtqueue_set_notification(vq, false);
        while (virtqueue_pop(vq, &elem)) {
            if (qp->nc) {
                send_frame(qp, &elem);
            } else if (qp->fd >= 0) {
                /* Header and frame go to the tap as they are; a full tap drops, like a wire. */
                ssize_t r = writev(qp->fd, elem.out_sg, elem.out_num);
                (void)r;
            }
            virtqueue_push(vq, &elem, 0);
            virtqueue_element_free(&elem);
        }
        virtqueue_set_notification(vq, true);
    } while (!virtqueue_empty(vq));
    virtqueue_notify(vq);
}

/* ---- receive ---- */

static void rx_poll(NetQueuePair *qp, bool on);

/*
 * The waiting packet into the rx ring (libvirtio's shared filling, all or
 * nothing); one no buffer can ever hold is dropped instead of blocking rx.
 */
static bool deliver_packet(NetQueuePair *qp)
{
    int k = virtio_net_rx_fill(qp->rx, has(qp->net, NET_F_MRG_RXBUF), qp->net->hdr_len,
                               qp->packet, qp->packet_len, NULL, NULL);
    if (!k) {
        return false;
    }
    qp->packet_len = 0;
    return true;
}

/* ---- receive filter (what the control queue set up) ---- */

static bool mac_in_table(const VirtIONet *n, const uint8_t *mac, unsigned from, unsigned to)
{
    for (unsigned i = from; i < to; i++) {
        if (!memcmp(n->mac_table[i], mac, 6)) {
            return true;
        }
    }
    return false;
}

static bool vlan_accepted(const VirtIONet *n, const uint8_t *frame, size_t len)
{
    if (!has(n, NET_F_CTRL_VLAN) || len < 16 || frame[12] != 0x81 || frame[13] != 0x00) {
        return true;
    }
    unsigned vid = (frame[14] << 8 | frame[15]) & 0xfff;
    return n->vlans[vid / 32] & (1u << (vid % 32));
}

/* Should the guest see this frame (after the vnet header)? */
static bool rx_filter_accepts(const VirtIONet *n, const uint8_t *frame, size_t len)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    if (n->rx_mode[RX_PROMISC] || len < 14) {
        return true;
    }
    if (!vlan_accepted(n, frame, len)) {
        return false;
    }
    if (!memcmp(frame, bcast, 6)) {
        return !n->rx_mode[RX_NOBCAST];
    }
    if (frame[0] & 1) {
        return !n->rx_mode[RX_NOMULTI] &&
               (n->rx_mode[RX_ALLMULTI] || n->multi_overflow ||
                mac_in_table(n, frame, n->mac_table_uni, n->mac_table_n));
    }
    return !n->rx_mode[RX_NOUNI] &&
           (n->rx_mode[RX_ALLUNI] || n->uni_overflow ||
            !memcmp(frame, n->vdev.config + CFG_MAC, 6) ||
            mac_in_table(n, frame, 0, n->mac_table_uni));
}

static void rx_ready(void *opaque)
{
    NetQueuePair *qp = opaque;
    bool pushed = false;
    for (int budget = 256; budget > 0; budget--) {
        if (!qp->packet_len) {
            if (virtqueue_empty(qp->rx)) {
                break;
            }
            size_t hdr = qp->net->hdr_len;
            ssize_t r;
            if (qp->nc) {
                /* A bare frame: no offloads to describe, so an all-zero header. */
                memset(qp->packet, 0, hdr);
                r = net_client_recv(qp->nc, qp->packet + hdr, PACKET_MAX - hdr);
                r = r > 0 ? r + (ssize_t)hdr : r;
            } else {
                r = read(qp->fd, qp->packet, PACKET_MAX);
            }
            if (r <= 0 || (size_t)r < hdr) {
                break;
            }
            if (!rx_filter_accepts(qp->net, qp->packet + hdr, r - hdr)) {
                continue;       /* filtered out: the guest asked not to see it */
            }
            qp->packet_len = r;
        }
        if (!deliver_packet(qp)) {
            break;
        }
        pushed = true;
    }
    if (pushed) {
        virtqueue_notify(qp->rx);
    }
    /* Stop watching the tap while the guest has no room; its rx kick restarts us. */
    rx_poll(qp, !qp->packet_len && !virtqueue_empty(qp->rx));
}

static void rx_poll(NetQueuePair *qp, bool on)
{
    /* Detached queues stay quiet, and vhost reads the tap itself. */
    on = on && (unsigned)(qp - qp->net->pairs) < qp->net->active_pairs && !qp->net->vhost_running;
    if (qp->fd >= 0 && on != qp->polling) {
        qp->polling = on;
        main_loop_set_fd_handler(qp->fd, on ? rx_ready : NULL, NULL, qp);
    } else if (qp->nc && on != qp->polling) {
        qp->polling = on;
        net_client_set_receive_handler(qp->nc, on ? rx_ready : NULL, qp);
    }
}

static void net_rx_kick(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIONet *n = vdev->opaque;
    if (n->vu) {
        vhost_user_kick(n->vu, vq->index);
        return;
    }
    rx_ready(&n->pairs[vq->index / 2]);
}

/* ---- queue pairs ---- */

/* Only active pairs take packets: the others' tap queues are detached. */
static void set_active_pairs(VirtIONet *n, unsigned pairs)
{
    n->active_pairs = pairs;
    for (unsigned i = 0; i < n->max_pairs; i++) {
        bool on = i < pairs;
        if (n->vu) {
            /* The back-end serves the pairs the driver selected (CTRL_MQ). */
            vhost_user_enable_queue(n->vu, 2 * i, on);
            vhost_user_enable_queue(n->vu, 2 * i + 1, on);
            continue;
        }
        if (n->max_pairs > 1) {
            tap_set_queue_enabled(n->pairs[i].fd, on);
        }
        rx_poll(&n->pairs[i], on && virtio_driver_ok(&n->vdev));
    }
}

/* ---- control queue ---- */

static uint8_t ctrl_rx_mode(VirtIONet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    if (cmd >= sizeof(n->rx_mode) || len < 1) {
        return ACK_ERR;
    }
    n->rx_mode[cmd] = data[0] != 0;
    return ACK_OK;
}

/* MAC_TABLE_SET: two tables (unicast, multicast), each u32 count + entries. */
static uint8_t ctrl_mac(VirtIONet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    if (cmd == 1) {     /* ADDR_SET */
        if (len != 6) {
            return ACK_ERR;
        }
        memcpy(n->vdev.config + CFG_MAC, data, 6);
        return ACK_OK;
    }
    if (cmd != 0) {
        return ACK_ERR;
    }
    size_t off = 0;
    n->mac_table_n = n->mac_table_uni = 0;
    n->uni_overflow = n->multi_overflow = false;
    for (int table = 0; table < 2; table++) {
        uint32_t count;
        if (len - off < 4) {
            return ACK_ERR;
        }
        memcpy(&count, data + off, 4);
        count = le32toh(count);
        off += 4;
        if (count > (len - off) / 6) {
            return ACK_ERR;
        }
        if (count > MAC_TABLE_MAX - n->mac_table_n) {
            *(table == 0 ? &n->uni_overflow : &n->multi_overflow) = true;
        } else {
            memcpy(n->mac_table[n->mac_table_n], data + off, 6 * (size_t)count);
            n->mac_table_n += count;
        }
        if (table == 0) {
            n->mac_table_uni = n->mac_table_n;
        }
        off += 6 * (size_t)count;
    }
    return ACK_OK;
}

static uint8_t ctrl_vlan(VirtIONet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    uint16_t vid;
    if (len != 2 || cmd > 1) {
        return ACK_ERR;
    }
    memcpy(&vid, data, 2);
    vid = le16toh(vid) & 0xfff;
    if (cmd == 0) {
        n->vlans[vid / 32] |= 1u << (vid % 32);
    } else {
        n->vlans[vid / 32] &= ~(1u << (vid % 32));
    }
    return ACK_OK;
}

static void apply_offloads(VirtIONet *n, uint64_t f)
{
    for (unsigned i = 0; i < n->max_pairs; i++) {
        tap_set_offload(n->pairs[i].fd, f >> NET_F_GUEST_CSUM & 1, f >> NET_F_GUEST_TSO4 & 1,
                        f >> NET_F_GUEST_TSO6 & 1, f >> NET_F_GUEST_ECN & 1,
                        n->ufo && (f >> NET_F_GUEST_UFO & 1));
    }
}

static uint8_t ctrl_command(VirtIONet *n, uint8_t cls, uint8_t cmd, const uint8_t *data,
                            size_t len)
{
    switch (cls) {
    case CTRL_RX:       return ctrl_rx_mode(n, cmd, data, len);
    case CTRL_MAC:      return ctrl_mac(n, cmd, data, len);
    case CTRL_VLAN:     return ctrl_vlan(n, cmd, data, len);
    case CTRL_ANNOUNCE:
        if (cmd != 0) {
            return ACK_ERR;
        }
        /* The driver announced itself: the request is done. */
        n->vdev.config[CFG_STATUS] &= ~STATUS_ANNOUNCE;
        return ACK_OK;
    case CTRL_MQ: {
        uint16_t pairs;
        if (cmd != 0 || len != 2) {
            return ACK_ERR;
        }
        memcpy(&pairs, data, 2);
        pairs = le16toh(pairs);
        if (pairs < 1 || pairs > n->max_pairs || !has(n, NET_F_MQ)) {
            return ACK_ERR;
        }
        set_active_pairs(n, pairs);
        return ACK_OK;
    }
    case CTRL_GUEST_OFFLOADS: {
        uint64_t f;
        if (cmd != 0 || len != 8) {
            return ACK_ERR;
        }
        memcpy(&f, data, 8);
        apply_offloads(n, le64toh(f) & n->vdev.guest_features);
        return ACK_OK;
    }
    default:
        return ACK_ERR;
    }
}

static void net_ctrl(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIONet *n = vdev->opaque;
    VirtQueueElement elem;
    while (virtqueue_pop(vq, &elem)) {
        uint8_t ack = ACK_ERR, hdr[2];
        size_t len = elem.out_len;
        if (len >= 2 && elem.in_len >= 1 && len <= 2 + 4 + 6 * 2 * 1024) {
            uint8_t *buf = xmalloc(len);
            iov_to_buf(elem.out_sg, elem.out_num, 0, buf, len);
            memcpy(hdr, buf, 2);
            ack = ctrl_command(n, hdr[0], hdr[1], buf + 2, len - 2);
            free(buf);
        }
        size_t w = elem.in_len ? iov_from_buf(elem.in_sg, elem.in_num, 0, &ack, 1) : 0;
        virtqueue_push(vq, &elem, w);
        virtqueue_element_free(&elem);
    }
    virtqueue_notify(vq);
}

/* ---- vhost-net ---- */

/*
 * With vhost=on the kernel moves packets between the tap and the rings
 * once the driver is running; vireo keeps the control queue. Where vhost
 * cannot start (no KVM doorbells or MSI-X, say) the userspace path below
 * carries on, as QEMU falls back too.
 */
static void vhost_stop(VirtIONet *n)
{
    if (!n->vhost_running) {
        return;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (vhost_dev_started(n->pairs[i].vhost)) {
            vhost_net_set_backend(n->pairs[i].vhost, -1, NULL);
            vhost_dev_stop(n->pairs[i].vhost, &n->vdev);
        }
    }
    n->vhost_running = false;
    n->vdev.vhost_started = false;
    n->vdev.vhost = NULL;
}

static void vhost_start(VirtIONet *n)
{
    Error *err = NULL;
    n->vhost_running = true;    /* from here on vireo leaves the taps alone */
    bool any = false;
    for (unsigned i = 0; i < n->max_pairs && !err; i++) {
        NetQueuePair *qp = &n->pairs[i];
        if (!qp->rx->enabled || !qp->tx->enabled) {
            continue;           /* a pair the driver did not set up stays idle */
        }
        rx_poll(qp, false);
        qp->packet_len = 0;
        if (vhost_dev_start(qp->vhost, &n->vdev, n->vdev.guest_features, &err)) {
            vhost_net_set_backend(qp->vhost, qp->fd, &err);
            any = true;
        }
    }
    if (err || !any) {
        if (err) {
            /* Runs at every DRIVER_OK the guest writes. */
            LOG_GUEST_WARN("%s; virtio-net carries on without vhost", error_get_pretty(err));
            error_free(err);
        }
        vhost_stop(n);
        return;
    }
    n->vdev.vhost_started = true;
    n->vdev.vhost = vhost_dev_info(n->pairs[0].vhost);
}

/* Ring features the kernel back-end must implement to be offered at all. */
static uint64_t vhost_masked_features(const VirtIONet *n, uint64_t f)
{
    static const unsigned ring_bits[] = {
        VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX, NET_F_MRG_RXBUF,
        VIRTIO_F_VERSION_1, VIRTIO_F_RING_RESET, VIRTIO_F_NOTIFY_ON_EMPTY,
    };
    uint64_t have = vhost_dev_features(n->pairs[0].vhost);
    for (size_t i = 0; i < sizeof(ring_bits) / sizeof(ring_bits[0]); i++) {
        if (!(have & (1ULL << ring_bits[i]))) {
            f &= ~(1ULL << ring_bits[i]);
        }
    }
    return f;
}

/* ---- device ---- */

static void net_set_status(VirtIODevice *vdev, uint8_t old)
{
    VirtIONet *n = vdev->opaque;
    bool ok = virtio_driver_ok(vdev);
    if (ok && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
        n->hdr_len = has(n, VIRTIO_F_VERSION_1) || has(n, NET_F_MRG_RXBUF) ?
                     HDR_LEN_MRG : HDR_LEN_LEGACY;
        for (unsigned i = 0; i < n->max_pairs; i++) {
            tap_set_vnet_hdr_len(n->pairs[i].fd, n->hdr_len);
        }
        apply_offloads(n, vdev->guest_features);
        if (n->pairs[0].vhost) {
            vhost_start(n);
        }
        if (n->vu && !vdev->broken) {
            vhost_user_start(n->vu);
        }
    } else if (!ok) {
        vhost_stop(n);
        if (n->vu) {
            vhost_user_stop(n->vu);
        }
    }
    set_active_pairs(n, n->active_pairs);
}

static void net_reset(VirtIODevice *vdev)
{
    VirtIONet *n = vdev->opaque;
    vhost_stop(n);
    if (n->vu) {
        vhost_user_reset(n->vu);
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        rx_poll(&n->pairs[i], false);
        n->pairs[i].packet_len = 0;
    }
    set_active_pairs(n, 1);
    /* Until a driver with the control queue says otherwise, every frame goes in. */
    memset(n->rx_mode, 0, sizeof(n->rx_mode));
    n->rx_mode[RX_PROMISC] = 1;
    n->mac_table_n = n->mac_table_uni = 0;
    n->uni_overflow = n->multi_overflow = false;
    memset(n->vlans, 0, sizeof(n->vlans));
    /* A MAC the last driver set (config write, MAC_ADDR_SET) dies with it. */
    memcpy(vdev->config + CFG_MAC, n->conf_mac, 6);
}

static void net_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size)
{
    /* Legacy drivers without CTRL_MAC_ADDR set the MAC by writing config. */
    if (offset + size <= 6 && !virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
        memcpy(vdev->config + offset, &val, size);
    }
}

/* Teardown: the kernel must let go of guest RAM before it goes away. */
static void net_quiesce(VirtIODevice *vdev)
{
    VirtIONet *n = vdev->opaque;
    vhost_stop(n);
    if (n->vu) {
        vhost_user_stop(n->vu);
    }
}

static void net_free(VirtIONet *n)
{
    for (unsigned i = 0; i < MAX_PAIRS; i++) {
        if (n->pairs[i].fd >= 0) {
            main_loop_set_fd_handler(n->pairs[i].fd, NULL, NULL, NULL);
            close(n->pairs[i].fd);
        }
        net_client_close(n->pairs[i].nc);
        vhost_dev_close(n->pairs[i].vhost);
        free(n->pairs[i].packet);
    }
    vhost_user_free(n->vu);
    free(n->vdev.config);
    free(n->vdev.vq);
    free(n);
}

/* Hot-unplug (after net_quiesce): the back-end goes with the NIC. */
static void net_unrealize(VirtIODevice *vdev)
{
    net_free(vdev->opaque);
}

static const VirtIODeviceOps net_ops = {
    .reset = net_reset, .set_status = net_set_status, .config_write = net_config_write,
    .quiesce = net_quiesce, .unrealize = net_unrealize,
};

static bool parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char extra;
    if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6) {
        return false;
    }
    for (int i = 0; i < 6; i++) {
        if (v[i] > 0xff) {
            return false;
        }
        mac[i] = v[i];
    }
    return true;
}

/* ---- vhost-user ---- */

/*
 * -netdev vhost-user,chardev=ID,queues=N: the back-end runs the data rings
 * (rx and tx of each pair, kicks and calls bypassing vireo where KVM
 * allows); the control queue stays in vireo, whose receive filter the
 * back-end does not see, as with QEMU.
 */
static bool open_vhost_user_netdev(VirtIONet *n, const KeyValList *kv, bool mq, Error **errp)
{
    const char *id = keyval_get(kv, "chardev");
    unsigned queues = keyval_get_number(kv, "queues", 1);
    if (!id) {
        error_setg(errp, "Parameter 'chardev' is missing");
        return false;
    }
    n->vu_chr = chardev_find(id);
    if (!n->vu_chr) {
        error_setg(errp, "chardev \"%s\" not found", id);
        return false;
    }
    if (queues < 1 || queues > MAX_PAIRS) {
        error_setg(errp, "vhost-user: queues must be between 1 and %d", MAX_PAIRS);
        return false;
    }
    n->max_pairs = mq ? queues : 1;
    return true;
}

/* Net bits that count only if the back-end offers them. */
static const unsigned vu_net_feature_bits[] = {
    VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_F_VERSION_1, NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GSO, NET_F_GUEST_TSO4,
    NET_F_GUEST_TSO6, NET_F_GUEST_ECN, NET_F_GUEST_UFO, NET_F_HOST_TSO4, NET_F_HOST_TSO6,
    NET_F_HOST_ECN, NET_F_HOST_UFO, NET_F_MRG_RXBUF, VIRTIO_F_IOMMU_PLATFORM,
    VIRTIO_F_RING_PACKED, VIRTIO_F_RING_RESET, UINT32_MAX,
};

static bool connect_vhost_user(VirtIONet *n, Error **errp)
{
    VhostUserSetup setup = {
        .name = "vhost-user-net", .vq_index = 0, .nvqs = 2 * n->max_pairs,
        .units = n->max_pairs, .info_nvqs = 2,     /* as QEMU: the first pair's */
        .feature_bits = vu_net_feature_bits,
    };
    n->vu = vhost_user_connect(n->vu_chr, &n->vdev, &setup, errp);
    if (!n->vu) {
        return false;
    }
    n->vdev.host_features = vhost_user_mask_features(n->vu, n->vdev.host_features);
    return true;
}

/* sndbuf=: an explicit limit must take; the unlimited default is best effort. */
static bool set_tap_sndbuf(VirtIONet *n, const KeyValList *kv, Error **errp)
{
    uint64_t bytes = keyval_get_number(kv, "sndbuf", 0);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (!tap_set_sndbuf(n->pairs[i].fd, bytes) && keyval_get(kv, "sndbuf")) {
            error_setg_errno(errp, errno, "TUNSETSNDBUF ioctl failed");
            return false;
        }
    }
    return true;
}

static bool open_netdev(VirtIONet *n, const char *opts, bool mq, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "type", NULL, &kv, errp)) {
        return false;
    }
    bool frames = net_client_type_known(keyval_get(&kv, "type"));
    keyval_free(&kv);
    if (frames) {
        /* socket, hubport: one pair, the back-end parses its own options. */
        n->max_pairs = 1;
        n->pairs[0].nc = net_client_open(opts, errp);
        return n->pairs[0].nc != NULL;
    }
    if (!keyval_parse(opts, "type", netdev_params, &kv, errp)) {
        return false;
    }
    const char *type = keyval_get(&kv, "type");
    const char *script = keyval_get(&kv, "script");
    unsigned queues = keyval_get_number(&kv, "queues", 1);
    bool ok = false;
    if (type && strcmp(type, "vhost-user") == 0) {
        ok = open_vhost_user_netdev(n, &kv, mq, errp);
    } else if (!type || strcmp(type, "tap") != 0) {
        error_setg(errp, "netdev type '%s' is not supported (tap, socket, hubport or "
                   "vhost-user)", type ? type : "");
    } else if (script && strcmp(script, "no") != 0) {
        error_setg(errp, "tap: only script=no is supported");
    } else if (keyval_get(&kv, "fd") || keyval_get(&kv, "fds")) {
        ok = open_tap_fds(n, &kv, mq, errp);
    } else if (queues < 1 || queues > MAX_PAIRS) {
        error_setg(errp, "tap: queues must be between 1 and %d", MAX_PAIRS);
    } else {
        n->max_pairs = mq ? queues : 1;
        ok = true;
        char name[64];
        const char *ifname = keyval_get(&kv, "ifname");
        for (unsigned i = 0; ok && i < n->max_pairs; i++) {
            n->pairs[i].fd = tap_open(ifname, n->max_pairs > 1, name, errp);
            ok = n->pairs[i].fd >= 0;
            ifname = ok ? name : ifname;    /* every queue on the same interface */
        }
        n->ufo = ok && tap_probe_ufo(n->pairs[0].fd);
        bool vhost = keyval_get_bool(&kv, "vhost", false);
        for (unsigned i = 0; ok && vhost && i < n->max_pairs; i++) {
            n->pairs[i].vhost = vhost_dev_open("/dev/vhost-net", -1, 2 * i, 2, errp);
            ok = n->pairs[i].vhost != NULL;
        }
    }
    if (ok && type && strcmp(type, "tap") == 0) {
        ok = set_tap_sndbuf(n, &kv, errp);
    }
    keyval_free(&kv);
    return ok;
}

static uint64_t net_features(const VirtIONet *n)
{
    uint64_t f = 1ULL << NET_F_CSUM | 1ULL << NET_F_GUEST_CSUM | 1ULL << NET_F_CTRL_GUEST_OFFLOADS |
                 1ULL << NET_F_MAC | 1ULL << NET_F_GSO | 1ULL << NET_F_GUEST_TSO4 |
                 1ULL << NET_F_GUEST_TSO6 | 1ULL << NET_F_GUEST_ECN | 1ULL << NET_F_HOST_TSO4 |
                 1ULL << NET_F_HOST_TSO6 | 1ULL << NET_F_HOST_ECN | 1ULL << NET_F_MRG_RXBUF |
                 1ULL << NET_F_STATUS | 1ULL << NET_F_CTRL_VQ | 1ULL << NET_F_CTRL_RX |
                 1ULL << NET_F_CTRL_VLAN | 1ULL << NET_F_CTRL_RX_EXTRA |
                 1ULL << NET_F_GUEST_ANNOUNCE | 1ULL << NET_F_CTRL_MAC_ADDR;
    if (n->ufo) {
        f |= 1ULL << NET_F_GUEST_UFO | 1ULL << NET_F_HOST_UFO;
    }
    if (n->pairs[0].fd < 0 && !n->vu_chr) {
        /* Bare frames (socket, hubport, no peer): no header to carry offloads in. */
        f &= ~(1ULL << NET_F_CSUM | 1ULL << NET_F_GUEST_CSUM | 1ULL << NET_F_GSO |
               1ULL << NET_F_GUEST_TSO4 | 1ULL << NET_F_GUEST_TSO6 | 1ULL << NET_F_GUEST_ECN |
               1ULL << NET_F_HOST_TSO4 | 1ULL << NET_F_HOST_TSO6 | 1ULL << NET_F_HOST_ECN |
               1ULL << NET_F_CTRL_GUEST_OFFLOADS);
    }
    if (n->max_pairs > 1) {
        f |= 1ULL << NET_F_MQ;
    }
    return f;
}

static void setup_queues(VirtIONet *n, const VirtioCreateContext *ctx)
{
    unsigned nvqs = 2 * n->max_pairs + 1;
    virtio_device_init(&n->vdev, "virtio-net", VIRTIO_ID_NET, ctx->mem,
                       n->max_pairs > 1 ? 10 : 8, nvqs);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        NetQueuePair *qp = &n->pairs[i];
        qp->net = n;
        qp->rx = virtio_queue_setup(&n->vdev, 2 * i, QUEUE_SIZE, net_rx_kick);
        qp->tx = virtio_queue_setup(&n->vdev, 2 * i + 1, QUEUE_SIZE, net_tx);
        qp->packet = xmalloc(PACKET_MAX);
    }
    virtio_queue_setup(&n->vdev, nvqs - 1, CTRL_QUEUE_SIZE, net_ctrl);
}

static unsigned mac_counter;

static bool net_setup(VirtIONet *n, const VirtioCreateContext *ctx, const KeyValList *kv,
                      Error **errp)
{
    const char *netdev = keyval_get(kv, "netdev");
    const char *opts = netdev ? virtio_find_backend_opts(ctx->cfg->netdevs, netdev) : NULL;
    uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 + mac_counter++ };
    const char *mac_str = keyval_get(kv, "mac");
    for (unsigned i = 0; i < MAX_PAIRS; i++) {
        n->pairs[i].fd = -1;
    }
    if (mac_str && !parse_mac(mac_str, mac)) {
        error_setg(errp, "Property 'virtio-net-pci.mac' doesn't take value '%s'", mac_str);
        return false;
    }
    if (netdev && !opts) {
        error_setg(errp, "Property 'virtio-net-pci.netdev' can't find value '%s'", netdev);
        return false;
    }
    if (!netdev) {
        n->max_pairs = 1;       /* a NIC with its cable out: frames go nowhere */
    } else if (!open_netdev(n, opts, keyval_get_bool(kv, "mq", false), errp)) {
        return false;
    }
    setup_queues(n, ctx);
    n->vdev.host_features |= net_features(n);
    if (n->pairs[0].vhost) {
        n->vdev.host_features = vhost_masked_features(n, n->vdev.host_features);
    }
    if (n->vu_chr && !connect_vhost_user(n, errp)) {
        return false;
    }
    n->vdev.ops = &net_ops;
    n->vdev.opaque = n;
    set_active_pairs(n, 1);
    n->rx_mode[RX_PROMISC] = 1;     /* as after a reset */
    n->hdr_len = HDR_LEN_MRG;
    memcpy(n->vdev.config + CFG_MAC, mac, 6);
    memcpy(n->conf_mac, mac, 6);
    uint16_t st = htole16(STATUS_LINK_UP), mp = htole16(n->max_pairs);
    memcpy(n->vdev.config + CFG_STATUS, &st, 2);
    if (n->max_pairs > 1) {
        memcpy(n->vdev.config + CFG_MAX_PAIRS, &mp, 2);
    }
    return true;
}

bool virtio_net_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    VirtioPciOptions po;
    if (!keyval_parse(opts, "driver", net_params, &kv, errp)) {
        return false;
    }
    VirtIONet *n = xzalloc(sizeof(*n));
    bool ok = net_setup(n, ctx, &kv, errp) &&
              virtio_pci_parse_options(&kv, 2 * n->max_pairs + 2, &po, errp);
    if (ok) {
        virtio_pci_apply_feature_props(&kv, &n->vdev);
        ok = virtio_pci_plug(ctx, &kv, "virtio-net-pci", &n->vdev, 0x020000, &po, errp);
    }
    keyval_free(&kv);
    if (!ok) {
        net_free(n);
    }
    return ok;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *virtio_net_pci_params(void);
const OptParam *virtio_net_pci_params(void)
{
    return net_params;
}

/* ---- announce-self ---- */

/* A RARP request for our own MAC, as switches learn a moved address from. */
static void send_rarp(NetQueuePair *qp, const uint8_t mac[6])
{
    uint8_t buf[HDR_LEN_MRG + 60] = { 0 };
    uint8_t *f = buf + HDR_LEN_MRG;
    memset(f, 0xff, 6);
    memcpy(f + 6, mac, 6);
    static const uint8_t arp[] = { 0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03 };
    memcpy(f + 12, arp, sizeof(arp));
    memcpy(f + 22, mac, 6);             /* sender MAC; sender IP 0 */
    memcpy(f + 32, mac, 6);             /* target MAC; target IP 0; padding to 60 */
    if (qp->nc) {
        struct iovec iov = { f, 60 };
        net_client_send(qp->nc, &iov, 1);
    } else if (qp->fd >= 0) {
        /* The tap expects the header length the driver negotiated (zeros: no offloads). */
        ssize_t r = write(qp->fd, buf + HDR_LEN_MRG - qp->net->hdr_len, qp->net->hdr_len + 60);
        (void)r;
    }
}

void virtio_net_announce(const char *only_id)
{
    for (VirtIODevice *vdev = virtio_device_first(); vdev; vdev = vdev->next) {
        if (vdev->ops != &net_ops) {
            continue;
        }
        if (only_id) {
            char *path = xasprintf("/machine/peripheral/%s/virtio-backend", only_id);
            bool match = vdev->path && !strcmp(vdev->path, path);
            free(path);
            if (!match) {
                continue;
            }
        }
        VirtIONet *n = vdev->opaque;
        if (n->vu) {
            continue;           /* the vhost-user back-end owns the wire */
        }
        send_rarp(&n->pairs[0], vdev->config + CFG_MAC);
        if (virtio_driver_ok(vdev) && has(n, NET_F_GUEST_ANNOUNCE) && has(n, NET_F_CTRL_VQ)) {
            /* Ask the driver to send its own gratuitous ARPs too. */
            vdev->config[CFG_STATUS] |= STATUS_ANNOUNCE;
            virtio_notify_config(vdev);
        }
    }
}
