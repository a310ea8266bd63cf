/*
 * qtest protocol server. One command per line, words separated by single
 * spaces; every command gets exactly one reply line ("OK ..." or
 * "FAIL ..."), and interrupt changes are reported asynchronously as
 * "IRQ raise N" / "IRQ lower N" once the test intercepted them.
 *
 * Unlike a debugging aid, this parser treats its input as hostile:
 * missing words, bad numbers and huge lengths get a FAIL line.
 */
#include "machine/accel-qtest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/main-loop.h"
#include "hw/irq.h"
#include "memory/address-space.h"
#include "util/osdep.h"
#include "util/strbuf.h"

#define QTEST_MAX_LINE (64u << 20)      /* a b64write of 32 MiB fits */
#define QTEST_MAX_TRANSFER (256u << 20) /* largest read/memset in one command */
/* Longest reply: "OK 0x" and two hex digits per byte of the largest read. */
#define QTEST_MAX_REPLY (2ull * QTEST_MAX_TRANSFER + 16)
/* Past this much unsent output, no further command runs until it drains: a
 * client that stops reading costs at most one reply plus this. */
#define QTEST_OUTPUT_HIGH (1u << 20)
#define QTEST_MAX_WORDS 8
#define QTEST_MAX_IRQ 256

typedef struct QtestState {
    Chardev *chr;
    GuestMemory *mem;
    StrBuf inbuf;
    bool intercept;             /* irq_intercept_in/out was sent */
    bool held;                  /* complete lines wait in inbuf for output to drain */
    bool processing;            /* inside process_buffered() */
    bool irq_level[QTEST_MAX_IRQ];
    FILE *log;                  /* -qtest-log file, or NULL */
    bool opened;                /* a client is connected (replies are logged) */
    struct timespec opened_at;  /* log timestamps count from the connection */
} QtestState;

static QtestState qtest;
static bool qtest_on;

bool qtest_enabled(void)
{
    return qtest_on;
}

/* Seconds since the client connected, for the log. */
static double log_elapsed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - qtest.opened_at.tv_sec) +
           (double)(now.tv_nsec - qtest.opened_at.tv_nsec) / 1e9;
}

/* A request, its words joined by single spaces as they were parsed. */
static void log_request(char **w, int n)
{
    if (!qtest.log) {
        return;
    }
    fprintf(qtest.log, "[R +%.06f]", log_elapsed());
    for (int i = 0; i < n; i++) {
        fprintf(qtest.log, " %s", w[i]);
    }
    fputc('\n', qtest.log);
}

/* Every line the client gets goes through here, so the log misses none. */
static void send_text(const char *s, size_t len)
{
    chardev_write(qtest.chr, s, len);
    if (qtest.log && qtest.opened) {
        fprintf(qtest.log, "[S +%.06f] ", log_elapsed());
        fwrite(s, 1, len, qtest.log);
    }
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
    char *s;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        abort();
    }
    va_end(ap);
    send_text(s, strlen(s));
    free(s);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-') {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) {
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

/* ---- memory: RAM first, then MMIO dispatch, like a CPU's view ---- */

/*
 * The width of the next device access of a buffer transfer at @addr: the
 * largest naturally aligned power of two up to 4 bytes that fits, as QEMU
 * splits such a transfer, so a 2-byte read of a 16-bit register is one
 * 2-byte access and not two byte reads the device may not serve.
 */
static unsigned mmio_chunk(uint64_t addr, uint64_t left)
{
    unsigned size = 4;
    while (size > 1 && (size > left || (addr & (size - 1)))) {
        size /= 2;
    }
    return size;
}

static void phys_read(uint64_t addr, uint8_t *buf, uint64_t len)
{
    if (gmem_read(qtest.mem, addr, buf, len)) {
        return;
    }
    for (uint64_t i = 0; i < len;) {
        unsigned size = mmio_chunk(addr + i, len - i);
        uint64_t v = 0;
        if (gmem_read(qtest.mem, addr + i, &buf[i], 1)) {
            i++;
            continue;
        }
        io_dispatch_read(AS_MMIO, addr + i, size, &v);
        for (unsigned b = 0; b < size; b++) {
            buf[i + b] = (uint8_t)(v >> (8 * b));
        }
        i += size;
    }
}

