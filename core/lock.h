/*
 * The big lock: serialises device emulation. The main loop holds it while
 * running handlers; a vCPU thread takes it around a port I/O or MMIO exit.
 * Fast paths (ioeventfd, irqfd, vhost) never need it.
 */
#ifndef VIREO_CORE_LOCK_H
#define VIREO_CORE_LOCK_H

#include <stdbool.h>

void big_lock(void);
void big_unlock(void);
bool big_lock_held(void);   /* by the calling thread; for assertions */

#endif
