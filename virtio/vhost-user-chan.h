/*
 * The vhost-user back-end channel (BACKEND_REQ, once SLAVE_REQ): a socket
 * pair whose far end the frontend hands over with SET_BACKEND_REQ_FD, so
 * the back-end can ask things of the frontend. vireo serves
 * CONFIG_CHANGE_MSG (the device's configuration changed, e.g. a resized
 * disk) and answers every other request (IOTLB, host notifiers, in-band
 * calls: none of them negotiated) as unsupported. With NEED_REPLY set,
 * the back-end gets a REPLY_ACK-style u64: 0 for done, 1 for refused.
 *
 * The channel is read without blocking, a message at a time as its bytes
 * arrive. A malformed message (version, reply flag, an oversized payload)
 * is a protocol break reported through ops->lost; the channel's end of
 * file only closes it (the main socket tells whether the back-end died).
 */
#ifndef VIREO_VIRTIO_VHOST_USER_CHAN_H
#define VIREO_VIRTIO_VHOST_USER_CHAN_H

#include <stdbool.h>

#include "util/error.h"

typedef struct VhostUserChan VhostUserChan;

typedef struct VhostUserChanOps {
    /* CONFIG_CHANGE_MSG, after the ack went out; NULL: refused. */
    void (*config_change)(void *opaque);
    /* The back-end broke the channel's protocol; the channel is already closed. */
    void (*lost)(void *opaque, const char *why);
} VhostUserChanOps;

/*
 * A new channel served by the main loop. *backend_end is the descriptor to
 * send with SET_BACKEND_REQ_FD; the caller closes it once it is sent.
 */
VhostUserChan *vhost_user_chan_new(const char *name, const VhostUserChanOps *ops, void *opaque,
                                   int *backend_end, Error **errp);
void vhost_user_chan_free(VhostUserChan *c);

#endif
