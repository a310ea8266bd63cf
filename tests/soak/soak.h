/*
 * The hostile guest program (see soak.c's opening comment), in three files:
 *
 *   soak.h      what both .c files share: constants, the Bar/Dev/Rng/Worker
 *               types, the random-number and MMIO helpers, the globals and
 *               the functions one file calls in the other
 *   soak-ops.c  the attack itself: hostile buffers, rings and descriptor
 *               tables, the operations on devices and ports, their weights
 *   soak.c      the rest: globals, sysfs and config space, the DMA page,
 *               device discovery, worker threads, leaving devices broken at
 *               the end, the heartbeat, main
 *
 * Built static by tests/soak/test_soak.py from soak.c and soak-ops.c.
 */
#ifndef SOAK_H
#define SOAK_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define HUGE_SIZE       (2u << 20)
#define SAFE_SIZE       (64u << 10)         /* balloon-only tail of the page */
#define GENERAL_SIZE    (HUGE_SIZE - SAFE_SIZE)
/*
 * Room kept for a ring part in the general area whatever size it was made
 * for: the other thread may select the same queue and give it another size
 * (up to 1024 entries: a 16 KiB descriptor table) before the device uses it,
 * and a ring near the end must still not reach the safe tail.
 */
#define RING_ROOM       (16u << 10)
#define MAX_DEVS        32
#define VIRTIO_VENDOR   0x1af4

/* Modern common configuration offsets (virtio 1.x 4.1.4.3). */
enum {
    C_DFSEL = 0, C_DF = 4, C_GFSEL = 8, C_GF = 12, C_MSIX = 16, C_NUMQ = 18, C_STATUS = 20,
    C_CFGGEN = 21, C_QSEL = 22, C_QSIZE = 24, C_QMSIX = 26, C_QENABLE = 28, C_QNOFF = 30,
    C_QDESC = 32, C_QAVAIL = 40, C_QUSED = 48, C_QRESET = 58, C_LEN = 64,
};
/* Legacy I/O BAR offsets. */
enum { L_HF = 0, L_GF = 4, L_PFN = 8, L_QNUM = 12, L_QSEL = 14, L_QNOTIFY = 16, L_STATUS = 18,
       L_ISR = 19, L_LEN = 32 };

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40

typedef struct Bar {
    uint64_t pa, len;
    bool io, present;
    volatile uint8_t *map;
} Bar;

typedef struct Dev {
    char bdf[32], dir[300];
    uint16_t vendor, device;
    bool virtio, balloon;
    int cfg_fd;
    Bar bar[6];
    volatile uint8_t *common, *notify, *isr, *devcfg;
    uint32_t notify_mult, notify_len, devcfg_len;
    volatile uint8_t *msix_table;
    uint32_t msix_len;
    uint16_t io_base;
    uint16_t numq;
    uint8_t saved_cfg[64];
    pthread_mutex_t cfg_lock;       /* one config-space write-and-restore at a time */
} Dev;

typedef struct Rng { uint64_t s; } Rng;

typedef struct Worker {
    int id;
    uint64_t seed;
    double until;
    pthread_t th;
} Worker;

enum { OP_QUEUE, OP_RESET_MID, OP_BAR, OP_CFG, OP_DOORBELL, OP_STATUS, OP_LEGACY, OP_PORTS,
       OP_DEVCFG, OP_QRESET, OP_BAR_MOVE, OP_NUM };

/* Globals, defined in soak.c. */
extern Dev devs[MAX_DEVS];
extern int ndevs;
extern uint8_t *dma_va;
extern uint64_t dma_pa, ram_end;
extern unsigned long long needs_reset_seen;
extern bool have_io;
extern __thread int thread_id;
/* Defined in soak-ops.c. */
extern const char *op_names[OP_NUM];

/* The queue a driver sends requests on: net's first tx, serial's port 0 output, else 0. */
static inline unsigned request_queue(const Dev *d)
{
    return d->device == 0x1000 || d->device == 0x1041 || d->device == 0x1003 ||
           d->device == 0x1043 ? 1 : 0;
}

/* ---- randomness ---- */

static inline uint64_t rnd(Rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dULL;
}

static inline uint64_t below(Rng *r, uint64_t n)
{
    return n ? rnd(r) % n : 0;
}

static inline bool chance(Rng *r, unsigned percent)
{
    return below(r, 100) < percent;
}

/* A guest-physical address inside our page (offset off). */
static inline uint64_t dpa(uint64_t off)
{
    return dma_pa + off;
}

/* ---- MMIO access ---- */

static inline void mmio_write(volatile uint8_t *p, uint64_t v, unsigned size)
{
    switch (size) {
    case 1: *(volatile uint8_t *)p = v; break;
    case 2: *(volatile uint16_t *)p = v; break;
    case 4: *(volatile uint32_t *)p = v; break;
    default: *(volatile uint64_t *)p = v; break;
    }
}

static inline uint64_t mmio_read(volatile uint8_t *p, unsigned size)
{
    switch (size) {
    case 1: return *(volatile uint8_t *)p;
    case 2: return *(volatile uint16_t *)p;
    case 4: return *(volatile uint32_t *)p;
    default: return *(volatile uint64_t *)p;
    }
}

#define C8(d, o)  (*(volatile uint8_t *)((d)->common + (o)))
#define C16(d, o) (*(volatile uint16_t *)((d)->common + (o)))
#define C32(d, o) (*(volatile uint32_t *)((d)->common + (o)))

static inline void set_q64(Dev *d, unsigned off, uint64_t v)
{
    C32(d, off) = (uint32_t)v;
    C32(d, off + 4) = v >> 32;
}

/* soak.c */
uint32_t cfg_read(Dev *d, unsigned off, unsigned size);
void cfg_write(Dev *d, unsigned off, uint32_t v, unsigned size);

/* soak-ops.c */
void put_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
              uint16_t next);
void kick(Dev *d, unsigned q);
void uart_save(void);
unsigned run_op(Rng *r, unsigned op, Dev *d);
unsigned pick_op(Rng *r);

#endif
