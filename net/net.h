/*
 * Network back-ends that carry plain Ethernet frames (no virtio net
 * header), for -netdev socket and -netdev hubport; a NIC's queue pair owns
 * one client. tap stays inside virtio-net (its frames keep the header).
 *
 *   NetClient *nc = net_client_open(netdev_opts, errp);
 *   net_client_set_receive_handler(nc, frames_ready, opaque);
 *   ... frames_ready(opaque): while ((n = net_client_recv(nc, buf, max)) > 0) ...
 *   net_client_send(nc, iov, cnt);    // one frame; dropped if the peer is full
 *   net_client_close(nc);
 */
#ifndef VIREO_NET_NET_H
#define VIREO_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/error.h"

#define NET_FRAME_MAX   (64 * 1024 + 4)     /* largest frame a client carries */

typedef struct NetClient NetClient;

typedef struct NetClientOps {
    void (*send)(NetClient *nc, const struct iovec *iov, int iovcnt, size_t len);
    /* One frame into buf: its length; 0: none now; -1: none ever (the peer is gone). */
    ssize_t (*recv)(NetClient *nc, uint8_t *buf, size_t max);
    /* (Re)install or remove (NULL) the watch that calls nc->ready. */
    void (*watch)(NetClient *nc);
    void (*close)(NetClient *nc);
} NetClientOps;

struct NetClient {
    const NetClientOps *ops;
    char *id;
    void (*ready)(void *opaque);    /* frames may be waiting */
    void *ready_opaque;
};

/* Is type one of these back-ends ("socket", "hubport")? */
bool net_client_type_known(const char *type);
/* From a whole -netdev option string. */
NetClient *net_client_open(const char *opts, Error **errp);
void net_client_send(NetClient *nc, const struct iovec *iov, int iovcnt);
ssize_t net_client_recv(NetClient *nc, uint8_t *buf, size_t max);
void net_client_set_receive_handler(NetClient *nc, void (*ready)(void *opaque), void *opaque);
void net_client_close(NetClient *nc);

/* Per type (net/socket.c, net/hub.c). */
NetClient *net_socket_open(const char *opts, Error **errp);
NetClient *net_hubport_open(const char *opts, Error **errp);

#endif
