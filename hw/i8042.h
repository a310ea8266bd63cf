/*
 * i8042 keyboard controller: the status/command port 0x64 and data port
 * 0x60, the controller commands a PC driver uses (self-tests, command byte,
 * keyboard enable/disable, output port), the CPU reset line (command 0xfe,
 * or an output-port write with bit 0 clear), which asks the machine for a
 * reset, and a PS/2 keyboard (hw/ps2-kbd.h) on its first port: the
 * keyboard's set-2 bytes reach the guest through the one-byte output buffer,
 * translated to set 1 while the command byte's translate bit is set, with
 * IRQ 1 raised while a keyboard byte waits and its interrupt is enabled.
 * No mouse: the second port has no device behind it.
 */
#ifndef VIREO_HW_I8042_H
#define VIREO_HW_I8042_H

#include "util/error.h"

typedef struct I8042 I8042;

I8042 *i8042_create(void (*reset_line)(void *opaque), void *opaque, Error **errp);
void i8042_reset(I8042 *s);
void i8042_destroy(I8042 *s);

/* The controller's keyboard (for host input and tests). */
struct Ps2Kbd *i8042_keyboard(I8042 *s);

#endif
