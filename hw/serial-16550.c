/*
 * 16550A UART. Register map (offset from the base port, DLAB = LCR bit 7):
 *   0  RBR (read) / THR (write), or DLL when DLAB
 *   1  IER, or DLM when DLAB
 *   2  IIR (read) / FCR (write)
 *   3  LCR   4 MCR   5 LSR   6 MSR   7 SCR
 */
#include "hw/serial-16550.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hw/irq.h"
#include "memory/address-space.h"
#include "util/osdep.h"

#define UART_FIFO_SIZE 16

#define IER_RDI   0x01    /* receive data available */
#define IER_THRI  0x02    /* transmitter holding register empty */
#define IER_RLSI  0x04    /* receiver line status */
#define IER_MSI   0x08    /* modem status */

#define IIR_NO_INT  0x01
#define IIR_MSI     0x00
#define IIR_THRI    0x02
#define IIR_RDI     0x04
#define IIR_RLSI    0x06
#define IIR_FIFO_ENABLED 0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR   0x01     /* data ready */
#define LSR_OE   0x02     /* overrun */
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80
#define MSR_DELTAS 0x0f

struct Serial16550 {
    IoRegion *io;           /* the 8 ports */
    Chardev *chr;           /* host side, or NULL */
    unsigned gsi;           /* interrupt line */
    uint16_t divisor;       /* baud divisor (only stored) */
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    bool thr_ipending;      /* THRE interrupt not yet acknowledged */
    bool rx_stalled;        /* can_read said 0: the chardev waits to hear of room */
    bool irq_level;         /* what we last drove on the line */
    uint8_t rx[UART_FIFO_SIZE];
    unsigned rx_head;       /* index of the oldest byte */
    unsigned rx_count;      /* bytes in the FIFO */
};

static unsigned rx_capacity(const Serial16550 *s)
{
    /* With the FIFO disabled the UART holds a single byte. */
    return (s->fcr & FCR_ENABLE) ? UART_FIFO_SIZE : 1;
}

/* The highest-priority pending interrupt, as IIR reports it. */
static uint8_t pending_iir(const Serial16550 *s)
{
    if ((s->ier & IER_RLSI) && (s->lsr & LSR_OE)) {
        return IIR_RLSI;
    }
    if ((s->ier & IER_RDI) && s->rx_count) {
        return IIR_RDI;
    }
    if ((s->ier & IER_THRI) && s->thr_ipending) {
        return IIR_THRI;
    }
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS)) {
        return IIR_MSI;
    }
    return IIR_NO_INT;
}

/* The PC routes the UART interrupt through OUT2; loopback disconnects it. */
static void update_irq(Serial16550 *s)
{
    bool level = pending_iir(s) != IIR_NO_INT && (s->mcr & MCR_OUT2);
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set_level(s->gsi, level);
    }
}

static void rx_push(Serial16550 *s, uint8_t byte)
{
    if (s->rx_count >= rx_capacity(s)) {
        s->lsr |= LSR_OE;
        return;
    }
    s->rx[(s->rx_head + s->rx_count) % UART_FIFO_SIZE] = byte;
    s->rx_count++;
    s->lsr |= LSR_DR;
}

static uint8_t rx_pop(Serial16550 *s)
{
    if (!s->rx_count) {
        return 0;
    }
    uint8_t byte = s->rx[s->rx_head];
    s->rx_head = (s->rx_head + 1) % UART_FIFO_SIZE;
    if (--s->rx_count == 0) {
        s->lsr &= ~LSR_DR;
    }
    return byte;
}

static void rx_clear(Serial16550 *s)
{
    s->rx_head = s->rx_count = 0;
    s->lsr &= ~LSR_DR;
}

/* In loopback mode the modem inputs follow the modem outputs. */
static uint8_t loopback_msr(const Serial16550 *s)
{
    uint8_t msr = s->msr & MSR_DELTAS;
    if (s->mcr & MCR_RTS)  msr |= MSR_CTS;
    if (s->mcr & MCR_DTR)  msr |= MSR_DSR;
    if (s->mcr & MCR_OUT1) msr |= MSR_RI;
    if (s->mcr & MCR_OUT2) msr |= MSR_DCD;
    return msr;
}

static void transmit(Serial16550 *s, uint8_t byte)
{
    if (s->mcr & MCR_LOOP) {
        rx_push(s, byte);
    } else if (s->chr) {
        chardev_write(s->chr, &byte, 1);
    }
    /* The byte left at once: the holding register is empty again. */
    s->thr_ipending = true;
}

static size_t serial_can_read(void *opaque);

/*
 * After the guest made room, tell a chardev that stopped offering input.
 * This runs under the big lock, like chardev_write from the same exit.
 */
static void maybe_wake_input(Serial16550 *s)
{
    if (s->rx_stalled && s->chr && serial_can_read(s) > 0) {
        s->rx_stalled = false;
        chardev_accept_input(s->chr);
    }
}

