/*
 * vireo-vhost-user-net: a vhost-user net back-end on a tap interface. Queue
 * pair i is rings 2i (rx) and 2i+1 (tx) and tap queue i.
 */
#ifndef VIREO_DAEMONS_VHOST_USER_NET_H
#define VIREO_DAEMONS_VHOST_USER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhost-user/vhost-user.h"

#define NET_MAX_PAIRS   (VU_MAX_QUEUES / 2)

typedef struct NetDaemon NetDaemon;

typedef struct NetPair {
    NetDaemon *nd;
    unsigned index;
    int tap_fd;
    bool watching;              /* the tap fd is in the loop */
    bool attached;              /* the tap queue takes packets (multi-queue taps) */
    uint8_t *packet;            /* a frame read from the tap, waiting for rx buffers */
    size_t packet_len;          /* 0: none */
} NetPair;

struct NetDaemon {
    VuDev dev;
    unsigned pairs;
    NetPair pair[NET_MAX_PAIRS];
    bool ufo;                   /* the host kernel takes UFO on the tap */
    bool has_mac;               /* --mac: offered in config space (F_MAC, PROTOCOL_F_CONFIG) */
    bool features_applied;      /* the tap matches applied_features */
    uint64_t applied_features;
    unsigned hdr_len;           /* virtio net header length the tap uses now */
    uint64_t rx_dropped, tx_dropped;
};

/*
 * Serve the frontend on listen_fd with one tap fd per queue pair; mac (NULL:
 * none) is the guest's address, offered to the driver through GET_CONFIG.
 */
bool net_daemon_init(NetDaemon *nd, VuLoop *loop, int listen_fd, const int *tap_fds,
                     unsigned pairs, const uint8_t *mac, Error **errp);
void net_daemon_cleanup(NetDaemon *nd);

/* The reverse-ARP request that announces mac (broadcast, ethertype 0x8035). */
#define RARP_FRAME_LEN  60
void rarp_frame(uint8_t frame[RARP_FRAME_LEN], const uint8_t mac[6]);

#endif
