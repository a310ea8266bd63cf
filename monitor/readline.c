#include "monitor/readline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

void readline_init(ReadLine *rl, const char *prompt,
                   void (*write)(void *opaque, const char *s, size_t len),
                   void (*on_line)(void *opaque, const char *line), void *opaque)
{
    memset(rl, 0, sizeof(*rl));
    rl->prompt = prompt;
    rl->write = write;
    rl->on_line = on_line;
    rl->opaque = opaque;
}

static void out(ReadLine *rl, const char *s)
{
    rl->write(rl->opaque, s, strlen(s));
}

void readline_show_prompt(ReadLine *rl)
{
    out(rl, rl->prompt);
}

/* Redraw the whole line: simple and correct on any VT100-like terminal. */
static void redraw(ReadLine *rl)
{
    out(rl, "\r\033[K");
    out(rl, rl->prompt);
    rl->write(rl->opaque, rl->line, rl->len);
    if (rl->cursor < rl->len) {
        char move[32];
        snprintf(move, sizeof(move), "\033[%zuD", rl->len - rl->cursor);
        out(rl, move);
    }
}

static void insert_char(ReadLine *rl, char c)
{
    if (rl->len + 1 >= READLINE_MAX_LINE) {
        return;
    }
    memmove(rl->line + rl->cursor + 1, rl->line + rl->cursor, rl->len - rl->cursor);
    rl->line[rl->cursor++] = c;
    rl->len++;
    if (rl->cursor == rl->len) {
        rl->write(rl->opaque, &c, 1);      /* the common case: no redraw */
    } else {
        redraw(rl);
    }
}

static void delete_at(ReadLine *rl, size_t pos)
{
    if (pos >= rl->len) {
        return;
    }
    memmove(rl->line + pos, rl->line + pos + 1, rl->len - pos - 1);
    rl->len--;
    redraw(rl);
}

static void set_line(ReadLine *rl, const char *s)
{
    rl->len = MIN(strlen(s), (size_t)READLINE_MAX_LINE - 1);
    memcpy(rl->line, s, rl->len);
    rl->cursor = rl->len;
    redraw(rl);
}

static void history_move(ReadLine *rl, int delta)
{
    int pos = rl->history_pos + delta;
    if (pos < 0 || pos > rl->nr_history) {
        return;
    }
    rl->history_pos = pos;
    set_line(rl, pos == rl->nr_history ? "" : rl->history[pos]);
}

static void history_add(ReadLine *rl, const char *line)
{
    if (!*line || (rl->nr_history && !strcmp(rl->history[rl->nr_history - 1], line))) {
        return;
    }
    if (rl->nr_history == READLINE_HISTORY) {
        free(rl->history[0]);
        memmove(rl->history, rl->history + 1, sizeof(char *) * (READLINE_HISTORY - 1));
        rl->nr_history--;
    }
    rl->history[rl->nr_history++] = xstrdup(line);
}

static void add_match(void *opaque, const char *word)
{
    ReadLine *rl = opaque;
    if (rl->nr_matches < (int)ARRAY_SIZE(rl->matches)) {
        rl->matches[rl->nr_matches++] = xstrdup(word);
    }
}

static void complete(ReadLine *rl)
{
    if (!rl->complete) {
        return;
    }
    rl->line[rl->len] = '\0';
    rl->nr_matches = 0;
    rl->complete(rl->opaque, rl->line, add_match);
    if (rl->nr_matches == 1) {
        char buf[READLINE_MAX_LINE];
        snprintf(buf, sizeof(buf), "%s ", rl->matches[0]);
        set_line(rl, buf);
    } else if (rl->nr_matches > 1) {
        out(rl, "\r\n");
        for (int i = 0; i < rl->nr_matches; i++) {
            out(rl, rl->matches[i]);
            out(rl, i + 1 < rl->nr_matches ? "  " : "\r\n");
        }
        redraw(rl);
    }
    for (int i = 0; i < rl->nr_matches; i++) {
        free(rl->matches[i]);
    }
    rl->nr_matches = 0;
}

static void finish_line(ReadLine *rl)
{
    rl->line[rl->len] = '\0';
    out(rl, "\r\n");
    char *line = xstrdup(rl->line);
    history_add(rl, line);
    rl->history_pos = rl->nr_history;
    rl->len = rl->cursor = 0;
    rl->on_line(rl->opaque, line);
    free(line);
}

/* ESC [ sequences: arrows, Home/End, Delete. */
static void escape_sequence(ReadLine *rl, unsigned char c)
{
    if (c >= '0' && c <= '9') {
        /* Parameters we act on are one or two digits; a longer run from a
         * hostile peer saturates instead of overflowing. */
        if (rl->esc_param < 10000) {
            rl->esc_param = rl->esc_param * 10 + (c - '0');
        }
        return;
    }
    rl->esc_state = 0;
    switch (c) {
    case 'A': history_move(rl, -1); break;
    case 'B': history_move(rl, 1); break;
    case 'C': if (rl->cursor < rl->len) { rl->cursor++; redraw(rl); } break;
    case 'D': if (rl->cursor > 0) { rl->cursor--; redraw(rl); } break;
    case 'H': rl->cursor = 0; redraw(rl); break;
    case 'F': rl->cursor = rl->len; redraw(rl); break;
    case '~':
        if (rl->esc_param == 3) {
            delete_at(rl, rl->cursor);
        } else if (rl->esc_param == 1 || rl->esc_param == 7) {
            rl->cursor = 0;
            redraw(rl);
        } else if (rl->esc_param == 4 || rl->esc_param == 8) {
            rl->cursor = rl->len;
            redraw(rl);
        }
        break;
    default: break;
    }
}

void readline_feed(ReadLine *rl, unsigned char c)
{
    if (rl->esc_state == 1) {
        rl->esc_state = (c == '[' || c == 'O') ? 2 : 0;
        rl->esc_param = 0;
        return;
    }
    if (rl->esc_state == 2) {
        escape_sequence(rl, c);
        return;
    }
    switch (c) {
    case '\r':
    case '\n':
        finish_line(rl);
        break;
    case 27: rl->esc_state = 1; break;
    case 1: rl->cursor = 0; redraw(rl); break;                        /* ^A */
    case 5: rl->cursor = rl->len; redraw(rl); break;                  /* ^E */
    case 2: if (rl->cursor) { rl->cursor--; redraw(rl); } break;      /* ^B */
    case 6: if (rl->cursor < rl->len) { rl->cursor++; redraw(rl); } break; /* ^F */
    case 4: delete_at(rl, rl->cursor); break;                         /* ^D */
    case 11: rl->len = rl->cursor; redraw(rl); break;                 /* ^K */
    case 21: rl->len = rl->cursor = 0; redraw(rl); break;             /* ^U */
    case 16: history_move(rl, -1); break;                             /* ^P */
    case 14: history_move(rl, 1); break;                              /* ^N */
    case 9: complete(rl); break;                                      /* Tab */
    case 8:
    case 127:
        if (rl->cursor > 0) {
            rl->cursor--;
            delete_at(rl, rl->cursor);
        }
        break;
    default:
        if (c >= 32) {
            insert_char(rl, (char)c);
        }
        break;
    }
}

void readline_free(ReadLine *rl)
{
    for (int i = 0; i < rl->nr_history; i++) {
        free(rl->history[i]);
    }
    rl->nr_history = 0;
}
