/*
 * tun/tap back-end for -netdev tap: open an interface with a virtio net
 * header (IFF_VNET_HDR) and set its offloads.
 */
#ifndef VIREO_NET_TAP_H
#define VIREO_NET_TAP_H

#include <stdbool.h>
#include <stdio.h>

#include "util/error.h"

/* Open (creating if needed) tap ifname (NULL: kernel picks); non-blocking fd. */
int tap_open(const char *ifname, bool multi_queue, char *actual_name, Error **errp);
bool tap_set_vnet_hdr_len(int fd, int len);
bool tap_set_offload(int fd, bool csum, bool tso4, bool tso6, bool ecn, bool ufo);
/* Does the host kernel take UFO on this tap? */
bool tap_probe_ufo(int fd);

#endif