static void phys_write(uint64_t addr, const uint8_t *buf, uint64_t len)
{
    if (gmem_write(qtest.mem, addr, buf, len)) {
        return;
    }
    for (uint64_t i = 0; i < len;) {
        unsigned size = mmio_chunk(addr + i, len - i);
        uint64_t v = 0;
        if (gmem_write(qtest.mem, addr + i, &buf[i], 1)) {
            i++;
            continue;
        }
        for (unsigned b = 0; b < size; b++) {
            v |= (uint64_t)buf[i + b] << (8 * b);
        }
        io_dispatch_write(AS_MMIO, addr + i, size, v);
        i += size;
    }
}

/* Sized accesses go to a device as one access (registers care about width). */
static uint64_t phys_read_sized(uint64_t addr, unsigned size)
{
    uint64_t v = 0;
    if (gmem_read(qtest.mem, addr, &v, size)) {
        return v;
    }
    io_dispatch_read(AS_MMIO, addr, size, &v);
    return v;
}

static void phys_write_sized(uint64_t addr, unsigned size, uint64_t v)
{
    if (!gmem_write(qtest.mem, addr, &v, size)) {
        io_dispatch_write(AS_MMIO, addr, size, v);
    }
}

static unsigned width_of(char c)
{
    switch (c) {
    case 'b': return 1;
    case 'w': return 2;
    case 'l': return 4;
    case 'q': return 8;
    default: return 0;
    }
}

static uint64_t width_mask(unsigned size)
{
    return size == 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
}

/* ---- commands ---- */

static void cmd_out(char **w, int n)
{
    uint64_t addr, val;
    if (n < 3 || !parse_u64(w[1], &addr) || !parse_u64(w[2], &val) || addr > 0xffff) {
        reply("FAIL usage: %s PORT VALUE\n", w[0]);
        return;
    }
    unsigned size = width_of(w[0][3]);
    io_dispatch_write(AS_PIO, addr, size, val & width_mask(size));
    reply("OK\n");
}

static void cmd_in(char **w, int n)
{
    uint64_t addr, val;
    if (n < 2 || !parse_u64(w[1], &addr) || addr > 0xffff) {
        reply("FAIL usage: %s PORT\n", w[0]);
        return;
    }
    io_dispatch_read(AS_PIO, addr, width_of(w[0][2]), &val);
    reply("OK 0x%04" PRIx64 "\n", val);
}

static void cmd_write_sized(char **w, int n)
{
    uint64_t addr, val;
    if (n < 3 || !parse_u64(w[1], &addr) || !parse_u64(w[2], &val)) {
        reply("FAIL usage: %s ADDR VALUE\n", w[0]);
        return;
    }
    unsigned size = width_of(w[0][5]);
    phys_write_sized(addr, size, val & width_mask(size));
    reply("OK\n");
}

static void cmd_read_sized(char **w, int n)
{
    uint64_t addr;
    if (n < 2 || !parse_u64(w[1], &addr)) {
        reply("FAIL usage: %s ADDR\n", w[0]);
        return;
    }
    unsigned size = width_of(w[0][4]);
    reply("OK 0x%016" PRIx64 "\n", phys_read_sized(addr, size) & width_mask(size));
}

