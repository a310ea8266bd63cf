#include "hw/keycodes.h"

#include <stddef.h>
#include <string.h>

/*
 * QKeyCode names (the schema's enum, same order) and their qnums. Keys a PC
 * keyboard has no agreed scancode for (the Sun keys, lang1/lang2) have 0.
 */
static const struct {
    const char *name;
    uint8_t qnum;
} qcodes[] = {
    { "unmapped", 0x00 },
    { "shift", 0x2a },
    { "shift_r", 0x36 },
    { "alt", 0x38 },
    { "alt_r", 0xb8 },
    { "ctrl", 0x1d },
    { "ctrl_r", 0x9d },
    { "menu", 0xdd },
    { "esc", 0x01 },
    { "1", 0x02 },
    { "2", 0x03 },
    { "3", 0x04 },
    { "4", 0x05 },
    { "5", 0x06 },
    { "6", 0x07 },
    { "7", 0x08 },
    { "8", 0x09 },
    { "9", 0x0a },
    { "0", 0x0b },
    { "minus", 0x0c },
    { "equal", 0x0d },
    { "backspace", 0x0e },
    { "tab", 0x0f },
    { "q", 0x10 },
    { "w", 0x11 },
    { "e", 0x12 },
    { "r", 0x13 },
    { "t", 0x14 },
    { "y", 0x15 },
    { "u", 0x16 },
    { "i", 0x17 },
    { "o", 0x18 },
    { "p", 0x19 },
    { "bracket_left", 0x1a },
    { "bracket_right", 0x1b },
    { "ret", 0x1c },
    { "a", 0x1e },
    { "s", 0x1f },
    { "d", 0x20 },
    { "f", 0x21 },
    { "g", 0x22 },
    { "h", 0x23 },
    { "j", 0x24 },
    { "k", 0x25 },
    { "l", 0x26 },
    { "semicolon", 0x27 },
    { "apostrophe", 0x28 },
    { "grave_accent", 0x29 },
    { "backslash", 0x2b },
    { "z", 0x2c },
    { "x", 0x2d },
    { "c", 0x2e },
    { "v", 0x2f },
    { "b", 0x30 },
    { "n", 0x31 },
    { "m", 0x32 },
    { "comma", 0x33 },
    { "dot", 0x34 },
    { "slash", 0x35 },
    { "asterisk", 0x37 },
    { "spc", 0x39 },
    { "caps_lock", 0x3a },
    { "f1", 0x3b },
    { "f2", 0x3c },
    { "f3", 0x3d },
    { "f4", 0x3e },
    { "f5", 0x3f },
    { "f6", 0x40 },
    { "f7", 0x41 },
    { "f8", 0x42 },
    { "f9", 0x43 },
    { "f10", 0x44 },
    { "num_lock", 0x45 },
    { "scroll_lock", 0x46 },
    { "kp_divide", 0xb5 },
    { "kp_multiply", 0x37 },
    { "kp_subtract", 0x4a },
    { "kp_add", 0x4e },
    { "kp_enter", 0x9c },
    { "kp_decimal", 0x53 },
    { "sysrq", 0x54 },
    { "kp_0", 0x52 },
    { "kp_1", 0x4f },
    { "kp_2", 0x50 },
    { "kp_3", 0x51 },
    { "kp_4", 0x4b },
    { "kp_5", 0x4c },
    { "kp_6", 0x4d },
    { "kp_7", 0x47 },
    { "kp_8", 0x48 },
    { "kp_9", 0x49 },
    { "less", 0x56 },
    { "f11", 0x57 },
    { "f12", 0x58 },
    { "print", 0xb7 },
    { "home", 0xc7 },
    { "pgup", 0xc9 },
    { "pgdn", 0xd1 },
    { "end", 0xcf },
    { "left", 0xcb },
    { "up", 0xc8 },
    { "down", 0xd0 },
    { "right", 0xcd },
    { "insert", 0xd2 },
    { "delete", 0xd3 },
    { "stop", 0xe8 },
    { "again", 0x00 },
    { "props", 0x00 },
    { "undo", 0x00 },
    { "front", 0x00 },
    { "copy", 0x00 },
    { "open", 0x00 },
    { "paste", 0x00 },
    { "find", 0x00 },
    { "cut", 0x00 },
    { "lf", 0x00 },
    { "help", 0x00 },
    { "meta_l", 0xdb },
    { "meta_r", 0xdc },
    { "compose", 0xdd },
    { "pause", 0xc6 },
    { "ro", 0x73 },
    { "hiragana", 0x77 },
    { "henkan", 0x79 },
    { "yen", 0x7d },
    { "muhenkan", 0x7b },
    { "katakanahiragana", 0x70 },
    { "kp_comma", 0x7e },
    { "kp_equals", 0x59 },
    { "power", 0xde },
    { "sleep", 0xdf },
    { "wake", 0xe3 },
    { "audionext", 0x99 },
    { "audioprev", 0x90 },
    { "audiostop", 0xa4 },
    { "audioplay", 0xa2 },
    { "audiomute", 0xa0 },
    { "volumeup", 0xb0 },
    { "volumedown", 0xae },
    { "mediaselect", 0xed },
    { "mail", 0xec },
    { "calculator", 0xa1 },
    { "computer", 0xeb },
    { "ac_home", 0xb2 },
    { "ac_back", 0xea },
    { "ac_forward", 0xe9 },
    { "ac_refresh", 0xe7 },
    { "ac_bookmarks", 0xe6 },
    { "lang1", 0x00 },
    { "lang2", 0x00 },
};

