/*
 * HMP sessions: a banner, a prompt, line editing, and the dispatcher that
 * splits a command line into words and runs the matching table entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "monitor/hmp-commands.h"
#include "monitor/monitor.h"
#include "monitor/readline.h"
#include "util/osdep.h"

#define HMP_MAX_WORDS 16

typedef struct HmpSession {
    ChardevConn *conn;
    ReadLine rl;
} HmpSession;

void monitor_forget_conn_fds(ChardevConn *conn);
static ChardevConn *hmp_current_conn;

ChardevConn *hmp_session_conn(void);
ChardevConn *hmp_session_conn(void)
{
    return hmp_current_conn;
}

/* ---- command line parsing ---- */

/* Split on blanks; "double quotes" group words. Returns the word count. */
static int split_words(char *line, char **words, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (!*p) {
            break;
        }
        if (*p == '"') {
            words[n++] = ++p;
            while (*p && *p != '"') {
                p++;
            }
        } else {
            words[n++] = p;
            while (*p && *p != ' ' && *p != '\t') {
                p++;
            }
        }
        if (*p) {
            *p++ = '\0';
        }
    }
    return n;
}

static const HmpCommand *find_command(const HmpCommand *table, const char *name)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (!strcmp(c->name, name)) {
            return c;
        }
    }
    return NULL;
}

static void run_entry(const HmpCommand *cmd, StrBuf *out, int argc, char **argv)
{
    if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
        strbuf_printf(out, "%s: wrong number of arguments (usage: %s%s%s)\n", cmd->name,
                      cmd->name, *cmd->args_help ? " " : "", cmd->args_help);
        return;
    }
    Error *err = NULL;
    cmd->fn(out, argc, argv, &err);
    if (err) {
        strbuf_printf(out, "Error: %s\n", error_get_pretty(err));
        error_free(err);
    }
}

void hmp_execute(const char *line, StrBuf *out)
{
    char *copy = xstrdup(line);
    char *words[HMP_MAX_WORDS];
    int argc = split_words(copy, words, HMP_MAX_WORDS);
    if (argc == 0) {
        free(copy);
        return;
    }
    if (!strcmp(words[0], "info")) {
        const HmpCommand *sub = argc > 1 ? find_command(hmp_info_commands, words[1]) : NULL;
        if (!sub) {
            if (argc > 1) {
                strbuf_printf(out, "unknown command: 'info %s'\n", words[1]);
            } else {
                run_entry(find_command(hmp_commands, "info"), out, 1, words);
            }
        } else {
            run_entry(sub, out, argc - 1, words + 1);
        }
    } else {
        const HmpCommand *cmd = find_command(hmp_commands, words[0]);
        if (!cmd) {
            strbuf_printf(out, "unknown command: '%s'\n", words[0]);
        } else {
            run_entry(cmd, out, argc, words);
        }
    }
    free(copy);
}

/* ---- sessions ---- */

static void session_write(void *opaque, const char *s, size_t len)
{
    HmpSession *hs = opaque;
    chardev_conn_write(hs->conn, s, len);
}

/* Output with "\n" turned into "\r\n": terminals in raw mode need both. */
static void session_print(HmpSession *hs, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            session_write(hs, s + start, i - start);
            session_write(hs, "\r\n", 2);
            start = i + 1;
        }
    }
    session_write(hs, s + start, len - start);
}

static void session_line(void *opaque, const char *line)
{
    HmpSession *hs = opaque;
    StrBuf out = { 0 };
    hmp_current_conn = hs->conn;
    hmp_execute(line, &out);
    hmp_current_conn = NULL;
    if (out.len) {
        session_print(hs, out.str, out.len);
    }
    strbuf_free(&out);
    readline_show_prompt(&hs->rl);
}

static void session_complete(void *opaque, const char *prefix,
                             void (*add)(void *rl, const char *word))
{
    HmpSession *hs = opaque;
    size_t len = strlen(prefix);
    const HmpCommand *table = hmp_commands;
    const char *word = prefix;
    char buf[64];
    if (!strncmp(prefix, "info ", 5)) {
        table = hmp_info_commands;
        word = prefix + 5;
        len -= 5;
    } else if (strchr(prefix, ' ')) {
        return;
    }
    for (const HmpCommand *c = table; c->name; c++) {
        if (!strncmp(c->name, word, len)) {
            snprintf(buf, sizeof(buf), "%s%s", table == hmp_info_commands ? "info " : "", c->name);
            add(&hs->rl, buf);
        }
    }
}

static void *hmp_session_open(void *fe_opaque, ChardevConn *conn)
{
    HmpSession *hs = xzalloc(sizeof(*hs));
    hs->conn = conn;
    readline_init(&hs->rl, "(vireo) ", session_write, session_line, hs);
    hs->rl.complete = session_complete;
    const char *banner = "vireo " VIREO_VERSION " monitor - type 'help' for more information\r\n";
    session_write(hs, banner, strlen(banner));
    readline_show_prompt(&hs->rl);
    return hs;
}

static void hmp_session_read(void *opaque, const uint8_t *buf, size_t len)
{
    HmpSession *hs = opaque;
    for (size_t i = 0; i < len; i++) {
        readline_feed(&hs->rl, buf[i]);
    }
}

static void hmp_session_close(void *opaque)
{
    HmpSession *hs = opaque;
    monitor_forget_conn_fds(hs->conn);
    readline_free(&hs->rl);
    free(hs);
}

static const ChardevSessionHandlers hmp_handlers = {
    .open = hmp_session_open,
    .read = hmp_session_read,
    .close = hmp_session_close,
};

bool monitor_new_hmp(Chardev *chr, Error **errp)
{
    return chardev_attach_sessions(chr, &hmp_handlers, NULL, errp);
}
