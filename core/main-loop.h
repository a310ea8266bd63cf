/*
 * The main loop: one thread that owns the monitor, chardevs, timers and
 * device back-end completions. It holds the big lock (core/lock.h) while it
 * runs any handler, so handlers need no locking of their own against
 * each other or against vCPU threads doing device dispatch.
 */
#ifndef VIREO_CORE_MAIN_LOOP_H
#define VIREO_CORE_MAIN_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef void IOHandler(void *opaque);

bool main_loop_init(Error **errp);
/* Runs until main_loop_quit(); returns the exit status that was requested. */
int main_loop_run(void);
/* Ask the loop to return after the current iteration; thread-safe. */
void main_loop_quit(int status);

/*
 * Watch fd for readability (read != NULL) and/or writability (write != NULL).
 * Passing NULL for both stops watching fd. Replaces an earlier registration.
 */
void main_loop_set_fd_handler(int fd, IOHandler *read, IOHandler *write, void *opaque);

/*
 * fd is readable while the host has asked vireo to stop (a quit signal is
 * pending; core/main.c passes its signalfd). main_loop_wait_peer() watches it.
 */
void main_loop_set_stop_request_fd(int fd);

/*
 * Wait up to timeout_ms for events on a peer's fd outside the main loop (a
 * vhost-user back-end's reply, an ivshmem server's set-up messages), giving
 * up when the host asks vireo to stop, so a silent peer cannot hold off
 * shutdown. Like poll(): >0 ready, 0 timed out, -1 with errno set (EINTR is
 * the caller's to retry); errno is ECANCELED when vireo is stopping.
 */
int main_loop_wait_peer(int fd, short events, int timeout_ms);

/* Run cb(opaque) on the main loop soon. Safe from any thread (vCPUs, iothreads). */
void main_loop_schedule(IOHandler *cb, void *opaque);

/*
 * Clocks, in nanoseconds.
 *   CLOCK_REALTIME_HOST: wall-clock time (for the RTC, event timestamps).
 *   CLOCK_VIRTUAL: guest time. Runs with the host monotonic clock while the
 *     VM runs and stands still while it is stopped; under the qtest
 *     accelerator it moves only when the test says clock_step/clock_set.
 */
typedef enum VireoClock {
    CLOCK_REALTIME_HOST,
    CLOCK_VIRTUAL,
} VireoClock;

int64_t clock_get_ns(VireoClock clock);

typedef struct Timer Timer;
Timer *timer_new(VireoClock clock, IOHandler *cb, void *opaque);
/* Arm (or re-arm) to fire once when the clock reaches expire_ns. */
void timer_mod(Timer *t, int64_t expire_ns);
void timer_del(Timer *t);
bool timer_pending(const Timer *t);
void timer_free(Timer *t);

/* Virtual clock control (used by the run state and the qtest accelerator). */
void clock_virtual_pause(void);
void clock_virtual_resume(void);
void clock_virtual_set_manual(bool manual);   /* qtest: clock moves only by steps */
/* Advance a manual virtual clock to target_ns, firing due timers in order. */
void clock_virtual_warp(int64_t target_ns);
/* Earliest pending virtual-clock deadline, or -1 when none. */
int64_t clock_virtual_next_deadline(void);

#endif
