/*
 * announce-self: every virtio-net NIC (or the listed ones) announces its
 * MAC address on its network, 'rounds' times: at once, then after
 * 'initial' ms, each later gap 'step' ms longer, at most 'max' ms. With an
 * id the announcement can be changed or stopped (rounds 0) by a later
 * announce-self with the same id. Runs on the host clock, so it also works
 * while the guest is paused.
 */
#include <stdlib.h>
#include <string.h>

#include "core/main-loop.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"
#include "virtio/virtio-pci.h"

typedef struct Announcer {
    char *id;                   /* NULL: anonymous */
    int64_t initial, max, step, rounds_left, done;
    char **interfaces;          /* NULL-terminated; NULL: every NIC */
    Timer *timer;
    struct Announcer *next;
} Announcer;

static Announcer *announcers;

static void announcer_free(Announcer *a)
{
    for (Announcer **p = &announcers; *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            break;
        }
    }
    timer_free(a->timer);
    for (char **i = a->interfaces; i && *i; i++) {
        free(*i);
    }
    free(a->interfaces);
    free(a->id);
    free(a);
}

static void announce_once(void *opaque)
{
    Announcer *a = opaque;
    if (a->interfaces) {
        for (char **i = a->interfaces; *i; i++) {
            virtio_net_announce(*i);
        }
    } else {
        virtio_net_announce(NULL);
    }
    if (--a->rounds_left <= 0) {
        announcer_free(a);
        return;
    }
    int64_t delay = a->initial + a->step * a->done++;
    delay = MIN(delay, a->max);
    timer_mod(a->timer, clock_get_ns(CLOCK_REALTIME_HOST) + delay * 1000000);
}

void qmp_announce_self(int64_t initial, int64_t max, int64_t rounds, int64_t step,
                       bool has_interfaces, strList *interfaces, bool has_id, const char *id,
                       Error **errp)
{
    if (initial < 1 || max < 1 || step < 0 || rounds < 0 || initial > 100000 ||
        max > 100000 || step > 10000 || rounds > 1000) {
        error_setg(errp, "Parameter out of range (initial and max 1..100000 ms, step 0..10000 "
                   "ms, rounds 0..1000)");
        return;
    }
    Announcer *a = NULL;
    for (Announcer *x = announcers; x && has_id; x = x->next) {
        if (x->id && !strcmp(x->id, id)) {
            a = x;
        }
    }
    if (a) {
        announcer_free(a);      /* the new parameters replace the running announcement */
    }
    if (rounds == 0) {
        return;
    }
    a = xzalloc(sizeof(*a));
    a->id = has_id ? xstrdup(id) : NULL;
    a->initial = initial;
    a->max = max;
    a->step = step;
    a->rounds_left = rounds;
    if (has_interfaces) {
        size_t n = 0;
        for (strList *l = interfaces; l; l = l->next) {
            n++;
        }
        a->interfaces = xzalloc((n + 1) * sizeof(char *));
        n = 0;
        for (strList *l = interfaces; l; l = l->next) {
            a->interfaces[n++] = xstrdup(l->value);
        }
    }
    a->timer = timer_new(CLOCK_REALTIME_HOST, announce_once, a);
    a->next = announcers;
    announcers = a;
    announce_once(a);
}
