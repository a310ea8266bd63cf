/*
 * 16550A UART: the PC serial port (ttyS0 at 0x3f8, IRQ 4).
 *
 * Transmitted bytes go to a chardev at once (there is no wire to wait for),
 * so the transmitter always looks empty. Received bytes wait in the
 * 16-byte receive FIFO; the chardev is asked for no more than fits.
 */
#ifndef VIREO_HW_SERIAL_16550_H
#define VIREO_HW_SERIAL_16550_H

#include <stdint.h>

#include "chardev/chardev.h"
#include "util/error.h"

typedef struct Serial16550 Serial16550;

/* chr may be NULL: output is then discarded and nothing is ever received. */
Serial16550 *serial16550_create(uint16_t io_base, unsigned gsi, Chardev *chr,
                                Error **errp);
void serial16550_reset(Serial16550 *s);
void serial16550_destroy(Serial16550 *s);

#endif