static uint64_t serial_read(void *opaque, uint64_t offset, unsigned size)
{
    Serial16550 *s = opaque;
    uint8_t val = 0;

    switch (offset) {
    case 0:
        if (s->lcr & LCR_DLAB) {
            val = s->divisor & 0xff;
        } else {
            val = rx_pop(s);
        }
        break;
    case 1:
        val = (s->lcr & LCR_DLAB) ? s->divisor >> 8 : s->ier;
        break;
    case 2:
        val = pending_iir(s);
        if (val == IIR_THRI) {
            s->thr_ipending = false;   /* reading IIR acknowledges THRE */
        }
        if (s->fcr & FCR_ENABLE) {
            val |= IIR_FIFO_ENABLED;
        }
        break;
    case 3:
        val = s->lcr;
        break;
    case 4:
        val = s->mcr;
        break;
    case 5:
        val = s->lsr;
        s->lsr &= ~LSR_OE;             /* error bits clear on read */
        break;
    case 6:
        val = (s->mcr & MCR_LOOP) ? loopback_msr(s) : s->msr;
        s->msr &= ~MSR_DELTAS;
        break;
    case 7:
        val = s->scr;
        break;
    }
    update_irq(s);
    maybe_wake_input(s);
    return val;
}

static void write_ier(Serial16550 *s, uint8_t val)
{
    uint8_t old = s->ier;
    s->ier = val & 0x0f;
    /* Enabling THRE while the transmitter is empty raises it at once. */
    if (!(old & IER_THRI) && (s->ier & IER_THRI)) {
        s->thr_ipending = true;
    }
}

static void write_fcr(Serial16550 *s, uint8_t val)
{
    if ((val ^ s->fcr) & FCR_ENABLE) {
        rx_clear(s);            /* switching FIFO mode empties the FIFOs */
    }
    if (val & FCR_CLEAR_RX) {
        rx_clear(s);
    }
    s->fcr = val & 0xc9;        /* enable, DMA mode, trigger level */
}

static void serial_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    Serial16550 *s = opaque;
    uint8_t val = value & 0xff;

    switch (offset) {
    case 0:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (s->divisor & 0xff00) | val;
        } else {
            transmit(s, val);
        }
        break;
    case 1:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (s->divisor & 0x00ff) | (uint16_t)(val << 8);
        } else {
            write_ier(s, val);
        }
        break;
    case 2:
        write_fcr(s, val);
        break;
    case 3:
        s->lcr = val;
        break;
    case 4:
        s->mcr = val & 0x1f;
        break;
    case 7:
        s->scr = val;
        break;
    default:
        break;                  /* LSR and MSR are read-only */
    }
    update_irq(s);
    maybe_wake_input(s);
}

static const IoOps serial_ops = {
    .read = serial_read,
    .write = serial_write,
};

static size_t serial_can_read(void *opaque)
{
    Serial16550 *s = opaque;
    /* In loopback the line is disconnected. */
    size_t room = (s->mcr & MCR_LOOP) ? 0 : rx_capacity(s) - s->rx_count;
    if (!room) {
        s->rx_stalled = true;
    }
    return room;
}

static void serial_receive(void *opaque, const uint8_t *buf, size_t len)
{
    Serial16550 *s = opaque;
    for (size_t i = 0; i < len; i++) {
        rx_push(s, buf[i]);
    }
    update_irq(s);
}

static const ChardevHandlers serial_chr_handlers = {
    .can_read = serial_can_read,
    .read = serial_receive,
};

void serial16550_reset(Serial16550 *s)
{
    s->divisor = 12;            /* 9600 baud */
    s->ier = 0;
    s->lcr = 0x03;              /* 8N1 */
    s->mcr = 0;
    s->lsr = LSR_THRE | LSR_TEMT;
    s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
    s->scr = 0;
    s->fcr = 0;
    s->thr_ipending = false;
    rx_clear(s);
    update_irq(s);
}

Serial16550 *serial16550_create(uint16_t io_base, unsigned gsi, Chardev *chr,
                                Error **errp)
{
    Serial16550 *s = xzalloc(sizeof(*s));
    s->gsi = gsi;
    s->io = io_region_add(AS_PIO, "serial", io_base, 8, &serial_ops, s, errp);
    if (!s->io) {
        free(s);
        return NULL;
    }
    if (chr && !chardev_attach(chr, &serial_chr_handlers, s, errp)) {
        io_region_del(s->io);
        free(s);
        return NULL;
    }
    s->chr = chr;
    serial16550_reset(s);
    return s;
}

void serial16550_destroy(Serial16550 *s)
{
    if (!s) {
        return;
    }
    if (s->chr) {
        chardev_detach(s->chr);
    }
    io_region_del(s->io);
    free(s);
}
