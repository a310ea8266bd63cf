#include "hw/ps2-kbd.h"

#include <stdlib.h>

#include "hw/keycodes.h"
#include "util/osdep.h"

#define QUEUE_SIZE      256     /* bytes; a full queue drops whole key events */

/* Keyboard commands (bytes the driver writes). */
#define KBD_CMD_SET_LEDS        0xed
#define KBD_CMD_ECHO            0xee
#define KBD_CMD_SCANCODE        0xf0
#define KBD_CMD_IDENTIFY        0xf2
#define KBD_CMD_TYPEMATIC       0xf3
#define KBD_CMD_ENABLE          0xf4
#define KBD_CMD_DISABLE         0xf5    /* defaults, scanning off */
#define KBD_CMD_DEFAULTS        0xf6
#define KBD_CMD_RESEND          0xfe
#define KBD_CMD_RESET           0xff

/* Keyboard replies. */
#define KBD_REPLY_ACK           0xfa
#define KBD_REPLY_RESEND        0xfe
#define KBD_REPLY_POR           0xaa    /* self-test passed */
#define KBD_REPLY_ECHO          0xee
#define KBD_ID_1                0xab
#define KBD_ID_2                0x83    /* MF2 keyboard; 0x41 once translated */

struct Ps2Kbd {
    void (*notify)(void *opaque);
    void *opaque;
    uint8_t queue[QUEUE_SIZE];  /* ring of bytes for the controller */
    unsigned head, count;
    uint8_t pending;            /* a command waiting for its parameter, or 0 */
    uint8_t scancode_set;       /* 1 or 2 */
    uint8_t leds;               /* bit 0 scroll, 1 num, 2 caps */
    uint8_t typematic;
    bool scanning;              /* key events are reported */
    uint8_t last;               /* last byte sent, for RESEND */
};

static Ps2Kbd *input_target;

static bool queue_room(const Ps2Kbd *k, unsigned n)
{
    return k->count + n <= QUEUE_SIZE;
}

static void queue_put(Ps2Kbd *k, const uint8_t *bytes, unsigned n)
{
    if (!queue_room(k, n)) {
        return;     /* all or nothing: never half a scancode */
    }
    for (unsigned i = 0; i < n; i++) {
        k->queue[(k->head + k->count) % QUEUE_SIZE] = bytes[i];
        k->count++;
    }
    k->notify(k->opaque);
}

static void reply1(Ps2Kbd *k, uint8_t b)
{
    queue_put(k, &b, 1);
}

static void reply2(Ps2Kbd *k, uint8_t a, uint8_t b)
{
    uint8_t bytes[2] = { a, b };
    queue_put(k, bytes, 2);
}

static void set_defaults(Ps2Kbd *k)
{
    k->scancode_set = 2;
    k->typematic = 0x2b;    /* 10.9 characters/s after 500 ms */
    k->leds = 0;
}

void ps2_kbd_reset(Ps2Kbd *k)
{
    k->head = k->count = 0;
    k->pending = 0;
    k->last = 0;
    k->scanning = true;
    set_defaults(k);
}

Ps2Kbd *ps2_kbd_create(void (*notify)(void *opaque), void *opaque)
{
    Ps2Kbd *k = xzalloc(sizeof(*k));
    k->notify = notify;
    k->opaque = opaque;
    ps2_kbd_reset(k);
    return k;
}

void ps2_kbd_destroy(Ps2Kbd *k)
{
    if (!k) {
        return;
    }
    if (input_target == k) {
        input_target = NULL;
    }
    free(k);
}

bool ps2_kbd_has_data(const Ps2Kbd *k)
{
    return k->count > 0;
}

uint8_t ps2_kbd_read(Ps2Kbd *k)
{
    if (!k->count) {
        return 0;
    }
    uint8_t b = k->queue[k->head];
    k->head = (k->head + 1) % QUEUE_SIZE;
    k->count--;
    k->last = b;
    return b;
}

uint8_t ps2_kbd_leds(const Ps2Kbd *k)
{
    return k->leds;
}

/* The parameter byte of a two-byte command. */
static void write_param(Ps2Kbd *k, uint8_t cmd, uint8_t val)
{
    switch (cmd) {
    case KBD_CMD_SET_LEDS:
        k->leds = val & 0x07;
        reply1(k, KBD_REPLY_ACK);
        break;
    case KBD_CMD_TYPEMATIC:
        k->typematic = val & 0x7f;
        reply1(k, KBD_REPLY_ACK);
        break;
    case KBD_CMD_SCANCODE:
        if (val == 0) {
            reply2(k, KBD_REPLY_ACK, k->scancode_set);
        } else if (val == 1 || val == 2) {
            k->scancode_set = val;
            reply1(k, KBD_REPLY_ACK);
        } else {
            reply1(k, KBD_REPLY_RESEND);    /* set 3 is not offered */
        }
        break;
    }
}

void ps2_kbd_write(Ps2Kbd *k, uint8_t byte)
{
    uint8_t cmd = k->pending;
    k->pending = 0;
    /* Parameters are below 0x80; a byte at or above it is a new command. */
    if (cmd && byte < 0x80) {
        write_param(k, cmd, byte);
        return;
    }
    switch (byte) {
    case KBD_CMD_SET_LEDS:
    case KBD_CMD_TYPEMATIC:
    case KBD_CMD_SCANCODE:
        k->pending = byte;
        reply1(k, KBD_REPLY_ACK);
        break;
    case KBD_CMD_ECHO:
        reply1(k, KBD_REPLY_ECHO);
        break;
    case KBD_CMD_IDENTIFY: {
        uint8_t id[3] = { KBD_REPLY_ACK, KBD_ID_1, KBD_ID_2 };
        queue_put(k, id, sizeof(id));
        break;
    }
    case KBD_CMD_ENABLE:
        k->scanning = true;
        k->head = k->count = 0;
        reply1(k, KBD_REPLY_ACK);
        break;
    case KBD_CMD_DISABLE:
        set_defaults(k);
        k->scanning = false;
        reply1(k, KBD_REPLY_ACK);
        break;
    case KBD_CMD_DEFAULTS:
        set_defaults(k);
        reply1(k, KBD_REPLY_ACK);
        break;
    case KBD_CMD_RESEND:
        reply1(k, k->last);
        break;
    case KBD_CMD_RESET:
        ps2_kbd_reset(k);
        reply2(k, KBD_REPLY_ACK, KBD_REPLY_POR);
        break;
    default:
        reply1(k, KBD_REPLY_RESEND);    /* unknown command */
        break;
    }
}

void ps2_kbd_key_event(Ps2Kbd *k, unsigned qnum, bool down)
{
    uint8_t bytes[KEYCODE_SEQ_MAX];
    unsigned n;
    if (!k->scanning) {
        return;
    }
    n = k->scancode_set == 1 ? keycode_qnum_to_set1(qnum, down, bytes)
                             : keycode_qnum_to_set2(qnum, down, bytes);
    if (n) {
        queue_put(k, bytes, n);
    }
}

void kbd_input_set_target(Ps2Kbd *k)
{
    input_target = k;
}

void kbd_input_key(unsigned qnum, bool down)
{
    if (input_target) {
        ps2_kbd_key_event(input_target, qnum, down);
    }
}
