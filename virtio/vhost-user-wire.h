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
/*
 * A request arriving on a non-blocking socket in pieces (the back-end
 * channel): header and payload accumulate across calls, so a peer that
 * sends half a message never holds the main loop.
 */
typedef struct VhostUserReader {
    VhostUserMsg msg;
    size_t got;                     /* bytes of header and payload so far */
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds;
} VhostUserReader;

/*
 * Read what is there: 1 when r->msg is a whole request (version 1, no
 * reply flag, a payload that fits VhostUserPayload), 0 when more is to
 * come, -2 when the peer closed the socket between messages, -1 with errp
 * set on a malformed or cut message.
 */
int vhost_user_read_request(int sock, VhostUserReader *r, Error **errp);
/* Close the descriptors r holds and make it ready for the next message. */
void vhost_user_reader_reset(VhostUserReader *r);

/* "SET_MEM_TABLE", for messages. */
const char *vhost_user_request_name(uint32_t req);

#endif
