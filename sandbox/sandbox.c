/*
 * seccomp-BPF confinement through libseccomp: the -sandbox option, the
 * process filter, per-thread filters and the SIGSYS report.
 *
 * Why one process filter plus per-thread filters, installed in that order:
 * seccomp filters stack and the most restrictive wins, and a filter can be
 * put on every existing thread at once (TSYNC) only while no thread has a
 * filter of its own. So the process filter (the union of every kind's
 * list) goes on all threads first, once start-up is done; then each
 * thread, at the next turn of its loop, stacks its own narrower list.
 * Threads created later inherit the process filter and do the same.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox-internal.h"
#include "util/osdep.h"

/*
 * On unless turned off (-sandbox off). QEMU's default is off; vireo
 * confines by default. A build may flip the default with
 * -Dc_args=-DSANDBOX_DEFAULT_ON=0.
 */
#ifndef SANDBOX_DEFAULT_ON
#define SANDBOX_DEFAULT_ON 1
#endif
SandboxConfig sandbox_config = { .enable = SANDBOX_DEFAULT_ON };

const OptParam sandbox_params[] = {
    /* The order QEMU 7.2's query-command-line-options reports them in. */
    { "resourcecontrol", OPT_STRING, NULL },
    { "spawn", OPT_STRING, NULL },
    { "elevateprivileges", OPT_STRING, NULL },
    { "obsolete", OPT_STRING, NULL },
    { "enable", OPT_BOOL, NULL },
    { "log", OPT_BOOL, "name a denied system call on stderr before dying", "off" },
    { NULL },
};

static atomic_bool process_filter_installed;
/* What per-thread filters are built from: -sandbox's, or a daemon's. */
static const SandboxConfig *thread_config = &sandbox_config;
static bool program_sandbox = true;     /* a daemon's --sandbox */
static __thread bool thread_filter_installed;
/* For the SIGSYS report: who made the call. */
static __thread const char *thread_label;   /* set where a thread loaded its own filter */
static const char *other_threads_label = "main loop";
static const char *program_label = "vireo";

#define MAX_SYSCALL_NAMES 512
static char *syscall_names[MAX_SYSCALL_NAMES];  /* for the SIGSYS report */
static bool report_ready;       /* names resolved, handler installed (main thread) */

static const char *const kind_names[SANDBOX_NR_KINDS] = {
    [SANDBOX_MAIN] = "main loop",
    [SANDBOX_VCPU] = "vCPU",
    [SANDBOX_IOTHREAD] = "iothread",
    [SANDBOX_BLOCK_WORKER] = "block I/O worker",
    [SANDBOX_LOG_WRITER] = "log writer",
    [SANDBOX_DAEMON] = "daemon",
    [SANDBOX_NBD_WORKER] = "NBD worker",
    [SANDBOX_COMPRESS_WORKER] = "compression worker",
};

const char *sandbox_kind_name(SandboxKind kind)
{
    return kind < SANDBOX_NR_KINDS ? kind_names[kind] : "unknown";
}

bool sandbox_active(void)
{
    return atomic_load(&process_filter_installed);
}

/* ---- -sandbox ---- */

static bool parse_policy(const KeyValList *kv, const char *key, bool children_ok,
                         SandboxPolicy *out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    if (!v) {
        return true;
    }
    if (!strcmp(v, "allow")) {
        *out = SANDBOX_ALLOW;
    } else if (!strcmp(v, "deny")) {
        *out = SANDBOX_DENY;
    } else if (children_ok && !strcmp(v, "children")) {
        *out = SANDBOX_CHILDREN;
    } else {
        error_setg(errp, "invalid argument for %s", key);
        return false;
    }
    return true;
}

bool sandbox_opt_sandbox(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "enable", sandbox_params, &kv, errp)) {
        return false;
    }
    SandboxConfig *c = &sandbox_config;
    bool ok = parse_policy(&kv, "obsolete", false, &c->obsolete, errp) &&
              parse_policy(&kv, "elevateprivileges", true, &c->elevate, errp) &&
              parse_policy(&kv, "spawn", false, &c->spawn, errp) &&
              parse_policy(&kv, "resourcecontrol", false, &c->resourcecontrol, errp);
    if (ok) {
        c->enable = keyval_get_bool(&kv, "enable", true);
        c->log = keyval_get_bool(&kv, "log", false);
    }
    keyval_free(&kv);
    return ok;
}

/* ---- the report of a denied call (log=on) ---- */

static void append(char *buf, size_t size, size_t *len, const char *s)
{
    while (*s && *len + 1 < size) {
        buf[(*len)++] = *s++;
    }
}

