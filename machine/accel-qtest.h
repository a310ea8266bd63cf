/*
 * The qtest accelerator: no vCPU. A test program drives the machine over
 * a character device with QEMU's qtest line protocol (port and memory
 * reads and writes, clock steps, IRQ interception), so devices can be
 * tested without a guest.
 */
#ifndef VIREO_MACHINE_ACCEL_QTEST_H
#define VIREO_MACHINE_ACCEL_QTEST_H

#include <stdbool.h>

#include "chardev/chardev.h"
#include "memory/guest-memory.h"
#include "util/error.h"

/*
 * Log every request and reply line, with seconds since the client connected,
 * to path (created or truncated), as QEMU's -qtest-log does; NULL or "none"
 * logs nothing. Call before qtest_accel_init().
 */
bool qtest_accel_set_log(const char *path, Error **errp);
/* Serve the protocol on chr; mem is the guest RAM (may have no regions). */
bool qtest_accel_init(Chardev *chr, GuestMemory *mem, Error **errp);
bool qtest_enabled(void);

#endif
