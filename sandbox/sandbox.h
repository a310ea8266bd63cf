/*
 * Confinement: seccomp-BPF allow-lists per kind of thread, -sandbox,
 * -runas/-chroot/-run-with, and closing inherited descriptors.
 *
 * Order at start-up (core/main.c):
 *   sandbox_note_inherited_fds()   first thing in main();
 *   sandbox_close_inherited_fds()  after option parsing (-sandbox off keeps them);
 *   sandbox_lock_down()            once the machine is built (devices,
 *                                  taps and images open), before the
 *                                  guest runs: chroot, drop to the user,
 *                                  no_new_privs, then the process filter.
 * Threads call seccomp_thread_enter() (util/seccomp-hook.h) at the top of
 * their loop: once the process filter is in place it stacks their own,
 * narrower filter.
 */
#ifndef VIREO_SANDBOX_H
#define VIREO_SANDBOX_H

#include <stdbool.h>
#include <stdio.h>

#include "util/error.h"
#include "util/keyval.h"
#include "util/seccomp-hook.h"

typedef enum SandboxPolicy {
    SANDBOX_ALLOW,
    SANDBOX_DENY,
    SANDBOX_CHILDREN,       /* elevateprivileges only: deny here, allowed to exec'd children */
} SandboxPolicy;

typedef struct SandboxConfig {
    bool enable;                    /* -sandbox on|off; off by default */
    bool log;                       /* log=on: name the denied call, then die */
    SandboxPolicy obsolete;         /* obsolete=allow|deny */
    SandboxPolicy elevate;          /* elevateprivileges=allow|deny|children */
    SandboxPolicy spawn;            /* spawn=allow|deny */
    SandboxPolicy resourcecontrol;  /* resourcecontrol=allow|deny */
    char *user;                     /* -runas / -run-with user= */
    char *chroot_dir;               /* -chroot / -run-with chroot= */
} SandboxConfig;

extern SandboxConfig sandbox_config;

/* Parameter tables for the option table and query-command-line-options. */
extern const OptParam sandbox_params[];
extern const OptParam run_with_params[];

bool sandbox_opt_sandbox(const char *arg, Error **errp);
bool sandbox_opt_runas(const char *arg, Error **errp);
bool sandbox_opt_chroot(const char *arg, Error **errp);
bool sandbox_opt_run_with(const char *arg, Error **errp);

/* Note the descriptors open at entry, before option parsing opens any. */
void sandbox_note_inherited_fds(void);

/*
 * Close every noted descriptor above stderr that was not named on the
 * command line (fd=, fds=, vhostfd=, vhostfds=, -add-fd fd=).
 */
void sandbox_close_inherited_fds(int argc, char **argv);

/* chroot, drop to the user, no_new_privs, then the process-wide filter. */
bool sandbox_lock_down(Error **errp);

/*
 * Build kind's filter from config and load it on the calling thread
 * (tsync: on every thread of the process). Exposed for the daemons and
 * for unit tests that check a denied call in a child process.
 */
bool sandbox_install(const SandboxConfig *config, SandboxKind kind, bool tsync, Error **errp);

/* The daemons vireo ships, each with its own allow-list (sandbox-programs.c). */
typedef enum SandboxProgram {
    SANDBOX_PROGRAM_STORAGE_DAEMON,     /* vireo-storage-daemon */
    SANDBOX_PROGRAM_VHOST_USER_NET,     /* vireo-vhost-user-net */
    SANDBOX_PROGRAM_IVSHMEM_SERVER,     /* vireo-ivshmem-server */
    SANDBOX_PROGRAM_IVSHMEM_CLIENT,     /* vireo-ivshmem-client */
    SANDBOX_NR_PROGRAMS
} SandboxProgram;

/*
 * For a daemon, once start-up is done (listening sockets, images, taps and
 * shared memory open; detached; pid file written) and before it serves:
 * no_new_privs, then program's filter on every thread of the process.
 * Threads that name their kind (seccomp_thread_enter(): block workers, the
 * log writer) then stack that kind's narrower list, as in vireo.
 * A denied call is named on stderr, then the process dies of SIGSYS.
 * Does nothing after --sandbox off.
 */
bool sandbox_confine_program(SandboxProgram program, Error **errp);

/*
 * A daemon's --sandbox on|off (on by default). Off is the way out when a
 * list lacks a call some set-up needs: the daemon then runs unconfined.
 */
bool sandbox_program_opt(const char *arg, Error **errp);

const char *sandbox_program_name(SandboxProgram program);

/* Is the process filter installed? */
bool sandbox_active(void);

const char *sandbox_kind_name(SandboxKind kind);
/* A kind's short name for the listing's command line ("nbd-worker"). */
const char *sandbox_kind_id(SandboxKind kind);

/*
 * Print to out what kind's list (or program's, when program >= 0) allows
 * as config shapes it: one line per system call and argument filter, as
 * the rules are added to the filter the sandbox would load (nothing here
 * names a call). With pfc_fd >= 0, also write libseccomp's PFC text of
 * that same filter there. tests/sandbox/vireo-sandbox-list prints them all.
 */
bool sandbox_list(FILE *out, const SandboxConfig *config, SandboxKind kind, int program,
                  int pfc_fd, Error **errp);

#endif