static bool parse_range(char **w, int n, int need, uint64_t *addr, uint64_t *len)
{
    if (n < need || !parse_u64(w[1], addr) || !parse_u64(w[2], len)) {
        reply("FAIL usage: %s ADDR SIZE%s\n", w[0], need > 3 ? " DATA" : "");
        return false;
    }
    if (*len > QTEST_MAX_TRANSFER) {
        reply("FAIL size %" PRIu64 " is larger than %u\n", *len, QTEST_MAX_TRANSFER);
        return false;
    }
    return true;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void cmd_read(char **w, int n)
{
    uint64_t addr, len;
    if (!parse_range(w, n, 3, &addr, &len)) {
        return;
    }
    if (len == 0) {
        reply("FAIL size must not be 0\n");
        return;
    }
    static const char digits[] = "0123456789abcdef";
    uint8_t *data = xmalloc(len);
    phys_read(addr, data, len);
    /* Written as one buffer: a formatted copy would double a large reply. */
    char *line = xmalloc(len * 2 + 6), *p = line;
    memcpy(p, "OK 0x", 5);
    p += 5;
    for (uint64_t i = 0; i < len; i++) {
        *p++ = digits[data[i] >> 4];
        *p++ = digits[data[i] & 15];
    }
    *p++ = '\n';
    send_text(line, (size_t)(p - line));
    free(line);
    free(data);
}

static void cmd_write(char **w, int n)
{
    uint64_t addr, len;
    if (!parse_range(w, n, 4, &addr, &len)) {
        return;
    }
    const char *hex = w[3];
    if (strncmp(hex, "0x", 2) != 0 || strlen(hex) < 3) {
        reply("FAIL data must be 0x followed by hex digits\n");
        return;
    }
    hex += 2;
    size_t digits = strlen(hex);
    uint8_t *data = xzalloc(len);
    for (uint64_t i = 0; i < len && (i * 2 + 1) < digits; i++) {
        int hi = hex_nibble(hex[i * 2]), lo = hex_nibble(hex[i * 2 + 1]);
        if (hi < 0 || lo < 0) {
            reply("FAIL invalid hex digit\n");
            free(data);
            return;
        }
        data[i] = (uint8_t)(hi << 4 | lo);
    }
    phys_write(addr, data, len);
    free(data);
    reply("OK\n");
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* "OK " + base64 of in + "\n"; *out_len gets the line's length. */
static char *base64_reply(const uint8_t *in, uint64_t len, size_t *out_len)
{
    char *out = xmalloc((len + 2) / 3 * 4 + 5), *p = out;
    memcpy(p, "OK ", 3);
    p += 3;
    for (uint64_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        *p++ = b64_alphabet[(v >> 18) & 63];
        *p++ = b64_alphabet[(v >> 12) & 63];
        *p++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        *p++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    *p++ = '\n';
    *out_len = (size_t)(p - out);
    return out;
}

/* Decode into out (room for max bytes); returns the decoded length or -1. */
static int64_t base64_decode(const char *in, uint8_t *out, uint64_t max)
{
    uint32_t acc = 0;
    int bits = 0;
    uint64_t n = 0;
    for (; *in && *in != '='; in++) {
        const char *pos = strchr(b64_alphabet, *in);
        if (!pos) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)(pos - b64_alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < max) {
                out[n] = (uint8_t)(acc >> bits);
            }
            n++;
        }
    }
    return (int64_t)n;
}

static void cmd_b64read(char **w, int n)
{
    uint64_t addr, len;
    if (!parse_range(w, n, 3, &addr, &len)) {
        return;
    }
    uint8_t *data = xmalloc(len);
    phys_read(addr, data, len);
    size_t line_len;
    char *line = base64_reply(data, len, &line_len);
    send_text(line, line_len);
    free(line);
    free(data);
}

static void cmd_b64write(char **w, int n)
{
    uint64_t addr, len;
    if (!parse_range(w, n, 4, &addr, &len)) {
        return;
    }
    uint8_t *data = xzalloc(len);
    if (base64_decode(w[3], data, len) < 0) {
        reply("FAIL invalid base64 data\n");
        free(data);
        return;
    }
    phys_write(addr, data, len);
    free(data);
    reply("OK\n");
}

static void cmd_memset(char **w, int n)
{
    uint64_t addr, len, pattern;
    if (!parse_range(w, n, 4, &addr, &len) || !parse_u64(w[3], &pattern)) {
        if (n >= 4) {
            reply("FAIL usage: memset ADDR SIZE VALUE\n");
        }
        return;
    }
    if (!gmem_fill(qtest.mem, addr, (uint8_t)pattern, len)) {
        uint8_t *data = xmalloc(len);
        memset(data, (int)(pattern & 0xff), len);
        phys_write(addr, data, len);
        free(data);
    }
    reply("OK\n");
}

static void cmd_clock_step(char **w, int n)
{
    int64_t ns;
    int64_t now = clock_get_ns(CLOCK_VIRTUAL);
    if (n >= 2) {
        if (!parse_i64(w[1], &ns) || ns < 0) {
            reply("FAIL usage: clock_step [NS]\n");
            return;
        }
    } else {
        int64_t deadline = clock_virtual_next_deadline();
        ns = deadline < 0 ? 0 : MAX(deadline - now, 0);
    }
    /* The clock saturates at its largest value rather than wrapping. */
    clock_virtual_warp(ns > INT64_MAX - now ? INT64_MAX : now + ns);
    reply("OK %" PRIi64 "\n", clock_get_ns(CLOCK_VIRTUAL));
}

static void cmd_clock_set(char **w, int n)
{
    int64_t ns;
    if (n < 2 || !parse_i64(w[1], &ns)) {
        reply("FAIL usage: clock_set NS\n");
        return;
    }
    clock_virtual_warp(ns);
    reply("OK %" PRIi64 "\n", clock_get_ns(CLOCK_VIRTUAL));
}

static void cmd_irq_intercept(char **w, int n)
{
    if (n < 2) {
        reply("FAIL usage: %s QOM-PATH\n", w[0]);
        return;
    }
    /* vireo's interrupt controllers are one GSI space; any controller path
     * the test names (ioapic, /machine/...) selects it. */
    qtest.intercept = true;
    reply("OK\n");
}

static void process_line(char *line)
{
    char *w[QTEST_MAX_WORDS] = { 0 };
    int n = 0;
    for (char *tok = strtok(line, " "); tok && n < QTEST_MAX_WORDS; tok = strtok(NULL, " ")) {
        w[n++] = tok;
    }
    log_request(w, n);
    if (n == 0) {
        reply("FAIL empty command\n");
        return;
    }
    const char *c = w[0];
    if (!strcmp(c, "outb") || !strcmp(c, "outw") || !strcmp(c, "outl")) {
        cmd_out(w, n);
    } else if (!strcmp(c, "inb") || !strcmp(c, "inw") || !strcmp(c, "inl")) {
        cmd_in(w, n);
    } else if (!strncmp(c, "write", 5) && strlen(c) == 6 && width_of(c[5])) {
        cmd_write_sized(w, n);
    } else if (!strncmp(c, "read", 4) && strlen(c) == 5 && width_of(c[4])) {
        cmd_read_sized(w, n);
    } else if (!strcmp(c, "read")) {
        cmd_read(w, n);
    } else if (!strcmp(c, "write")) {
        cmd_write(w, n);
    } else if (!strcmp(c, "b64read")) {
        cmd_b64read(w, n);
    } else if (!strcmp(c, "b64write")) {
        cmd_b64write(w, n);
    } else if (!strcmp(c, "memset")) {
        cmd_memset(w, n);
    } else if (!strcmp(c, "clock_step")) {
        cmd_clock_step(w, n);
    } else if (!strcmp(c, "clock_set")) {
        cmd_clock_set(w, n);
    } else if (!strcmp(c, "irq_intercept_in") || !strcmp(c, "irq_intercept_out")) {
        cmd_irq_intercept(w, n);
    } else if (!strcmp(c, "endianness")) {
        reply("OK little\n");
    } else {
        reply("FAIL Unknown command '%s'\n", c);
    }
}

static bool output_backlogged(void)
{
    return chardev_output_pending(qtest.chr) > QTEST_OUTPUT_HIGH;
}

/*
 * Run the complete lines in inbuf, in order, until output backs up: the
 * rest wait (held) for the peer to read, so what vireo queues for a client
 * that stops reading stays bounded by one reply plus QTEST_OUTPUT_HIGH.
 */
static void process_buffered(void)
{
    char *nl;
    size_t consumed = 0;
    qtest.processing = true;
    qtest.held = false;
    while ((nl = memchr(qtest.inbuf.str + consumed, '\n', qtest.inbuf.len - consumed))) {
        if (output_backlogged()) {
            qtest.held = true;
            break;
        }
        *nl = '\0';
        char *line = qtest.inbuf.str + consumed;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') {
            line[l - 1] = '\0';
        }
        consumed = (size_t)(nl - qtest.inbuf.str) + 1;
        process_line(line);
    }
    if (!qtest.held && qtest.inbuf.len - consumed > QTEST_MAX_LINE) {
        reply("FAIL line too long\n");
        consumed = qtest.inbuf.len;
    }
    memmove(qtest.inbuf.str, qtest.inbuf.str + consumed, qtest.inbuf.len - consumed);
    qtest.inbuf.len -= consumed;
    qtest.inbuf.str[qtest.inbuf.len] = '\0';
    qtest.processing = false;
}

