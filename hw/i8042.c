#include "hw/i8042.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "hw/irq.h"
#include "hw/keycodes.h"
#include "hw/ps2-kbd.h"
#include "memory/address-space.h"
#include "util/osdep.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64
#define I8042_KBD_IRQ   1

#define STAT_OBF    0x01    /* a byte waits in the output buffer */
#define STAT_SYS    0x04    /* self-test passed */
#define STAT_CMD    0x08    /* last write went to the command port */
#define STAT_UNLOCKED 0x10  /* keyboard not inhibited by the key lock */

/* The command byte ("mode"). */
#define MODE_KBD_INT    0x01    /* IRQ 1 when a keyboard byte waits */
#define MODE_AUX_INT    0x02
#define MODE_SYS        0x04
#define MODE_KBD_OFF    0x10    /* keyboard clock disabled */
#define MODE_AUX_OFF    0x20
#define MODE_XLATE      0x40    /* translate set 2 to set 1 */

#define CMD_READ_MODE       0x20
#define CMD_WRITE_MODE      0x60
#define CMD_AUX_DISABLE     0xa7
#define CMD_AUX_ENABLE      0xa8
#define CMD_AUX_TEST        0xa9
#define CMD_SELF_TEST       0xaa
#define CMD_KBD_TEST        0xab
#define CMD_KBD_DISABLE     0xad
#define CMD_KBD_ENABLE      0xae
#define CMD_READ_OUTPORT    0xd0
#define CMD_WRITE_OUTPORT   0xd1
#define CMD_WRITE_KBD_OBUF  0xd2    /* next data byte appears as if from the keyboard */
#define CMD_AUX_LOOP        0xd3    /* mouse-port loopback of the next data byte */
#define CMD_WRITE_AUX       0xd4    /* next data byte goes to the (absent) mouse */
#define CMD_PULSE_FIRST     0xf0    /* 0xf0-0xff pulse output-port bits 0-3 low */

#define AUX_TEST_CLOCK_HIGH 0x02

#define OUTPORT_RESET_N     0x01    /* CPU reset line, active low */
#define OUTPORT_A20         0x02

/*
 * What a PC firmware leaves in the command byte: keyboard interrupt on,
 * system flag, translation on. vireo boots kernels without firmware, so
 * the controller starts that way.
 */
#define MODE_POWER_ON   (MODE_KBD_INT | MODE_SYS | MODE_XLATE)

struct I8042 {
    IoRegion *data_io, *cmd_io;
    void (*reset_line)(void *opaque);
    void *opaque;
    Ps2Kbd *kbd;
    uint8_t status;
    uint8_t mode;           /* the controller command byte */
    uint8_t outport;
    uint8_t pending_cmd;    /* a command waiting for its data byte, or 0 */
    uint8_t out;            /* the output buffer */
    bool out_from_kbd;      /* the byte in it came from the keyboard */
    bool xlate_break;       /* a set-2 0xf0 was folded into the next byte */
    bool irq_level;
};

static void update_irq(I8042 *s)
{
    bool level = (s->status & STAT_OBF) && s->out_from_kbd && (s->mode & MODE_KBD_INT);
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set_level(I8042_KBD_IRQ, level);
    }
}

/* Move the keyboard's next byte into an empty output buffer. */
static void pull_keyboard(I8042 *s)
{
    while (!(s->status & STAT_OBF) && !(s->mode & MODE_KBD_OFF) && ps2_kbd_has_data(s->kbd)) {
        uint8_t b = ps2_kbd_read(s->kbd);
        if (s->mode & MODE_XLATE) {
            if (b == 0xf0) {
                s->xlate_break = true;
                continue;   /* folded into the next byte */
            }
            b = keycode_translate_set2(b);
            if (s->xlate_break) {
                b |= 0x80;
                s->xlate_break = false;
            }
        }
        s->out = b;
        s->out_from_kbd = true;
        s->status |= STAT_OBF;
    }
    update_irq(s);
}

static void kbd_notify(void *opaque)
{
    pull_keyboard(opaque);
}

/* A reply of the controller itself replaces whatever the buffer held. */
static void put_output(I8042 *s, uint8_t byte)
{
    s->out = byte;
    s->out_from_kbd = false;
    s->status |= STAT_OBF;
    update_irq(s);
}

static void write_outport(I8042 *s, uint8_t val)
{
    s->outport = val;
    if (!(val & OUTPORT_RESET_N)) {
        s->reset_line(s->opaque);
    }
}

static void set_mode(I8042 *s, uint8_t mode)
{
    s->mode = mode;
    if (mode & MODE_SYS) {
        s->status |= STAT_SYS;
    }
    pull_keyboard(s);
}

