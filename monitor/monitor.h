/*
 * The monitors: QMP (JSON, for programs) and HMP (text, for people) on
 * character devices. Every QMP session in command mode receives every
 * event. HMP commands are thin wrappers over the QMP handlers.
 */
#ifndef VIREO_MONITOR_MONITOR_H
#define VIREO_MONITOR_MONITOR_H

#include <stdbool.h>

#include "chardev/chardev.h"
#include "util/error.h"
#include "util/strbuf.h"

/* Serve QMP on chr (every connection a session). pretty: indent replies. */
bool monitor_new_qmp(Chardev *chr, bool pretty, Error **errp);
/* Serve HMP on chr. */
bool monitor_new_hmp(Chardev *chr, Error **errp);

/* The connection whose command is running now (NULL outside commands). */
ChardevConn *monitor_current_conn(void);

/* Named descriptors from getfd, shared by all monitors. Takes / gives ownership. */
int monitor_take_named_fd(const char *name, Error **errp);

/*
 * Run one HMP command line, appending its output to out with "\n" line
 * ends (the HMP session and human-monitor-command turn them into "\r\n").
 */
void hmp_execute(const char *line, StrBuf *out);

#endif
