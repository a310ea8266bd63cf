/*
 * The vhost-user back-end channel. See virtio/vhost-user-chan.h.
 */
#include "virtio/vhost-user-chan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "util/log.h"
#include "util/osdep.h"
#include "virtio/vhost-user-wire.h"

struct VhostUserChan {
    const char *name;           /* the device's, for messages */
    const VhostUserChanOps *ops;
    void *opaque;
    int sock;                   /* our end, non-blocking */
    VhostUserReader in;
};

static const char *backend_request_name(uint32_t req)
{
    switch (req) {
    case VHOST_USER_BACKEND_IOTLB_MSG:              return "IOTLB_MSG";
    case VHOST_USER_BACKEND_CONFIG_CHANGE_MSG:      return "CONFIG_CHANGE_MSG";
    case VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG: return "VRING_HOST_NOTIFIER_MSG";
    case VHOST_USER_BACKEND_VRING_CALL:             return "VRING_CALL";
    case VHOST_USER_BACKEND_VRING_ERR:              return "VRING_ERR";
    default:                                        return "an unknown request";
    }
}

static void chan_close(VhostUserChan *c)
{
    if (c->sock >= 0) {
        main_loop_set_fd_handler(c->sock, NULL, NULL, NULL);
        close(c->sock);
        c->sock = -1;
    }
    vhost_user_reader_reset(&c->in);
}

/* The ack the back-end asked for: the same request, the reply flag, a u64. */
static bool send_ack(VhostUserChan *c, uint32_t req, uint64_t value, Error **errp)
{
    VhostUserMsg m = {
        .hdr = { .request = req, .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
                 .size = sizeof(uint64_t) },
        .payload.u64 = value,
    };
    return vhost_user_send(c->sock, &m, sizeof(m.hdr) + sizeof(uint64_t), NULL, 0, errp);
}

/*
 * One whole request: ack it when asked, then act. False: stop reading now,
 * because the channel is gone or the owner was called (which may free it;
 * anything further in the socket wakes the main loop again).
 */
static bool serve(VhostUserChan *c)
{
    const VhostUserHeader h = c->in.msg.hdr;
    bool config = h.request == VHOST_USER_BACKEND_CONFIG_CHANGE_MSG && c->ops->config_change;
    /* Nothing the back-end sent is kept: host-notifier areas are not mapped. */
    vhost_user_reader_reset(&c->in);
    if (!config) {
        LOG_GUEST_WARN("%s: the back-end asked for %s (request %u), which vireo does not "
                       "support", c->name, backend_request_name(h.request), h.request);
    }
    if (h.flags & VHOST_USER_NEED_REPLY_MASK) {
        Error *err = NULL;
        if (!send_ack(c, h.request, config ? 0 : 1, &err)) {
            char why[160];
            snprintf(why, sizeof(why), "back-end channel: %s", error_get_pretty(err));
            error_free(err);
            chan_close(c);
            c->ops->lost(c->opaque, why);
            return false;
        }
    }
    if (config) {
        /* Acked first: a back-end waiting for the ack can answer GET_CONFIG. */
        c->ops->config_change(c->opaque);
        return false;
    }
    return true;
}

static void chan_readable(void *opaque)
{
    VhostUserChan *c = opaque;
    /* A bounded number per wake-up, so a chatty back-end cannot starve the loop. */
    for (int budget = 16; budget > 0 && c->sock >= 0; budget--) {
        Error *err = NULL;
        int rc = vhost_user_read_request(c->sock, &c->in, &err);
        if (rc == 0) {
            return;
        }
        if (rc == -2) {
            chan_close(c);          /* the main socket tells whether the back-end died */
            return;
        }
        if (rc < 0) {
            char why[200];
            snprintf(why, sizeof(why), "back-end channel: %s", error_get_pretty(err));
            error_free(err);
            chan_close(c);
            c->ops->lost(c->opaque, why);
            return;
        }
        if (!serve(c)) {
            return;
        }
    }
}

VhostUserChan *vhost_user_chan_new(const char *name, const VhostUserChanOps *ops, void *opaque,
                                   int *backend_end, Error **errp)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        error_setg_errno(errp, errno, "%s: cannot create the back-end channel", name);
        return NULL;
    }
    int fl = fcntl(sv[0], F_GETFL);
    if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0) {
        error_setg_errno(errp, errno, "%s: cannot set up the back-end channel", name);
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    VhostUserChan *c = xzalloc(sizeof(*c));
    c->name = name;
    c->ops = ops;
    c->opaque = opaque;
    c->sock = sv[0];
    main_loop_set_fd_handler(c->sock, chan_readable, NULL, c);
    *backend_end = sv[1];
    return c;
}

void vhost_user_chan_free(VhostUserChan *c)
{
    if (c) {
        chan_close(c);
        free(c);
    }
}
