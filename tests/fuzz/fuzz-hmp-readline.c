/*
 * libFuzzer target for the human monitor's line editor (monitor/
 * readline.c): the input is what a client types on an HMP terminal or
 * socket, byte by byte: printable text, control keys (^A ^E ^B ^F ^D ^K
 * ^U ^P ^N, backspace), escape sequences with numeric parameters (arrows,
 * Home/End/Delete), Tab completion over HMP command names, history, and
 * lines longer than the buffer.
 *
 * HMP's command dispatch (monitor/hmp.c) runs the QMP handlers of the
 * whole VMM, so it is not linked here; the completion callback offers the
 * names HMP completes, as hmp.c's does, from a list of its commands.
 *
 * Checks besides the sanitizers: after every byte the cursor lies within
 * the line and the line within its buffer; every line handed over is
 * shorter than the buffer and has no control characters; Enter always
 * hands one over.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/readline.h"

static const char *const commands[] = {
    "help", "info", "info status", "info qtree", "info chardev", "info virtio",
    "info virtio-status", "info virtio-queue-status", "info virtio-queue-element",
    "quit", "stop", "cont", "system_reset", "system_powerdown", "qom-list",
    "chardev-add", "chardev-remove", "device_add", "device_del", "balloon",
};

static unsigned lines;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-hmp-readline: %s\n", what);
    abort();
}

static void rl_write(void *opaque, const char *s, size_t len)
{
}

static void rl_line(void *opaque, const char *line)
{
    size_t len = strlen(line);
    if (len >= READLINE_MAX_LINE) {
        fail("a line longer than the buffer");
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)line[i] < 32) {
            fail("a control character inside a line");
        }
    }
    lines++;
}

static void rl_complete(void *opaque, const char *prefix, void (*add)(void *rl, const char *word))
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strncmp(commands[i], prefix, n)) {
            add(opaque, commands[i]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) {
        return -1;
    }
    ReadLine rl;
    readline_init(&rl, "(qemu) ", rl_write, rl_line, &rl);
    rl.complete = rl_complete;
    readline_show_prompt(&rl);
    lines = 0;
    for (size_t i = 0; i < size; i++) {
        readline_feed(&rl, data[i]);
        if (rl.len >= READLINE_MAX_LINE || rl.cursor > rl.len) {
            fail("cursor or length out of bounds");
        }
        if (rl.nr_history > READLINE_HISTORY || rl.history_pos > rl.nr_history ||
            rl.history_pos < 0) {
            fail("history position out of bounds");
        }
    }
    if (rl.esc_state) {
        readline_feed(&rl, 'Z');    /* ends any escape sequence */
    }
    readline_feed(&rl, '\r');
    if (lines == 0) {
        fail("Enter handed over no line");
    }
    readline_free(&rl);
    return 0;
}