static void append_number(char *buf, size_t size, size_t *len, long n)
{
    char digits[24];
    int i = (int)sizeof(digits) - 1;
    digits[i] = 0;
    unsigned long u = n < 0 ? (unsigned long)-n : (unsigned long)n;
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u && i > 1);
    if (n < 0) {
        digits[--i] = '-';
    }
    append(buf, size, len, digits + i);
}

/* Async-signal-safe: names were resolved when the filter was built. */
static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
    char msg[256];
    size_t len = 0;
    int nr = si->si_syscall;
    const char *name = nr >= 0 && nr < MAX_SYSCALL_NAMES ? syscall_names[nr] : NULL;
    append(msg, sizeof(msg), &len, program_label);
    append(msg, sizeof(msg), &len, ": sandbox: the ");
    append(msg, sizeof(msg), &len, thread_label ? thread_label : other_threads_label);
    append(msg, sizeof(msg), &len, " thread made the forbidden system call ");
    append(msg, sizeof(msg), &len, name ? name : "?");
    append(msg, sizeof(msg), &len, " (");
    append_number(msg, sizeof(msg), &len, nr);
    append(msg, sizeof(msg), &len, "); exiting\n");
    if (write(STDERR_FILENO, msg, len) < 0) {
        /* nowhere to say it: die anyway */
    }
    /* Die of SIGSYS, as the kernel's kill would have it. */
    signal(SIGSYS, SIG_DFL);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
    _exit(128 + SIGSYS);
}

static bool prepare_report(Error **errp)
{
    for (int nr = 0; nr < MAX_SYSCALL_NAMES; nr++) {
        if (!syscall_names[nr]) {
            syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        }
    }
    /* SA_NODEFER: the handler's own re-raise must not wait for it to return. */
    struct sigaction sa = { .sa_sigaction = sigsys_handler,
                            .sa_flags = SA_SIGINFO | SA_NODEFER };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) {
        error_setg_errno(errp, errno, "sandbox: cannot install the SIGSYS handler");
        return false;
    }
    report_ready = true;
    return true;
}

/* ---- building and loading ---- */

typedef bool AddRules(scmp_filter_ctx ctx, const SandboxConfig *c, int which, Error **errp);

static bool add_kind(scmp_filter_ctx ctx, const SandboxConfig *c, int kind, Error **errp)
{
    return sandbox_rules_add(ctx, c, (SandboxKind)kind, errp);
}

static bool add_program(scmp_filter_ctx ctx, const SandboxConfig *c, int program, Error **errp)
{
    return sandbox_program_rules_add(ctx, (SandboxProgram)program, errp);
}

static scmp_filter_ctx build_filter(const SandboxConfig *config, AddRules *add, int which,
                                    Error **errp)
{
    /* Without log=on the kernel ends the whole process at the denied call. */
    uint32_t deny = config->log ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (!ctx) {
        error_setg(errp, "sandbox: cannot create a seccomp filter");
        return NULL;
    }
    /* A binary tree over syscall numbers: each call costs ~log2(N) tests,
     * not a walk of the whole list. Older libseccomp lacks it: no matter. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (!add(ctx, config, which, errp)) {
        seccomp_release(ctx);
        return NULL;
    }
    return ctx;
}

scmp_filter_ctx sandbox_build_filter(const SandboxConfig *config, SandboxKind kind, int program,
                                     Error **errp)
{
    return program >= 0 ? build_filter(config, add_program, program, errp)
                        : build_filter(config, add_kind, kind, errp);
}

static bool load_filter(const SandboxConfig *config, AddRules *add, int which, const char *label,
                        bool tsync, Error **errp)
{
    if (config->log && !report_ready && !prepare_report(errp)) {
        return false;
    }
    scmp_filter_ctx ctx = build_filter(config, add, which, errp);
    if (!ctx) {
        return false;
    }
    int rc = 0;
    if (tsync) {
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    }
    if (rc == 0) {
        rc = seccomp_load(ctx);
    }
    seccomp_release(ctx);
    if (rc < 0) {
        error_setg_errno(errp, -rc, "sandbox: cannot load the %s filter", label);
        return false;
    }
    thread_label = label;
    return true;
}

bool sandbox_install(const SandboxConfig *config, SandboxKind kind, bool tsync, Error **errp)
{
    return load_filter(config, add_kind, kind, sandbox_kind_name(kind), tsync, errp);
}

static const char *const program_names[SANDBOX_NR_PROGRAMS] = {
    [SANDBOX_PROGRAM_STORAGE_DAEMON] = "vireo-storage-daemon",
    [SANDBOX_PROGRAM_VHOST_USER_NET] = "vireo-vhost-user-net",
    [SANDBOX_PROGRAM_IVSHMEM_SERVER] = "vireo-ivshmem-server",
    [SANDBOX_PROGRAM_IVSHMEM_CLIENT] = "vireo-ivshmem-client",
};

const char *sandbox_program_name(SandboxProgram program)
{
    return program < SANDBOX_NR_PROGRAMS ? program_names[program] : "unknown";
}

bool sandbox_program_opt(const char *arg, Error **errp)
{
    if (!strcmp(arg, "on") || !strcmp(arg, "off")) {
        program_sandbox = !strcmp(arg, "on");
        return true;
    }
    error_setg(errp, "--sandbox takes on or off, not '%s'", arg);
    return false;
}

static void thread_enter(SandboxKind kind);

/*
 * Two things the C library's malloc looks up in files the first time it
 * needs them, on whichever thread that is; after the lock-down that may be
 * a thread whose list denies opening (an NBD worker, a block worker). Make
 * both happen now:
 *  - past eight arenas (one per thread, at first) it caps their number by
 *    the count of CPUs, read from /sys: fix the cap here, at its default;
 *  - the first time it gives back memory at the top of a thread's arena it
 *    reads /proc/sys/vm/overcommit_memory (and keeps the answer): a helper
 *    thread fills and frees 4 MiB of its own arena to get that done, in
 *    pieces below the mmap threshold: past the trim threshold unless large
 *    blocks freed earlier raised it beyond that (the NBD workers' list
 *    allows read-only opens for that case).
 */
enum { PRIME_CHUNKS = 64, PRIME_CHUNK_SIZE = 64 * 1024 };

static void *shrink_own_arena(void *opaque)
{
    void *p[PRIME_CHUNKS];
    for (int i = 0; i < PRIME_CHUNKS; i++) {
        p[i] = malloc(PRIME_CHUNK_SIZE);
        if (p[i]) {
            memset(p[i], 0, PRIME_CHUNK_SIZE);
        }
    }
    for (int i = PRIME_CHUNKS; i-- > 0;) {
        free(p[i]);     /* newest first: the arena's top grows past the trim threshold */
    }
    return opaque;
}

static void settle_malloc(void)
{
#ifdef M_ARENA_MAX
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, (int)((cpus > 0 ? cpus : 1) * (sizeof(long) == 8 ? 8 : 2)));
#endif
    pthread_t t;
    if (pthread_create(&t, NULL, shrink_own_arena, NULL) == 0) {
        pthread_join(t, NULL);
    }
}

