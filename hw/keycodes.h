/*
 * Key names and PC scancodes.
 *
 * The monitor names keys as QMP's QKeyCode does ("a", "ctrl_r", "f1") or by
 * number: a "qnum" is the scancode-set-1 make code of the key, with 0x80
 * added when the key sends an 0xe0 prefix (right Ctrl: 0x9d). The keyboard
 * speaks scancode set 2 (or set 1 when the guest asks for it); the i8042
 * controller turns set 2 back into set 1 when its translate bit is set.
 */
#ifndef VIREO_HW_KEYCODES_H
#define VIREO_HW_KEYCODES_H

#include <stdbool.h>
#include <stdint.h>

/* Special qnums: keys whose sequences are not prefix + one byte. */
#define QNUM_PAUSE   0xc6   /* E1 1D 45 E1 9D C5 in set 1, make only */
#define QNUM_PRINT   0xb7   /* E0 2A E0 37 in set 1 */
#define QNUM_SYSRQ   0x54

/* Longest byte sequence one key event produces (Pause, in set 2). */
#define KEYCODE_SEQ_MAX 8

/*
 * The qnum of a QKeyCode name: -1 when the name is not a QKeyCode, 0 when
 * it is one without a PC scancode (sending it does nothing).
 */
int keycode_qnum_of_qcode(const char *name);

/*
 * The bytes a keyboard sends in scancode set 1 or 2 for qnum going down or
 * up; returns how many (0: no such key in that set, or Pause going up).
 */
unsigned keycode_qnum_to_set1(unsigned qnum, bool down, uint8_t out[KEYCODE_SEQ_MAX]);
unsigned keycode_qnum_to_set2(unsigned qnum, bool down, uint8_t out[KEYCODE_SEQ_MAX]);

/*
 * The i8042's translation of one set-2 byte (without the 0xf0 break prefix,
 * which the controller folds into bit 7 of the next byte).
 */
uint8_t keycode_translate_set2(uint8_t byte);

#endif
