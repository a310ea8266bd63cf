/*
 * Between the library's files: one received message and the socket I/O.
 */
#ifndef VIREO_VHOST_USER_PROTO_H
#define VIREO_VHOST_USER_PROTO_H

#include <stdbool.h>

#include "util/error.h"
#include "vhost-user/vhost-user-msg.h"

typedef struct VuMsg {
    VhostUserHeader hdr;
    VhostUserPayload payload;
    int fds[VHOST_USER_MAX_FDS];    /* received; a handler that keeps one sets it to -1 */
    unsigned nfds;
    /* The reply a handler prepares (requests that have one). */
    uint32_t reply_size;
    int reply_fd;                   /* sent with the reply, then closed; -1: none */
} VuMsg;

/* 1: a message; 0: the peer closed; -1: a broken message (errp set). */
int vu_msg_recv(int fd, VuMsg *m, Error **errp);
bool vu_msg_send(int fd, uint32_t request, const void *payload, uint32_t size, int send_fd,
                 Error **errp);
void vu_msg_close_fds(VuMsg *m);

#endif
