/*
 * The command line. One table describes every option: the parser uses it
 * and query-command-line-options reports it, so they always agree.
 */
#ifndef VIREO_CORE_OPTIONS_H
#define VIREO_CORE_OPTIONS_H

#include <stdbool.h>

#include "util/error.h"
#include "util/keyval.h"

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
    bool exit_now;          /* an option answered a question (help, version): exit 0 */
} StartupOptions;

extern StartupOptions startup;

/* One command-line option. Tables end with an entry whose name is NULL. */
typedef struct CmdOption {
    const char *name;           /* without the leading dash */
    const char *arg;            /* argument placeholder; NULL for flags */
    const char *help;
    const char *opts_group;     /* name in query-command-line-options, or NULL */
    const OptParam *params;
    bool (*handle)(const char *arg, Error **errp);
} CmdOption;

/*
 * Option families kept in files of their own (core/options-*.c), searched
 * after core/options.c's own table, listed by -h and by
 * query-command-line-options like the rest.
 */
extern const CmdOption compat_options[];    /* core/options-compat.c */
extern const CmdOption block_options[];     /* core/options-block.c */
extern const CmdOption global_options[];    /* core/options-global.c */

/* Merge the -global defaults into the -device options (after parsing). */
bool globals_apply(Error **errp);
/*
 * A device the board builds itself, of type driver with these properties:
 * every -global for driver must name one of them (QEMU's error otherwise).
 * global_value: the last -global driver.property's value, or NULL.
 */
bool globals_check_board(const char *driver, const OptParam *params, Error **errp);
const char *global_value(const char *driver, const char *property);

/* Make the nodes of -blockdev, then of -drive (before the machine is built). */
bool block_options_create_nodes(Error **errp);

/*
 * "help" as the value of -device, -object, -machine, -chardev, -netdev,
 * -accel or -cpu (core/options-help.c): 1 if it printed the answer, -1 if
 * it printed an error, 0 if arg asks for no help.
 */
int options_answer_help(const char *option, const char *arg);

/*
 * The JSON form of -device, -object and -netdev ('{"driver": ...}') as
 * the key=value text their parsers take; NULL when arg is not JSON (errp
 * unset) or is bad JSON (errp set). The caller frees the result.
 */
char *compat_json_to_keyval(const char *option, const char *arg, Error **errp);
/* -device isa-serial: 1 taken, -1 error, 0 another device type. */
int compat_device(const char *arg, Error **errp);

/* -machine acpi=on|off|auto and -no-acpi. */
bool compat_set_acpi(const char *value, Error **errp);
/* -machine accel=A:B:...: the first accelerator vireo has that works here. */
bool compat_choose_accel(const char *list, Error **errp);
/* The -machine properties of management tools: usb=, dump-guest-core=, acpi=. */
bool compat_machine_props(const KeyValList *kv, Error **errp);

/*
 * Parse argv into vm_config and startup. Returns 1 to continue, 0 to exit
 * successfully (-version, -h), -1 on error (message printed).
 */
int options_parse(int argc, char **argv);

#endif
