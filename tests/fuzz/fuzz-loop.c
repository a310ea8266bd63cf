/* See fuzz-loop.h. */
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/main-loop.h"
#include "fuzz-loop.h"

#define MAX_FDS     64
#define MAX_SCHED   256

typedef struct Watch {
    int fd;
    IOHandler *read, *write;
    void *opaque;
} Watch;

static Watch watches[MAX_FDS];
static unsigned nr_watches;
static struct {
    IOHandler *cb;
    void *opaque;
} sched[MAX_SCHED];
static unsigned nr_sched;

void __wrap_main_loop_set_fd_handler(int fd, IOHandler *read, IOHandler *write, void *opaque);
void __wrap_main_loop_schedule(IOHandler *cb, void *opaque);

/* Instead of the real loop's (which never runs here, and would keep every
 * removed handler until its next pass). */
void __wrap_main_loop_set_fd_handler(int fd, IOHandler *read, IOHandler *write, void *opaque)
{
    unsigned i;
    for (i = 0; i < nr_watches && watches[i].fd != fd; i++) {
    }
    if (!read && !write) {
        if (i < nr_watches) {
            watches[i] = watches[--nr_watches];
        }
    } else if (i < nr_watches) {
        watches[i] = (Watch){ fd, read, write, opaque };
    } else if (nr_watches < MAX_FDS) {
        watches[nr_watches++] = (Watch){ fd, read, write, opaque };
    } else {
        abort();    /* more descriptors watched than any target here opens: a leak */
    }
}

void __wrap_main_loop_schedule(IOHandler *cb, void *opaque)
{
    if (nr_sched == MAX_SCHED) {
        abort();
    }
    sched[nr_sched].cb = cb;
    sched[nr_sched].opaque = opaque;
    nr_sched++;
}

unsigned fuzz_loop_pump(unsigned max_rounds)
{
    unsigned ran = 0;
    for (unsigned round = 0; round < max_rounds; round++) {
        bool any = false;
        for (unsigned i = 0; i < nr_watches; i++) {
            Watch w = watches[i];
            struct pollfd p = { .fd = w.fd,
                                .events = (w.read ? POLLIN : 0) | (w.write ? POLLOUT : 0) };
            if (poll(&p, 1, 0) != 1) {
                continue;
            }
            /* A handler may change the table: look again next round. */
            if (w.read && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
                w.read(w.opaque);
            } else if (w.write && (p.revents & (POLLOUT | POLLERR))) {
                w.write(w.opaque);
            } else {
                continue;
            }
            any = true;
            ran++;
            break;
        }
        while (nr_sched) {
            IOHandler *cb = sched[0].cb;
            void *opaque = sched[0].opaque;
            for (unsigned k = 1; k < nr_sched; k++) {
                sched[k - 1] = sched[k];
            }
            nr_sched--;
            cb(opaque);
            any = true;
            ran++;
        }
        if (!any) {
            break;
        }
    }
    return ran;
}
