/*
 * libFuzzer target for the qtest protocol (machine/accel-qtest.c): the
 * input is what a test program writes to the -qtest socket. The real
 * protocol engine parses the lines (port and memory accesses, read/write in
 * hex and base64, memset, clocks, IRQ interception) against 1 MiB of guest
 * RAM and a fw_cfg device on the real port dispatch.
 *
 * What stands in for the rest of vireo is here, small: a chardev that
 * collects replies (draining after each read, as a peer that keeps up
 * would) and a virtual clock that moves only when qtest warps it.
 *
 * Transfers of more than 1 MiB are legal (up to 256 MiB) but only cost
 * memory; inputs asking for them are not run, so the fuzzer stays within
 * its RSS limit. Each input ends with a newline, so no partial line leaks
 * into the next one.
 *
 * Checks besides the sanitizers: every reply line starts with "OK",
 * "FAIL" or "IRQ".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chardev/chardev.h"
#include "core/main-loop.h"
#include "hw/fw-cfg.h"
#include "machine/accel-qtest.h"
#include "memory/guest-memory.h"
#include "util/osdep.h"
#include "util/strbuf.h"

#define RAM_SIZE        (1u << 20)
#define MAX_TRANSFER    (1u << 20)
#define MAX_INPUT       8192

/* ---- stand-ins: a chardev and the virtual clock ---- */

struct Chardev {
    const ChardevHandlers *h;
    void *opaque;
    StrBuf out;
};

bool chardev_attach(Chardev *chr, const ChardevHandlers *h, void *opaque, Error **errp)
{
    chr->h = h;
    chr->opaque = opaque;
    return true;
}

void chardev_accept_input(Chardev *chr)
{
}

size_t chardev_write(Chardev *chr, const void *buf, size_t len)
{
    strbuf_append(&chr->out, buf, len);
    return len;
}

size_t chardev_output_pending(const Chardev *chr)
{
    return chr->out.len;
}

void chardev_set_output_limit(Chardev *chr, size_t max)
{
}

static int64_t virtual_ns;

int64_t clock_get_ns(VireoClock clock)
{
    return virtual_ns;
}

void clock_virtual_set_manual(bool manual)
{
}

int64_t clock_virtual_next_deadline(void)
{
    return -1;      /* no timers: the board here has no timed devices */
}

void clock_virtual_warp(int64_t target_ns)
{
    if (target_ns > virtual_ns) {
        virtual_ns = target_ns;
    }
}

/* ---- the target ---- */

static Chardev chr;
static GuestMemory mem;
static unsigned reply_lines;

static void fail(const char *what, const char *line)
{
    fprintf(stderr, "fuzz-qtest: %s\n%s\n", what, line);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    if (!guest_memory_create_private(&mem, RAM_SIZE, RAM_SIZE, &err) ||
        !fw_cfg_create(FW_CFG_IO_BASE, &mem, &err) ||
        !qtest_accel_init(&chr, &mem, &err)) {
        fprintf(stderr, "fuzz-qtest: %s\n", error_get_pretty(err));
        exit(1);
    }
    return 0;
}

/* Take the complete reply lines out of the chardev and check them; returns
 * how many bytes were taken. */
static size_t drain(void)
{
    char *buf = chr.out.str;
    size_t used = 0;
    char *nl;
    while (buf && (nl = memchr(buf + used, '\n', chr.out.len - used))) {
        *nl = '\0';
        const char *line = buf + used;
        if (strncmp(line, "OK", 2) && strncmp(line, "FAIL", 4) && strncmp(line, "IRQ", 3)) {
            fail("reply line is neither OK, FAIL nor IRQ:", line);
        }
        reply_lines++;
        used = (size_t)(nl - buf) + 1;
    }
    if (used) {
        memmove(buf, buf + used, chr.out.len - used + 1);
        chr.out.len -= used;
    }
    if (chr.h && chr.h->drained) {
        chr.h->drained(chr.opaque);
    }
    return used;
}

/*
 * Whether any read, b64read, write, b64write or memset line asks for more
 * than MAX_TRANSFER bytes and no more than qtest allows (256 MiB; larger
 * sizes are refused at once). Lines are split as qtest splits them: at
 * '\n', each ending at its first NUL; the size is the third word.
 */
static bool asks_too_much(const uint8_t *data, size_t size)
{
    bool big = false;
    size_t pos = 0;
    while (pos < size && !big) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        char *line = xmalloc(len + 1);
        memcpy(line, data + pos, len);
        line[len] = '\0';
        pos += len + 1;
        char *save = NULL;
        char *cmd = strtok_r(line, " ", &save);
        if (cmd && (!strcmp(cmd, "read") || !strcmp(cmd, "write") || !strcmp(cmd, "b64read") ||
                    !strcmp(cmd, "b64write") || !strcmp(cmd, "memset"))) {
            strtok_r(NULL, " ", &save);
            char *n = strtok_r(NULL, " ", &save);
            unsigned long long v = n ? strtoull(n, NULL, 0) : 0;
            big = v > MAX_TRANSFER && v <= (256u << 20);
        }
        free(line);
    }
    return big;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT || asks_too_much(data, size)) {
        return -1;
    }
    reply_lines = 0;
    virtual_ns = 0;
    size_t done = 0;
    unsigned stalls = 0;
    while (done < size && stalls < 2) {
        size_t room = chr.h->can_read(chr.opaque);
        size_t n = size - done < room ? size - done : room;
        if (n) {
            chr.h->read(chr.opaque, data + done, n);
            done += n;
            stalls = 0;
        } else {
            stalls++;
        }
        if (drain()) {
            stalls = 0;     /* held lines ran as their output drained */
        }
    }
    if (done < size) {
        fail("qtest stopped taking input although its output was drained", "");
    }
    chr.h->read(chr.opaque, (const uint8_t *)"\n", 1);
    drain();
    return 0;
}
