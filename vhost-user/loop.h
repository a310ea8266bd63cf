/*
 * A small epoll event loop for the back-end daemons: one handler per fd,
 * safe to change from inside a handler, plus idle callbacks that run every
 * iteration (rings in polling mode).
 */
#ifndef VIREO_VHOST_USER_LOOP_H
#define VIREO_VHOST_USER_LOOP_H

#include <stdbool.h>

#include "util/error.h"

typedef void VuFdHandler(void *opaque);

typedef struct VuLoop VuLoop;

VuLoop *vu_loop_new(Error **errp);
void vu_loop_free(VuLoop *loop);
/* Call fn(opaque) whenever fd is readable; fn NULL removes the handler. */
bool vu_loop_set_fd(VuLoop *loop, int fd, VuFdHandler *fn, void *opaque, Error **errp);
/* Call fn(opaque) on every iteration while set (busy polling); NULL stops. */
void vu_loop_set_poll(VuLoop *loop, void *key, VuFdHandler *fn, void *opaque);
/* Wait up to timeout_ms (-1: forever; 0 while polling) and run handlers. */
void vu_loop_run_once(VuLoop *loop, int timeout_ms);

/*
 * The daemons' way out: SIGTERM, SIGINT and SIGHUP, blocked and read from a
 * signalfd, set *quit; SIGPIPE is ignored (a frontend gone mid-reply is
 * handled as a drop). Watch fd with vu_quit_signals_ready and the
 * VuQuitSignals as opaque.
 */
typedef struct VuQuitSignals {
    int fd;                     /* the signalfd; -1 (errno set) if it failed */
    bool *quit;                 /* set when one of the signals arrives */
} VuQuitSignals;

VuQuitSignals vu_quit_signals_open(bool *quit);
void vu_quit_signals_ready(void *opaque);

#endif
