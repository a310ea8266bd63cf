#include "fakes.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "hw/irq.h"
#include "util/osdep.h"

/* ---- clocks and timers ---- */

struct Timer {
    VireoClock clock;
    IOHandler *cb;
    void *opaque;
    bool pending;
    int64_t expire;
    Timer *next;
};

static int64_t now_ns[2];
static Timer *timers;

void fake_clock_reset(void)
{
    now_ns[CLOCK_REALTIME_HOST] = FAKE_REALTIME_START_NS;
    now_ns[CLOCK_VIRTUAL] = 0;
}

int64_t clock_get_ns(VireoClock clock)
{
    if (!now_ns[CLOCK_REALTIME_HOST]) {
        fake_clock_reset();
    }
    return now_ns[clock];
}

Timer *timer_new(VireoClock clock, IOHandler *cb, void *opaque)
{
    Timer *t = xzalloc(sizeof(*t));
    *t = (Timer){ .clock = clock, .cb = cb, .opaque = opaque, .next = timers };
    timers = t;
    return t;
}

void timer_mod(Timer *t, int64_t expire_ns) { t->pending = true; t->expire = expire_ns; }
void timer_del(Timer *t) { t->pending = false; }
bool timer_pending(const Timer *t) { return t->pending; }

void timer_free(Timer *t)
{
    for (Timer **p = &timers; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    free(t);
}

static Timer *earliest_due(int64_t step_end_offset)
{
    Timer *best = NULL;
    for (Timer *t = timers; t; t = t->next) {
        if (t->pending && t->expire <= now_ns[t->clock] + step_end_offset &&
            (!best || t->expire - now_ns[t->clock] < best->expire - now_ns[best->clock])) {
            best = t;
        }
    }
    return best;
}

void fake_clock_advance(int64_t ns)
{
    clock_get_ns(CLOCK_VIRTUAL);
    int64_t end[2] = { now_ns[0] + ns, now_ns[1] + ns };
    for (;;) {
        Timer *t = earliest_due(end[0] - now_ns[0]);
        if (!t) {
            break;
        }
        /* Move both clocks to the timer's deadline, then fire it. */
        int64_t delta = t->expire - now_ns[t->clock];
        if (delta > 0) {
            now_ns[0] += delta;
            now_ns[1] += delta;
        }
        t->pending = false;
        t->cb(t->opaque);
    }
    now_ns[0] = end[0];
    now_ns[1] = end[1];
}

void main_loop_schedule(IOHandler *cb, void *opaque)
{
    cb(opaque);
}

#define FAKE_MAX_FDS 16
static struct { int fd; IOHandler *read; void *opaque; } fd_handlers[FAKE_MAX_FDS];
static unsigned nr_fd_handlers;

void main_loop_set_fd_handler(int fd, IOHandler *read, IOHandler *write, void *opaque)
{
    for (unsigned i = 0; i < nr_fd_handlers; i++) {
        if (fd_handlers[i].fd == fd) {
            fd_handlers[i] = fd_handlers[--nr_fd_handlers];
            break;
        }
    }
    if (read && nr_fd_handlers < FAKE_MAX_FDS) {
        fd_handlers[nr_fd_handlers++] = (typeof(fd_handlers[0])){ fd, read, opaque };
    }
}

bool fake_fd_watched(int fd)
{
    for (unsigned i = 0; i < nr_fd_handlers; i++) {
        if (fd_handlers[i].fd == fd) {
            return true;
        }
    }
    return false;
}

unsigned fake_fd_dispatch(void)
{
    unsigned ran = 0;
    for (unsigned i = 0; i < nr_fd_handlers; i++) {
        struct pollfd p = { .fd = fd_handlers[i].fd, .events = POLLIN };
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
            fd_handlers[i].read(fd_handlers[i].opaque);
            ran++;
        }
    }
    return ran;
}

/* ---- chardev ---- */

struct Chardev {
    const ChardevHandlers *h;
    void *opaque;
    uint8_t *out;
    size_t out_len;
};

Chardev *fake_chardev_new(void)
{
    return xzalloc(sizeof(Chardev));
}

bool chardev_attach(Chardev *chr, const ChardevHandlers *h, void *opaque, Error **errp)
{
    if (chr->h) {
        error_setg(errp, "chardev busy");
        return false;
    }
    chr->h = h;
    chr->opaque = opaque;
    return true;
}

void chardev_accept_input(Chardev *chr)
{
}

void chardev_detach(Chardev *chr)
{
    chr->h = NULL;
}

size_t chardev_write(Chardev *chr, const void *buf, size_t len)
{
    chr->out = xrealloc(chr->out, chr->out_len + len);
    memcpy(chr->out + chr->out_len, buf, len);
    chr->out_len += len;
    return len;
}

const uint8_t *fake_chardev_output(Chardev *chr, size_t *len)
{
    *len = chr->out_len;
    return chr->out;
}

size_t fake_chardev_input(Chardev *chr, const void *buf, size_t len)
{
    size_t room = chr->h->can_read(chr->opaque);
    size_t n = MIN(room, len);
    if (n) {
        chr->h->read(chr->opaque, buf, n);
    }
    return n;
}

void fake_chardev_free(Chardev *chr)
{
    free(chr->out);
    free(chr);
}

/* ---- interrupts ---- */

FakeIrqState fake_irq;

static void fake_set_level(void *opaque, unsigned gsi, bool level)
{
    if (gsi < 32) {
        if (level && !fake_irq.level[gsi]) {
            fake_irq.raises[gsi]++;
        }
        fake_irq.level[gsi] = level;
    }
}

static void fake_send_msi(void *opaque, uint64_t addr, uint32_t data)
{
    if (fake_irq.nr_msi < FAKE_MAX_MSI) {
        fake_irq.msi_addr[fake_irq.nr_msi] = addr;
        fake_irq.msi_data[fake_irq.nr_msi] = data;
    }
    fake_irq.nr_msi++;
}

static int fake_irqfd_add(void *opaque, int fd, uint64_t addr, uint32_t data)
{
    for (int i = 0; i < 8; i++) {
        if (fake_irq.irqfd_fd[i] < 0) {
            fake_irq.irqfd_fd[i] = fd;
            fake_irq.irqfd_addr[i] = addr;
            fake_irq.irqfd_data[i] = data;
            fake_irq.irqfd_adds++;
            return i;
        }
    }
    return -1;
}

static bool fake_irqfd_update(void *opaque, int h, uint64_t addr, uint32_t data)
{
    fake_irq.irqfd_addr[h] = addr;
    fake_irq.irqfd_data[h] = data;
    fake_irq.irqfd_updates++;
    return true;
}

static void fake_irqfd_remove(void *opaque, int h)
{
    fake_irq.irqfd_fd[h] = -1;
    fake_irq.irqfd_removes++;
}

void fake_irq_install(bool with_irqfd)
{
    memset(&fake_irq, 0, sizeof(fake_irq));
    for (int i = 0; i < 8; i++) {
        fake_irq.irqfd_fd[i] = -1;
    }
    IrqBackend b = { .set_level = fake_set_level, .send_msi = fake_send_msi };
    if (with_irqfd) {
        b.irqfd_add = fake_irqfd_add;
        b.irqfd_update = fake_irqfd_update;
        b.irqfd_remove = fake_irqfd_remove;
    }
    irq_set_backend(&b);
}
