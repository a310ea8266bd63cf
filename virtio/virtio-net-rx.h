/*
 * Receive side of virtio-net shared by vireo's device and the vhost-user-net
 * daemon: put one packet (virtio net header first) into the rx ring, over
 * several chains when the driver negotiated mergeable rx buffers.
 */
#ifndef VIREO_VIRTIO_NET_RX_H
#define VIREO_VIRTIO_NET_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"

#define VIRTIO_NET_F_MRG_RXBUF_BIT  15
#define VIRTIO_NET_HDR_LEN_MRG      12      /* virtio_net_hdr_v1 / _mrg_rxbuf */
#define VIRTIO_NET_HDR_LEN_LEGACY   10
#define VIRTIO_NET_RX_CHAINS_MAX    64

/* The header length the driver expects with features f. */
unsigned virtio_net_hdr_len(uint64_t features);

/* Called for each chain after it went to the used ring (dirty log, inflight). */
typedef void VirtioNetRxPushed(void *opaque, const VirtQueueElement *elem, uint32_t written);

/*
 * Deliver packet[0, len) (hdr_len bytes of header first; num_buffers is
 * filled in here) into rx. Returns the chains used; 0 when the ring has too
 * little room now (nothing taken, try again after the next kick); -1 when
 * the packet can never fit (one chain too small without mergeable buffers,
 * or more than VIRTIO_NET_RX_CHAINS_MAX needed): drop it.
 */
int virtio_net_rx_fill(VirtQueue *rx, bool mergeable, unsigned hdr_len, uint8_t *packet,
                       size_t len, VirtioNetRxPushed *pushed, void *opaque);

#endif