static void do_command(I8042 *s, uint8_t cmd)
{
    switch (cmd) {
    case CMD_READ_MODE:
        put_output(s, s->mode);
        break;
    case CMD_WRITE_MODE:
    case CMD_WRITE_OUTPORT:
    case CMD_WRITE_KBD_OBUF:
    case CMD_AUX_LOOP:
    case CMD_WRITE_AUX:
        s->pending_cmd = cmd;
        break;
    case CMD_SELF_TEST:
        s->status |= STAT_SYS;
        put_output(s, 0x55);
        break;
    case CMD_KBD_TEST:
        put_output(s, 0x00);
        break;
    case CMD_AUX_TEST:
        /* Nothing on the mouse port: its clock line floats high. */
        put_output(s, AUX_TEST_CLOCK_HIGH);
        break;
    case CMD_KBD_DISABLE:
        set_mode(s, s->mode | MODE_KBD_OFF);
        break;
    case CMD_KBD_ENABLE:
        set_mode(s, s->mode & ~MODE_KBD_OFF);
        break;
    case CMD_AUX_DISABLE:
        set_mode(s, s->mode | MODE_AUX_OFF);
        break;
    case CMD_AUX_ENABLE:
        set_mode(s, s->mode & ~MODE_AUX_OFF);
        break;
    case CMD_READ_OUTPORT:
        put_output(s, s->outport);
        break;
    default:
        if (cmd >= CMD_PULSE_FIRST && !(cmd & OUTPORT_RESET_N)) {
            s->reset_line(s->opaque);   /* pulse the reset line */
        }
        break;
    }
}

static uint64_t i8042_data_read(void *opaque, uint64_t offset, unsigned size)
{
    I8042 *s = opaque;
    uint8_t b = s->out;
    s->status &= ~STAT_OBF;
    s->out_from_kbd = false;
    update_irq(s);          /* lowered here; the next byte raises it again */
    pull_keyboard(s);
    return b;
}

static void i8042_data_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    I8042 *s = opaque;
    uint8_t cmd = s->pending_cmd;
    uint8_t val = value & 0xff;
    s->pending_cmd = 0;
    s->status &= ~STAT_CMD;
    switch (cmd) {
    case CMD_WRITE_MODE:
        set_mode(s, val);
        break;
    case CMD_WRITE_OUTPORT:
        write_outport(s, val);
        break;
    case CMD_WRITE_KBD_OBUF:
        s->out = val;
        s->out_from_kbd = true;
        s->status |= STAT_OBF;
        update_irq(s);
        break;
    case CMD_AUX_LOOP:
        /*
         * No mouse port: the byte comes back as a plain controller byte,
         * without the mouse-data status bit, so a driver checking for
         * that bit learns at once that there is no mouse port.
         */
        put_output(s, val);
        break;
    case CMD_WRITE_AUX:
        break;              /* no mouse */
    default:
        /* A byte for the keyboard; sending one enables its clock. */
        s->mode &= ~MODE_KBD_OFF;
        ps2_kbd_write(s->kbd, val);
        pull_keyboard(s);
        break;
    }
}

static uint64_t i8042_cmd_read(void *opaque, uint64_t offset, unsigned size)
{
    I8042 *s = opaque;
    return s->status;
}

static void i8042_cmd_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    I8042 *s = opaque;
    s->status |= STAT_CMD;
    s->pending_cmd = 0;
    do_command(s, value & 0xff);
}

static const IoOps i8042_data_ops = { .read = i8042_data_read, .write = i8042_data_write };
static const IoOps i8042_cmd_ops = { .read = i8042_cmd_read, .write = i8042_cmd_write };

void i8042_reset(I8042 *s)
{
    s->status = STAT_SYS | STAT_UNLOCKED;
    s->mode = MODE_POWER_ON;
    s->outport = OUTPORT_RESET_N | OUTPORT_A20;
    s->pending_cmd = 0;
    s->out = 0;
    s->out_from_kbd = false;
    s->xlate_break = false;
    ps2_kbd_reset(s->kbd);
    update_irq(s);
}

I8042 *i8042_create(void (*reset_line)(void *opaque), void *opaque, Error **errp)
{
    I8042 *s = xzalloc(sizeof(*s));
    s->reset_line = reset_line;
    s->opaque = opaque;
    s->data_io = io_region_add(AS_PIO, "i8042-data", I8042_DATA_PORT, 1,
                               &i8042_data_ops, s, errp);
    s->cmd_io = s->data_io ? io_region_add(AS_PIO, "i8042-cmd", I8042_CMD_PORT, 1,
                                           &i8042_cmd_ops, s, errp) : NULL;
    if (!s->cmd_io) {
        io_region_del(s->data_io);
        free(s);
        return NULL;
    }
    s->kbd = ps2_kbd_create(kbd_notify, s);
    i8042_reset(s);
    kbd_input_set_target(s->kbd);
    return s;
}

Ps2Kbd *i8042_keyboard(I8042 *s)
{
    return s->kbd;
}

void i8042_destroy(I8042 *s)
{
    if (!s) {
        return;
    }
    io_region_del(s->data_io);
    io_region_del(s->cmd_io);
    ps2_kbd_destroy(s->kbd);
    free(s);
}
