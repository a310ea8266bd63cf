#include "hw/i8042.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "memory/address-space.h"
#include "util/osdep.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64

#define STAT_OBF    0x01    /* a byte waits in the output buffer */
#define STAT_SYS    0x04    /* self-test passed */
#define STAT_CMD    0x08    /* last write went to the command port */

#define CMD_READ_MODE       0x20
#define CMD_WRITE_MODE      0x60
#define CMD_SELF_TEST       0xaa
#define CMD_KBD_TEST        0xab
#define CMD_AUX_TEST        0xa9
#define CMD_READ_OUTPORT    0xd0
#define CMD_WRITE_OUTPORT   0xd1
#define CMD_PULSE_FIRST     0xf0    /* 0xf0-0xff pulse output-port bits 0-3 low */

#define OUTPORT_RESET_N     0x01    /* CPU reset line, active low */
#define OUTPORT_A20         0x02

struct I8042 {
    IoRegion *data_io, *cmd_io;
    void (*reset_line)(void *opaque);
    void *opaque;
    uint8_t status;
    uint8_t mode;           /* the controller command byte */
    uint8_t outport;
    uint8_t pending_cmd;    /* a command waiting for its data byte, or 0 */
    uint8_t out;            /* the output buffer */
};

static void put_output(I8042 *s, uint8_t byte)
{
    s->out = byte;
    s->status |= STAT_OBF;
}

static void write_outport(I8042 *s, uint8_t val)
{
    s->outport = val;
    if (!(val & OUTPORT_RESET_N)) {
        s->reset_line(s->opaque);
    }
}

static void do_command(I8042 *s, uint8_t cmd)
{
    switch (cmd) {
    case CMD_READ_MODE:
        put_output(s, s->mode);
        break;
    case CMD_WRITE_MODE:
    case CMD_WRITE_OUTPORT:
        s->pending_cmd = cmd;
        break;
    case CMD_SELF_TEST:
        put_output(s, 0x55);
        break;
    case CMD_KBD_TEST:
    case CMD_AUX_TEST:
        put_output(s, 0x00);
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
    s->status &= ~STAT_OBF;
    return s->out;
}

static void i8042_data_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    I8042 *s = opaque;
    uint8_t cmd = s->pending_cmd;
    s->pending_cmd = 0;
    s->status &= ~STAT_CMD;
    if (cmd == CMD_WRITE_MODE) {
        s->mode = value;
    } else if (cmd == CMD_WRITE_OUTPORT) {
        write_outport(s, value);
    }
    /* Bytes for the (absent) keyboard are dropped. */
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
    s->status = STAT_SYS;
    s->mode = 0;
    s->outport = OUTPORT_RESET_N | OUTPORT_A20;
    s->pending_cmd = 0;
    s->out = 0;
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
    i8042_reset(s);
    return s;
}

void i8042_destroy(I8042 *s)
{
    if (!s) {
        return;
    }
    io_region_del(s->data_io);
    io_region_del(s->cmd_io);
    free(s);
}