static size_t qtest_can_read(void *opaque)
{
    return qtest.held || output_backlogged() ? 0 : 4096;
}

static void qtest_read(void *opaque, const uint8_t *buf, size_t len)
{
    strbuf_append(&qtest.inbuf, (const char *)buf, len);
    process_buffered();
}

/* The peer caught up: run what was held, then take input again. */
static void qtest_drained(void *opaque)
{
    if (qtest.processing) {
        return;
    }
    if (qtest.held) {
        process_buffered();
    }
    if (!qtest.held) {
        chardev_accept_input(qtest.chr);
    }
}

static void qtest_event(void *opaque, ChardevEvent ev)
{
    if (ev == CHARDEV_EVENT_OPENED) {
        memset(qtest.irq_level, 0, sizeof(qtest.irq_level));
        clock_gettime(CLOCK_MONOTONIC, &qtest.opened_at);
        qtest.opened = true;
        if (qtest.log) {
            fprintf(qtest.log, "[I %.06f] OPENED\n", log_elapsed());
        }
    } else if (ev == CHARDEV_EVENT_CLOSED) {
        qtest.opened = false;
        if (qtest.log) {
            fprintf(qtest.log, "[I +%.06f] CLOSED\n", log_elapsed());
        }
    }
}

static const ChardevHandlers qtest_handlers = {
    .can_read = qtest_can_read,
    .read = qtest_read,
    .event = qtest_event,
    .drained = qtest_drained,
};

