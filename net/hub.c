/*
 * -netdev hubport,hubid=N: ports of an emulated hub. A frame sent into one
 * port comes out of every other port of the same hub; a hub with a single
 * port drops what it is sent. Each port keeps at most HUB_QUEUE_MAX frames
 * its NIC has not taken yet; more are dropped, as a switch drops when a
 * port's buffer is full. Delivery runs from the main loop, never inside the
 * sender's call.
 */
#include "net/net.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/main-loop.h"
#include "util/keyval.h"
#include "util/osdep.h"

#define HUB_QUEUE_MAX 64

typedef struct HubPort HubPort;

typedef struct Hub {
    uint64_t id;
    HubPort *ports;
    struct Hub *next;
} Hub;

typedef struct Frame {
    size_t len;
    struct Frame *next;
    uint8_t data[];
} Frame;

struct HubPort {
    NetClient nc;
    Hub *hub;
    HubPort *next;
    Frame *head, **tail;
    unsigned queued;
    bool notify_scheduled;
    bool closing;               /* freed by the scheduled notification */
};

static Hub *hubs;

static const OptParam hubport_params[] = {
    { "type", OPT_STRING, "back-end type" },
    { "id", OPT_STRING, "netdev id" },
    { "hubid", OPT_NUMBER, "hub number" },
    { "netdev", OPT_STRING, "netdev to connect to the hub (not supported)" },
    { NULL },
};

static void port_free(HubPort *p)
{
    while (p->head) {
        Frame *f = p->head;
        p->head = f->next;
        free(f);
    }
    free(p->nc.id);
    free(p);
}

static void port_notify(void *opaque)
{
    HubPort *p = opaque;
    p->notify_scheduled = false;
    if (p->closing) {
        port_free(p);
        return;
    }
    if (p->head && p->nc.ready) {
        p->nc.ready(p->nc.ready_opaque);
    }
}

static void schedule_notify(HubPort *p)
{
    if (!p->notify_scheduled && p->nc.ready && p->head) {
        p->notify_scheduled = true;
        main_loop_schedule(port_notify, p);
    }
}

static void hub_send(NetClient *nc, const struct iovec *iov, int iovcnt, size_t len)
{
    HubPort *from = (HubPort *)nc;
    for (HubPort *p = from->hub->ports; p; p = p->next) {
        if (p == from || p->queued >= HUB_QUEUE_MAX) {
            continue;
        }
        Frame *f = xmalloc(sizeof(*f) + len);
        f->len = len;
        f->next = NULL;
        size_t off = 0;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(f->data + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        *p->tail = f;
        p->tail = &f->next;
        p->queued++;
        schedule_notify(p);
    }
}

static ssize_t hub_recv(NetClient *nc, uint8_t *buf, size_t max)
{
    HubPort *p = (HubPort *)nc;
    while (p->head) {
        Frame *f = p->head;
        p->head = f->next;
        if (!p->head) {
            p->tail = &p->head;
        }
        p->queued--;
        size_t n = f->len;
        bool fits = n <= max;
        if (fits) {
            memcpy(buf, f->data, n);
        }
        free(f);
        if (fits) {
            return n;
        }
    }
    return 0;
}

static void hub_watch(NetClient *nc)
{
    schedule_notify((HubPort *)nc);
}

static void hub_close(NetClient *nc)
{
    HubPort *p = (HubPort *)nc;
    Hub *h = p->hub;
    for (HubPort **pp = &h->ports; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (!h->ports) {
        for (Hub **hp = &hubs; *hp; hp = &(*hp)->next) {
            if (*hp == h) {
                *hp = h->next;
                break;
            }
        }
        free(h);
    }
    if (p->notify_scheduled) {
        p->closing = true;      /* the pending notification frees it */
        return;
    }
    port_free(p);
}

static const NetClientOps hub_ops = {
    .send = hub_send, .recv = hub_recv, .watch = hub_watch, .close = hub_close,
};

NetClient *net_hubport_open(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "type", hubport_params, &kv, errp)) {
        return NULL;
    }
    NetClient *ret = NULL;
    if (!keyval_get(&kv, "hubid")) {
        error_setg(errp, "Parameter 'hubid' is missing");
    } else if (keyval_get(&kv, "netdev")) {
        error_setg(errp, "hubport: netdev= is not supported by vireo");
    } else {
        uint64_t id = keyval_get_number(&kv, "hubid", 0);
        Hub *h = hubs;
        while (h && h->id != id) {
            h = h->next;
        }
        if (!h) {
            h = xzalloc(sizeof(*h));
            h->id = id;
            h->next = hubs;
            hubs = h;
        }
        HubPort *p = xzalloc(sizeof(*p));
        p->nc.ops = &hub_ops;
        p->nc.id = keyval_get(&kv, "id") ? xstrdup(keyval_get(&kv, "id")) : NULL;
        p->hub = h;
        p->tail = &p->head;
        p->next = h->ports;
        h->ports = p;
        ret = &p->nc;
    }
    keyval_free(&kv);
    return ret;
}
