/*
 * Stand-ins for the main loop and chardevs so device unit tests run
 * without the rest of vireo: clocks that move only when the test says,
 * timers fired by fake_clock_advance, a chardev that records output, and an
 * interrupt back-end that records line levels and MSIs.
 */
#ifndef VIREO_TESTS_MACHINE_FAKES_H
#define VIREO_TESTS_MACHINE_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chardev/chardev.h"
#include "core/main-loop.h"

/* Both clocks start at these values and move together. */
#define FAKE_REALTIME_START_NS (1700000000LL * 1000000000LL)
void fake_clock_reset(void);
void fake_clock_advance(int64_t ns);

/* fd handlers registered with main_loop_set_fd_handler; run the readable ones. */
unsigned fake_fd_dispatch(void);
bool fake_fd_watched(int fd);

/* A chardev whose output lands in a buffer. */
Chardev *fake_chardev_new(void);
const uint8_t *fake_chardev_output(Chardev *chr, size_t *len);
/* Offer input as the main loop would (respecting can_read); returns bytes taken. */
size_t fake_chardev_input(Chardev *chr, const void *buf, size_t len);
void fake_chardev_free(Chardev *chr);

/* Interrupt recorder, installed with fake_irq_install(). */
#define FAKE_MAX_MSI 64
typedef struct FakeIrqState {
    bool level[32];
    unsigned raises[32];
    unsigned nr_msi;
    uint64_t msi_addr[FAKE_MAX_MSI];
    uint32_t msi_data[FAKE_MAX_MSI];
    /* irqfd back-end, when installed with with_irqfd */
    int irqfd_fd[8];            /* -1: free */
    uint64_t irqfd_addr[8];
    uint32_t irqfd_data[8];
    unsigned irqfd_adds, irqfd_updates, irqfd_removes;
} FakeIrqState;
extern FakeIrqState fake_irq;
void fake_irq_install(bool with_irqfd);

#endif