/* IRQ back-end: report level changes of intercepted lines to the test. */
static void qtest_set_irq(void *opaque, unsigned gsi, bool level)
{
    if (gsi >= QTEST_MAX_IRQ || qtest.irq_level[gsi] == level) {
        return;
    }
    qtest.irq_level[gsi] = level;
    if (qtest.intercept) {
        reply("IRQ %s %u\n", level ? "raise" : "lower", gsi);
    }
}

/* Without a CPU, an MSI is a memory write the test can observe in RAM. */
static void qtest_send_msi(void *opaque, uint64_t addr, uint32_t data)
{
    phys_write_sized(addr, 4, data);
}

bool qtest_accel_set_log(const char *path, Error **errp)
{
    if (!path || !strcmp(path, "none")) {
        return true;
    }
    qtest.log = fopen(path, "we");
    if (!qtest.log) {
        error_setg_errno(errp, errno, "-qtest-log: cannot open '%s'", path);
        return false;
    }
    /* Whole lines, so a test that fails mid-way leaves a readable log. */
    setvbuf(qtest.log, NULL, _IOLBF, 0);
    return true;
}

bool qtest_accel_init(Chardev *chr, GuestMemory *mem, Error **errp)
{
    static GuestMemory no_ram;     /* a board without RAM (-machine none) */
    qtest.chr = chr;
    qtest.mem = mem ? mem : &no_ram;
    if (!chardev_attach(chr, &qtest_handlers, NULL, errp)) {
        return false;
    }
    /* Replies are never cut: process_buffered() bounds what is queued. */
    chardev_set_output_limit(chr, QTEST_MAX_REPLY + QTEST_OUTPUT_HIGH);
    static const IrqBackend backend = { .set_level = qtest_set_irq, .send_msi = qtest_send_msi };
    irq_set_backend(&backend);
    clock_virtual_set_manual(true);
    qtest_on = true;
    return true;
}
