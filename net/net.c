/*
 * Frame back-ends: the dispatch. See net/net.h.
 */
#include "net/net.h"

#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

bool net_client_type_known(const char *type)
{
    return type && (!strcmp(type, "socket") || !strcmp(type, "hubport"));
}

NetClient *net_client_open(const char *opts, Error **errp)
{
    size_t n = strcspn(opts, ",");
    if (!strncmp(opts, "type=", 5)) {
        opts += 5;
        n -= 5;
    }
    if (n == 6 && !strncmp(opts, "socket", 6)) {
        return net_socket_open(opts, errp);
    }
    if (n == 7 && !strncmp(opts, "hubport", 7)) {
        return net_hubport_open(opts, errp);
    }
    error_setg(errp, "netdev type '%.*s' is not a frame back-end", (int)n, opts);
    return NULL;
}

void net_client_send(NetClient *nc, const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
        if (len > NET_FRAME_MAX) {
            return;         /* no wire carries it: dropped */
        }
    }
    nc->ops->send(nc, iov, iovcnt, len);
}

ssize_t net_client_recv(NetClient *nc, uint8_t *buf, size_t max)
{
    return nc->ops->recv(nc, buf, max);
}

void net_client_set_receive_handler(NetClient *nc, void (*ready)(void *opaque), void *opaque)
{
    nc->ready = ready;
    nc->ready_opaque = opaque;
    nc->ops->watch(nc);
}

void net_client_close(NetClient *nc)
{
    if (nc) {
        nc->ready = NULL;
        nc->ops->watch(nc);
        nc->ops->close(nc);
    }
}
