/*
 * A PS/2 (AT) keyboard behind the i8042: the bytes it sends (scancodes and
 * replies to the driver's commands) wait in a bounded queue until the
 * controller takes them one at a time; the bytes the driver writes to it
 * are commands (reset, identify, LEDs, scancode set, enable/disable...).
 *
 * Key events come from the monitor (send-key) through the host-side input
 * entry points below, which reach whichever keyboard the machine has.
 */
#ifndef VIREO_HW_PS2_KBD_H
#define VIREO_HW_PS2_KBD_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Ps2Kbd Ps2Kbd;

/* notify(opaque) runs whenever bytes become available to the controller. */
Ps2Kbd *ps2_kbd_create(void (*notify)(void *opaque), void *opaque);
void ps2_kbd_destroy(Ps2Kbd *k);
/* Power-on state: set 2, scanning on, LEDs off, queue empty. */
void ps2_kbd_reset(Ps2Kbd *k);

/* The controller's side. */
bool ps2_kbd_has_data(const Ps2Kbd *k);
uint8_t ps2_kbd_read(Ps2Kbd *k);        /* 0 when empty */
void ps2_kbd_write(Ps2Kbd *k, uint8_t byte);
uint8_t ps2_kbd_leds(const Ps2Kbd *k);

/* The host's side: a key (qnum, hw/keycodes.h) goes down or up. */
void ps2_kbd_key_event(Ps2Kbd *k, unsigned qnum, bool down);

/*
 * The keyboard host input goes to: the machine's, or none (a machine
 * without one; events are then dropped, as on QEMU).
 */
void kbd_input_set_target(Ps2Kbd *k);
void kbd_input_key(unsigned qnum, bool down);

#endif
