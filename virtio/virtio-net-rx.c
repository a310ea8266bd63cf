/*
 * Filling virtio-net receive buffers. All or nothing: chains are taken until
 * the packet fits, and given back untouched when it does not, so the driver
 * never sees a partial packet.
 */
#include "virtio/virtio-net-rx.h"

#include <endian.h>
#include <string.h>

unsigned virtio_net_hdr_len(uint64_t features)
{
    return (features >> VIRTIO_F_VERSION_1 & 1) || (features >> VIRTIO_NET_F_MRG_RXBUF_BIT & 1)
           ? VIRTIO_NET_HDR_LEN_MRG : VIRTIO_NET_HDR_LEN_LEGACY;
}

static void give_back(VirtQueue *rx, VirtQueueElement *elems, unsigned k)
{
    while (k) {
        virtqueue_unpop(rx, &elems[--k]);   /* newest first: indexes stay consistent */
    }
}

/* Take chains until need bytes fit: their count, 0 (not yet) or -1 (never). */
static int take_chains(VirtQueue *rx, bool mergeable, VirtQueueElement *elems, size_t need)
{
    unsigned k = 0;
    size_t room = 0;
    while (room < need && k < VIRTIO_NET_RX_CHAINS_MAX && virtqueue_pop(rx, &elems[k])) {
        room += elems[k].in_len;
        k++;
        if (!mergeable) {
            break;
        }
    }
    if (room >= need) {
        return k;
    }
    bool never = k == VIRTIO_NET_RX_CHAINS_MAX || (!mergeable && k == 1);
    give_back(rx, elems, k);
    return never ? -1 : 0;
}

int virtio_net_rx_fill(VirtQueue *rx, bool mergeable, unsigned hdr_len, uint8_t *packet,
                       size_t len, VirtioNetRxPushed *pushed, void *opaque)
{
    VirtQueueElement elems[VIRTIO_NET_RX_CHAINS_MAX];
    if (len < hdr_len) {
        return -1;
    }
    int k = take_chains(rx, mergeable, elems, len);
    if (k <= 0) {
        return k;
    }
    if (hdr_len == VIRTIO_NET_HDR_LEN_MRG) {
        uint16_t nb = htole16(k);
        memcpy(packet + VIRTIO_NET_HDR_LEN_LEGACY, &nb, 2);    /* num_buffers */
    }
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        size_t c = iov_from_buf(elems[i].in_sg, elems[i].in_num, 0, packet + off, len - off);
        virtqueue_push(rx, &elems[i], c);
        if (pushed) {
            pushed(opaque, &elems[i], c);
        }
        virtqueue_element_free(&elems[i]);
        off += c;
    }
    return k;
}
