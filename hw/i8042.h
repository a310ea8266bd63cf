/*
 * i8042 keyboard controller, only as much as the PC needs from it: the
 * status/command port 0x64 and data port 0x60, the controller self-tests,
 * and the CPU reset line (command 0xfe, or an output-port write with bit 0
 * clear), which asks the machine for a reset. No keyboard or mouse.
 */
#ifndef VIREO_HW_I8042_H
#define VIREO_HW_I8042_H

#include "util/error.h"

typedef struct I8042 I8042;

I8042 *i8042_create(void (*reset_line)(void *opaque), void *opaque, Error **errp);
void i8042_reset(I8042 *s);
void i8042_destroy(I8042 *s);

#endif
