/*
 * I/O threads (-object iothread,id=...): host threads with their own event
 * loop that device back-ends can run on instead of the main loop.
 */
#ifndef VIREO_CORE_IOTHREAD_H
#define VIREO_CORE_IOTHREAD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"
#include "util/keyval.h"

typedef struct IOThread IOThread;

extern const OptParam iothread_params[];

/* Create and start a thread from parsed -object iothread options. */
IOThread *iothread_create(const KeyValList *kv, Error **errp);
IOThread *iothread_find(const char *id);
/* Run fn(opaque) on the thread's loop; safe from any thread. */
void iothread_schedule(IOThread *t, void (*fn)(void *opaque), void *opaque);
/* Wake every iothread once, so each takes up its sandbox filter now. */
void iothread_wake_all(void);
void iothread_stop_all(void);

#endif
