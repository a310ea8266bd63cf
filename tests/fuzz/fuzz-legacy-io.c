/*
 * libFuzzer target for the PC's legacy devices as a guest drives them
 * through port I/O (the port dispatch a KVM I/O exit goes through): the
 * 16550 UART at 0x3f8 (hw/serial-16550.c) with a null chardev whose input
 * the harness feeds through its front-end handlers, the MC146818 RTC at
 * 0x70/0x71 (hw/rtc-mc146818.c) running on the virtual clock, and the i8042
 * at 0x60/0x64 (hw/i8042.c).
 *
 * Input: operations, each an opcode byte:
 *   bits 0-1  0 UART, 1 RTC, 2 i8042, 3 other (bit 2 set: the virtual clock
 *             runs to its next timer, else bytes arrive on the UART's
 *             chardev: a length byte, then those bytes)
 *   bit 2     write (a value byte follows), else read
 *   bits 3-5  the register (UART 0..7; RTC and i8042: bit 3 picks the port)
 *   bits 6-7  access size 1, 2 or 4 bytes (3: 1)
 * Devices are reset at the start of every input.
 *
 * Checks besides the sanitizers: interrupt levels only on the devices'
 * lines (UART 4, RTC 8, the i8042's keyboard 1 and mouse 12), a UART read of
 * the line status register never reports data ready while its receive
 * FIFO was just reset (FCR bit 1) and nothing arrived since (from the
 * chardev or, in loopback, from the transmitter).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "chardev/chardev-internal.h"
#include "core/main-loop.h"
#include "hw/i8042.h"
#include "hw/irq.h"
#include "hw/rtc-mc146818.h"
#include "hw/serial-16550.h"
#include "memory/address-space.h"
#include "fuzz-loop.h"

#define UART    0x3f8u

static Serial16550 *uart;
static Rtc *rtc;
static I8042 *kbc;
static Chardev *chr;
static unsigned resets;
static bool rx_empty;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-legacy-io: %s\n", what);
    abort();
}

static void set_level(void *opaque, unsigned gsi, bool level)
{
    if (gsi != 1 && gsi != 4 && gsi != 8 && gsi != 12) {
        fail("an interrupt on a line none of these devices owns");
    }
}

static void send_msi(void *opaque, uint64_t addr, uint32_t data)
{
    fail("an MSI from an ISA device");
}

static void reset_line(void *opaque)
{
    resets++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const IrqBackend irq = { .set_level = set_level, .send_msi = send_msi };
    Error *err = NULL;
    irq_set_backend(&irq);
    clock_virtual_set_manual(true);
    RtcConfig rc = { .base = "2020-02-29T23:59:50", .clock = CLOCK_VIRTUAL };
    if (!(chr = chardev_new_from_opts("null,id=serial0", &err)) ||
        !(uart = serial16550_create(UART, 4, chr, &err)) ||
        !(rtc = rtc_create(RTC_IO_BASE, 8, &rc, &err)) ||
        !(kbc = i8042_create(reset_line, NULL, &err))) {
        fail(error_get_pretty(err));
    }
    return 0;
}

static void uart_input(const uint8_t *buf, size_t len)
{
    if (chr->fe && chr->fe->can_read) {
        size_t room = chr->fe->can_read(chr->fe_opaque);
        len = len > room ? room : len;
    }
    if (len && chr->fe && chr->fe->read) {
        chr->fe->read(chr->fe_opaque, buf, len);
        rx_empty = false;
    }
    fuzz_loop_pump(4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    serial16550_reset(uart);
    rtc_reset(rtc);
    i8042_reset(kbc);
    rx_empty = false;
    size_t pos = 0;
    for (unsigned ops = 0; pos < size && ops < 1024; ops++) {
        uint8_t op = data[pos++];
        bool write = op & 4;
        unsigned reg = op >> 3 & 7;
        static const unsigned sizes[4] = { 1, 2, 4, 1 };
        unsigned sz = sizes[op >> 6];
        uint8_t val = 0;
        if ((op & 3) == 3) {
            if (write) {
                int64_t next = clock_virtual_next_deadline();
                if (next >= 0) {
                    clock_virtual_warp(next);
                }
            } else if (pos < size) {
                size_t len = data[pos++];
                len = len > size - pos ? size - pos : len;
                uart_input(data + pos, len);
                pos += len;
            }
            continue;
        }
        if (write) {
            val = pos < size ? data[pos++] : 0;
        }
        uint64_t port;
        switch (op & 3) {
        case 0:
            port = UART + reg;
            break;
        case 1:
            port = RTC_IO_BASE + (reg & 1);
            break;
        default:
            port = reg & 1 ? 0x64 : 0x60;
            break;
        }
        uint64_t v = 0;
        if (write) {
            io_dispatch_write(AS_PIO, port, sz, val);
            if (port == UART + 2 && (val & 3) == 3) {
                rx_empty = true;    /* FIFOs on, receive FIFO cleared */
            } else if (port == UART) {
                rx_empty = false;   /* in loopback, what is sent is received */
            }
        } else {
            io_dispatch_read(AS_PIO, port, sz, &v);
            if (port == UART + 5 && sz == 1 && rx_empty && (v & 1)) {
                fail("data ready right after the receive FIFO was reset");
            }
        }
    }
    return 0;
}