int keycode_qnum_of_qcode(const char *name)
{
    for (size_t i = 0; i < sizeof(qcodes) / sizeof(qcodes[0]); i++) {
        if (strcmp(qcodes[i].name, name) == 0) {
            return qcodes[i].qnum;
        }
    }
    return -1;
}

/*
 * The 8042's set-2 to set-1 table for the codes 0x00-0x7f (0x83, F7, and
 * 0x84, SysRq, are the two codes above it that it changes). Set 2 is its
 * inverse, so the keyboard and the controller cannot disagree.
 */
static const uint8_t set2_to_set1[128] = {
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
};

#define SET2_F7     0x83
#define SET2_SYSRQ  0x84

uint8_t keycode_translate_set2(uint8_t byte)
{
    if (byte < 0x80) {
        return set2_to_set1[byte];
    }
    if (byte == SET2_F7) {
        return 0x41;
    }
    if (byte == SET2_SYSRQ) {
        return QNUM_SYSRQ;
    }
    return byte;    /* prefixes and replies (0xe0, 0xfa, 0xaa, ...) pass */
}

/* The set-2 code of a set-1 code without prefix; 0 when none. */
static uint8_t set1_to_set2(uint8_t code)
{
    if (code == 0x41) {
        return SET2_F7;
    }
    if (code == QNUM_SYSRQ) {
        return SET2_SYSRQ;
    }
    for (unsigned i = 1; i < 128; i++) {
        if (set2_to_set1[i] == code) {
            return i;
        }
    }
    return 0;
}

unsigned keycode_qnum_to_set1(unsigned qnum, bool down, uint8_t out[KEYCODE_SEQ_MAX])
{
    uint8_t brk = down ? 0 : 0x80;
    unsigned n = 0;
    if (qnum == 0 || qnum > 0xff) {
        return 0;
    }
    if (qnum == QNUM_PAUSE) {
        static const uint8_t pause[] = { 0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5 };
        if (!down) {
            return 0;
        }
        memcpy(out, pause, sizeof(pause));
        return sizeof(pause);
    }
    if (qnum == QNUM_PRINT) {
        /* A fake left Shift around the key, as PC keyboards send it. */
        if (down) {
            out[n++] = 0xe0; out[n++] = 0x2a; out[n++] = 0xe0; out[n++] = 0x37;
        } else {
            out[n++] = 0xe0; out[n++] = 0xb7; out[n++] = 0xe0; out[n++] = 0xaa;
        }
        return n;
    }
    if (qnum & 0x80) {
        out[n++] = 0xe0;
    }
    out[n++] = (qnum & 0x7f) | brk;
    return n;
}

unsigned keycode_qnum_to_set2(unsigned qnum, bool down, uint8_t out[KEYCODE_SEQ_MAX])
{
    unsigned n = 0;
    if (qnum == 0 || qnum > 0xff) {
        return 0;
    }
    if (qnum == QNUM_PAUSE) {
        static const uint8_t pause[] = { 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77 };
        if (!down) {
            return 0;
        }
        memcpy(out, pause, sizeof(pause));
        return sizeof(pause);
    }
    if (qnum == QNUM_PRINT) {
        if (down) {
            out[n++] = 0xe0; out[n++] = 0x12; out[n++] = 0xe0; out[n++] = 0x7c;
        } else {
            out[n++] = 0xe0; out[n++] = 0xf0; out[n++] = 0x7c;
            out[n++] = 0xe0; out[n++] = 0xf0; out[n++] = 0x12;
        }
        return n;
    }
    uint8_t code = set1_to_set2(qnum & 0x7f);
    if (!code) {
        return 0;
    }
    if (qnum & 0x80) {
        out[n++] = 0xe0;
    }
    if (!down) {
        out[n++] = 0xf0;
    }
    out[n++] = code;
    return n;
}
