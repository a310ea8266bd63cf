/*
 * tun/tap back-end for -netdev tap: open an interface with a virtio net
 * header (IFF_VNET_HDR) and set its offloads.
 */
#ifndef VIREO_NET_TAP_H
#define VIREO_NET_TAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/error.h"

/* Open (creating if needed) tap ifname (NULL: kernel picks); non-blocking fd. */
int tap_open(const char *ifname, bool multi_queue, char *actual_name, Error **errp);
/* Take over an inherited tap fd: it must carry the virtio net header; made non-blocking. */
bool tap_adopt_fd(int fd, Error **errp);
/* Limit the bytes in flight from the tap into the host (0: no limit). */
bool tap_set_sndbuf(int fd, uint64_t bytes);
bool tap_set_vnet_hdr_len(int fd, int len);
bool tap_set_offload(int fd, bool csum, bool tso4, bool tso6, bool ecn, bool ufo);
/*
 * Attach or detach one queue of a multi-queue tap: the kernel steers
 * packets only to attached queues, so queues the guest has not enabled
 * must be detached or their packets would wait there unread.
 */
bool tap_set_queue_enabled(int fd, bool enabled);
/* Does the host kernel take UFO on this tap? */
bool tap_probe_ufo(int fd);

#endif
