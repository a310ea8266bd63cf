/*
 * Line editing for the human monitor: cursor movement, deletion, history
 * and command-name completion, driven byte by byte from the terminal or
 * socket. Output (echo and redraw) goes through the session's write hook.
 */
#ifndef VIREO_MONITOR_READLINE_H
#define VIREO_MONITOR_READLINE_H

#include <stdbool.h>
#include <stddef.h>

#define READLINE_MAX_LINE 1024
#define READLINE_HISTORY 64

typedef struct ReadLine {
    char line[READLINE_MAX_LINE];
    size_t len, cursor;
    char *history[READLINE_HISTORY];
    int nr_history;
    int history_pos;            /* == nr_history when editing a new line */
    int esc_state;              /* 0 none, 1 after ESC, 2 after ESC '[' */
    int esc_param;
    const char *prompt;
    void (*write)(void *opaque, const char *s, size_t len);
    void (*complete)(void *opaque, const char *prefix, void (*add)(void *rl, const char *word));
    void (*on_line)(void *opaque, const char *line);
    void *opaque;
    /* completion scratch */
    char *matches[64];
    int nr_matches;
} ReadLine;

void readline_init(ReadLine *rl, const char *prompt,
                   void (*write)(void *opaque, const char *s, size_t len),
                   void (*on_line)(void *opaque, const char *line), void *opaque);
void readline_show_prompt(ReadLine *rl);
void readline_feed(ReadLine *rl, unsigned char c);
void readline_free(ReadLine *rl);

#endif
