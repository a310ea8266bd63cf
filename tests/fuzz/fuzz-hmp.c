/*
 * libFuzzer target for HMP command dispatch (monitor/hmp.c and the command
 * tables and handlers of monitor/hmp-cmds.c, monitor/hmp-virtio.c): word
 * splitting with quotes, the command and "info" sub-command lookup, the
 * argument count checks and every handler with hostile arguments, down to
 * the QMP handlers they call. The VMM is vireo itself, started as
 * `vireo -M none -accel qtest -sandbox off -nodefaults -chardev null,id=c0`
 * would start it (core/main.c's start-up, compiled into this target with its
 * main() renamed), so the monitor runs without a guest, as under libvirt's
 * capability probe.
 *
 * Input: command lines separated by newlines (a NUL ends a line too), each
 * run through hmp_execute() as an HMP session runs what was typed.
 *
 * Checks besides the sanitizers: no output holds a NUL byte; an unknown
 * command word is answered "unknown command". What a command schedules
 * (system_reset, quit: a shutdown request ends the main loop, which only
 * sets its exit status here) runs after each line, as the next main-loop
 * iteration would run it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* vireo's start-up and life-cycle commands; its main() is not ours to run. */
#define main vireo_main
#include "../../core/main.c"
#undef main

#include "monitor/hmp-commands.h"
#include "fuzz-loop.h"

static void fail(const char *what, const char *line)
{
    fprintf(stderr, "fuzz-hmp: %s: \"%s\"\n", what, line);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *args[] = {
        "vireo", "-M", "none", "-accel", "qtest", "-sandbox", "off", "-nodefaults",
        "-display", "none", "-chardev", "null,id=c0", "-name", "fuzz", NULL,
    };
    if (options_parse((int)(sizeof(args) / sizeof(args[0])) - 1, args) <= 0) {
        fprintf(stderr, "fuzz-hmp: options\n");
        exit(1);
    }
    Error *err = NULL;
    if (!start(&err)) {
        fprintf(stderr, "fuzz-hmp: start-up: %s\n", error_get_pretty(err));
        exit(1);
    }
    return 0;
}

static bool known(const HmpCommand *table, const char *word, size_t len)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (strlen(c->name) == len && !memcmp(c->name, word, len)) {
            return true;
        }
    }
    return false;
}

static void run_line(const char *line)
{
    StrBuf out = { 0 };
    hmp_execute(line, &out);
    if (out.len && memchr(out.str, 0, out.len)) {
        fail("output with a NUL byte", line);
    }
    /* The first word, unquoted: an unknown one must be said so. */
    const char *w = line + strspn(line, " \t");
    size_t wl = strcspn(w, " \t");
    if (wl && *w != '"' && !known(hmp_commands, w, wl) &&
        (!out.str || !strstr(out.str, "unknown command"))) {
        fail("an unknown command word was not reported", line);
    }
    strbuf_free(&out);
    fuzz_loop_pump(8);      /* what the command scheduled (a reset, a shutdown) */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char line[1024];
    size_t n = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n' || data[i] == 0) {
            line[n] = '\0';
            run_line(line);
            n = 0;
        } else if (n + 1 < sizeof(line)) {
            line[n++] = (char)data[i];
        }
    }
    return 0;
}
