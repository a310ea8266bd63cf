/*
 * The command line. One table describes every option: the parser uses it
 * and query-command-line-options reports it, so they always agree.
 */
#ifndef VIREO_CORE_OPTIONS_H
#define VIREO_CORE_OPTIONS_H

#include <stdbool.h>

#include "util/error.h"

typedef struct MonitorSpec {
    char *chardev;          /* chardev id, or a legacy spec when legacy is set */
    bool legacy;
    bool qmp;               /* control mode; otherwise readline (HMP) */
    bool pretty;
    struct MonitorSpec *next;
} MonitorSpec;

typedef struct StartupOptions {
    MonitorSpec *monitors;
    char **chardevs;        /* -chardev arguments, in order */
    int nr_chardevs;
    char **add_fds;         /* -add-fd arguments */
    int nr_add_fds;
    char **iothreads;       /* -object iothread,... arguments */
    int nr_iothreads;
    char *qtest_chardev;    /* -qtest */
    char *qtest_log;        /* -qtest-log: protocol log file, "none" or NULL (no log) */
    char *pidfile;
    bool daemonize;
    bool machine_help;
} StartupOptions;

extern StartupOptions startup;

/*
 * Parse argv into vm_config and startup. Returns 1 to continue, 0 to exit
 * successfully (-version, -h), -1 on error (message printed).
 */
int options_parse(int argc, char **argv);

#endif
