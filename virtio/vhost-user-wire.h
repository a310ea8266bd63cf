/* The vhost-user frontend's message I/O (virtio/vhost-user-wire.c). */
#ifndef VIREO_VIRTIO_VHOST_USER_WIRE_H
#define VIREO_VIRTIO_VHOST_USER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "vhost-user/vhost-user-msg.h"

/* Send len bytes on a non-blocking socket, nfds descriptors on the first byte. */
bool vhost_user_send(int sock, const void *buf, size_t len, const int *fds, unsigned nfds,
                     Error **errp);
/*
 * One reply to `request`: the reply flag and version set, the same request
 * id, a payload of exactly want_size bytes (the size field is checked
 * before anything is read into m) and at most max_fds descriptors, which
 * go to fds (closed when fds is NULL or the reply is bad).
 */
bool vhost_user_recv_reply(int sock, uint32_t request, VhostUserMsg *m, size_t want_size,
                           int *fds, unsigned max_fds, unsigned *nfds, Error **errp);
/* "SET_MEM_TABLE", for messages. */
const char *vhost_user_request_name(uint32_t req);

#endif