bool sandbox_confine_program(SandboxProgram program, Error **errp)
{
    /* The daemons take no sub-options: a denied call is always named. */
    static const SandboxConfig daemon_config = {
        .enable = true, .log = true, .obsolete = SANDBOX_DENY, .elevate = SANDBOX_DENY,
        .spawn = SANDBOX_DENY, .resourcecontrol = SANDBOX_DENY,
    };
    if (!program_sandbox) {
        return true;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        error_setg_errno(errp, errno, "cannot set no_new_privs");
        return false;
    }
    tzset();    /* see sandbox_lock_down() */
    settle_malloc();
    program_label = sandbox_program_name(program);
    other_threads_label = "daemon";
    if (!load_filter(&daemon_config, add_program, program, "daemon", true, errp)) {
        return false;
    }
    malloc_trim(0);
    thread_filter_installed = true;     /* the calling thread keeps the program's list */
    thread_config = &daemon_config;
    atomic_store_explicit(&process_filter_installed, true, memory_order_release);
    seccomp_set_thread_hook(thread_enter);
    return true;
}

/* The hook threads call: stack this thread's own filter, once. */
static void thread_enter(SandboxKind kind)
{
    if (thread_filter_installed) {
        return;
    }
    thread_filter_installed = true;
    /*
     * vCPU threads and workers block every signal. A trapped call would
     * then not run the handler: the kernel resets SIGSYS to its default
     * and the process dies without naming the call. SIGSYS only ever
     * comes from the filter, so no thread needs it blocked.
     */
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
    Error *err = NULL;
    if (!sandbox_install(thread_config, kind, false, &err)) {
        /* The process filter still holds this thread. */
        error_report_err(err);
    }
}

bool sandbox_lock_down(Error **errp)
{
    if (!sandbox_drop_privileges(&sandbox_config, errp)) {
        return false;
    }
    if (!sandbox_config.enable) {
        return true;
    }
    /*
     * The C library reads the time zone (opens /etc/localtime) the first
     * time any thread converts a time, gmtime_r included: the RTC does so
     * on a vCPU thread when the guest reads the clock, and no thread but
     * the main one may open files. Read it now, while opening is allowed.
     */
    tzset();
    settle_malloc();
    if (!sandbox_install(&sandbox_config, SANDBOX_MAIN, true, errp)) {
        return false;
    }
    /* libseccomp's working tables are freed but would stay in the heap. */
    malloc_trim(0);
    thread_filter_installed = true;     /* the main thread's list is the union */
    atomic_store_explicit(&process_filter_installed, true, memory_order_release);
    seccomp_set_thread_hook(thread_enter);
    return true;
}
