/*
 * The allow-lists: which system calls each kind of thread may make, and
 * the argument checks that are cheap enough to do in the filter.
 *
 * Everything not listed is denied. A list names system calls by name so
 * that a call the running kernel or libseccomp does not know is skipped
 * rather than failing the whole filter.
 *
 * Stacking matters here: a thread inherits the filters of the thread that
 * created it. A block worker may be started from a vCPU or an iothread
 * (the first request of a virtio-blk queue processed there), and the log
 * writer from whichever thread logs first; an NBD worker starts block
 * workers too, and compression helpers when it writes compressed clusters.
 * So the vCPU, iothread and NBD worker lists hold everything a thread
 * start and the kinds they start need, or the child would die on its
 * first call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/netlink.h>
#include <linux/vhost.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/socket.h>

#include "sandbox/sandbox-internal.h"
#include "util/osdep.h"

/* The C library and the thread itself: every kind of thread makes these. */
const char *const sandbox_calls_common[] = {
    "read", "write", "readv", "writev", "close", "futex", "exit", "exit_group",
    "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack", "restart_syscall",
    "getpid", "gettid", "tgkill", "clock_gettime", "clock_nanosleep", "nanosleep",
    "gettimeofday", "time", "getrandom", "madvise", "munmap", "mremap", "brk",
    "sched_yield", "sched_getaffinity", "set_robust_list", "rseq", "getrusage",
    "getpriority", "sched_getparam", "sched_getscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "membarrier", "seccomp", "prctl", "fstat", "newfstatat",
    NULL
};

/*
 * Device emulation: what vCPU threads (on exits) and iothreads (virtqueue
 * processing) do. No opening of paths, no new sockets, no processes.
 */
const char *const sandbox_calls_device[] = {
    "poll", "ppoll", "select", "pselect6", "eventfd2", "pread64", "pwrite64",
    "preadv", "pwritev", "preadv2", "pwritev2", "fsync", "fdatasync", "fallocate",
    "sync_file_range", "lseek", "fcntl", "dup", "dup3", "sendmsg", "recvmsg", "sendto",
    "recvfrom", "shutdown", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "timerfd_settime", "timerfd_gettime", "io_uring_enter", "io_uring_register",
    "rt_sigtimedwait", "ftruncate", "getsockopt",
    NULL
};

/* The main loop and monitors: opens files and sockets, hot-plugs, resets. */
static const char *const calls_main[] = {
    "open", "openat", "openat2", "close_range", "stat", "lstat", "statx", "statfs",
    "fstatfs", "readlink", "readlinkat", "getdents64", "access", "faccessat",
    "faccessat2", "fchmod", "fchmodat", "fchown", "umask", "getcwd", "fadvise64",
    "copy_file_range", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "mkdir", "mkdirat", "flock", "dup2", "pipe", "pipe2", "memfd_create",
    "epoll_create", "epoll_create1", "timerfd_create", "signalfd4", "io_uring_setup",
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname",
    "getpeername", "setsockopt", "sendmmsg", "recvmmsg", "getuid", "geteuid", "getgid",
    "getegid", "getresuid", "getresgid", "getgroups", "uname", "sysinfo", "getrlimit",
    "prlimit64", "rt_sigpending", "rt_sigqueueinfo", "setitimer", "alarm",
    "timer_create", "timer_settime", "timer_delete", "clock_getres", "getcpu", "kill",
    "wait4", "waitid", "mlock", "mlock2", "munlock", "mlockall", "munlockall",
    "mbind", "get_mempolicy", "set_mempolicy", "getppid",
    NULL
};

/*
 * The NBD server's connection workers: accept clients, move bytes over
 * their non-blocking sockets, wait in epoll, and run the block layer on
 * the requests (image I/O as block workers do it, io_uring submissions,
 * starting block workers and the log writer). They create no socket and
 * no file: the listener and the images are the main loop's.
 */
static const char *const calls_nbd_worker[] = {
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "accept", "accept4",
    "recvfrom", "sendto", "recvmsg", "sendmsg", "setsockopt", "getsockopt", "shutdown",
    "fcntl", "poll", "ppoll", "io_uring_enter",
    NULL
};

/* Block thread-pool workers: positional I/O on image descriptors. */
static const char *const calls_block_worker[] = {
    "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "fsync",
    "fdatasync", "fallocate", "sync_file_range", "ftruncate", "lseek",
    NULL
};

/* The sub-options' sets (the names QEMU 7.2 puts in them, as facts). */
static const char *const calls_obsolete[] = {
    "readdir", "_sysctl", "bdflush", "create_module", "get_kernel_syms",
    "query_module", "sgetmask", "ssetmask", "sysfs", "uselib", "ustat", NULL
};
static const char *const calls_elevate[] = {
    "setuid", "setgid", "setpgid", "setsid", "setreuid", "setregid", "setresuid",
    "setresgid", "setfsuid", "setfsgid", NULL
};
static const char *const calls_spawn[] = {
    "fork", "vfork", "execve", "execveat", NULL
};
static const char *const calls_resourcecontrol[] = {
    "setpriority", "sched_setparam", "sched_setscheduler", "sched_setaffinity",
    "sched_setattr", NULL
};

/*
 * What the ASan/UBSan/LSan run-times need to report an error from any
 * thread: read /proc/self/maps and the executable, stop the world for the
 * leak check at exit (a tracer made with clone() without CLONE_THREAD,
 * ptrace, waitpid). Only sanitizer builds get these.
 */
const char *const sandbox_calls_sanitizer[] = {
    "openat", "open", "readlink", "readlinkat", "getdents", "getdents64", "lseek", "pread64",
    "ptrace", "wait4", "clone", "pipe2", "dup2", "kill", "getppid", "getrlimit",
    "prlimit64", "mincore", "sched_getaffinity", "statfs", "uname",
    NULL
};

/* ioctl requests the VMM makes after start-up, by thread kind. */
const SandboxIoctl sandbox_ioctls_tty[] = { SANDBOX_IOCTL(TCGETS), { 0 } };
static const SandboxIoctl ioctls_device[] = {
    SANDBOX_IOCTL(KVM_IRQ_LINE), SANDBOX_IOCTL(KVM_SIGNAL_MSI),
    SANDBOX_IOCTL(KVM_SET_GSI_ROUTING), SANDBOX_IOCTL(KVM_IRQFD), SANDBOX_IOCTL(KVM_IOEVENTFD),
    SANDBOX_IOCTL(KVM_SET_USER_MEMORY_REGION), SANDBOX_IOCTL(KVM_GET_IRQCHIP),
    SANDBOX_IOCTL(KVM_SET_IRQCHIP), SANDBOX_IOCTL(KVM_GET_PIT2), SANDBOX_IOCTL(KVM_SET_PIT2),
    SANDBOX_IOCTL(KVM_GET_CLOCK), SANDBOX_IOCTL(KVM_SET_CLOCK), SANDBOX_IOCTL(KVM_CHECK_EXTENSION),
    SANDBOX_IOCTL(VHOST_GET_FEATURES), SANDBOX_IOCTL(VHOST_SET_FEATURES),
    SANDBOX_IOCTL(VHOST_GET_BACKEND_FEATURES), SANDBOX_IOCTL(VHOST_SET_OWNER),
    SANDBOX_IOCTL(VHOST_SET_MEM_TABLE), SANDBOX_IOCTL(VHOST_SET_VRING_NUM),
    SANDBOX_IOCTL(VHOST_SET_VRING_ADDR), SANDBOX_IOCTL(VHOST_SET_VRING_BASE),
    SANDBOX_IOCTL(VHOST_GET_VRING_BASE), SANDBOX_IOCTL(VHOST_SET_VRING_KICK),
    SANDBOX_IOCTL(VHOST_SET_VRING_CALL), SANDBOX_IOCTL(VHOST_NET_SET_BACKEND),
    SANDBOX_IOCTL(TUNSETOFFLOAD), SANDBOX_IOCTL(TUNSETVNETHDRSZ), SANDBOX_IOCTL(TUNSETSNDBUF),
    { 0 }
};
static const SandboxIoctl ioctls_vcpu[] = {
    SANDBOX_IOCTL(KVM_RUN), SANDBOX_IOCTL(KVM_GET_REGS), SANDBOX_IOCTL(KVM_SET_REGS),
    SANDBOX_IOCTL(KVM_GET_SREGS), SANDBOX_IOCTL(KVM_SET_SREGS), SANDBOX_IOCTL(KVM_SET_FPU),
    SANDBOX_IOCTL(KVM_GET_MSRS), SANDBOX_IOCTL(KVM_SET_MSRS), SANDBOX_IOCTL(KVM_SET_VCPU_EVENTS),
    SANDBOX_IOCTL(KVM_GET_LAPIC), SANDBOX_IOCTL(KVM_SET_LAPIC), SANDBOX_IOCTL(KVM_SET_MP_STATE),
    SANDBOX_IOCTL(KVM_SET_CPUID2), SANDBOX_IOCTL(KVM_GET_MP_STATE),
    SANDBOX_IOCTL(KVM_GET_VCPU_EVENTS), SANDBOX_IOCTL(KVM_GET_DEBUGREGS),
    SANDBOX_IOCTL(KVM_GET_FPU), SANDBOX_IOCTL(KVM_GET_XSAVE), { 0 }
};
/* Only the main loop: terminals, creating things, image hints. */
static const SandboxIoctl ioctls_main[] = {
    SANDBOX_IOCTL(TCSETS), SANDBOX_IOCTL(TCSETSW), SANDBOX_IOCTL(TCSETSF),
    SANDBOX_IOCTL(TIOCGWINSZ), SANDBOX_IOCTL(KVM_GET_API_VERSION), SANDBOX_IOCTL(KVM_CREATE_VM),
    SANDBOX_IOCTL(KVM_CREATE_VCPU), SANDBOX_IOCTL(KVM_GET_VCPU_MMAP_SIZE),
    SANDBOX_IOCTL(KVM_GET_SUPPORTED_CPUID), SANDBOX_IOCTL(KVM_CREATE_IRQCHIP),
    SANDBOX_IOCTL(KVM_CREATE_PIT2), SANDBOX_IOCTL(KVM_SET_TSS_ADDR),
    SANDBOX_IOCTL(KVM_SET_IDENTITY_MAP_ADDR), SANDBOX_IOCTL(TUNSETIFF), SANDBOX_IOCTL(TUNSETQUEUE),
    SANDBOX_IOCTL(FS_IOC_FSGETXATTR), SANDBOX_IOCTL(FS_IOC_FSSETXATTR), SANDBOX_IOCTL(FIONREAD),
    { 0 }
};

bool sandbox_sanitizer_build(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

static SandboxRuleRecorder *recorder;
static void *recorder_opaque;

void sandbox_set_recorder(SandboxRuleRecorder *fn, void *opaque)
{
    recorder = fn;
    recorder_opaque = opaque;
}

bool sandbox_rule_named(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned nargs,
                        const struct scmp_arg_cmp *args, const char *label, Error **errp)
{
    if (recorder) {
        SandboxRuleRecord r = { .nr = nr, .action = action, .nargs = nargs, .label = label };
        if (nargs) {
            memcpy(r.args, args, MIN(nargs, ARRAY_SIZE(r.args)) * sizeof(*args));
        }
        recorder(&r, recorder_opaque);
    }
    int rc = seccomp_rule_add_array(ctx, action, nr, nargs, args);
    /* -EEXIST: the same call was allowed by an earlier list. */
    if (rc < 0 && rc != -EEXIST) {
        error_setg_errno(errp, -rc, "seccomp: cannot add a rule for system call %d", nr);
        return false;
    }
    return true;
}

bool sandbox_rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned nargs,
                  const struct scmp_arg_cmp *args, Error **errp)
{
    return sandbox_rule_named(ctx, action, nr, nargs, args, NULL, errp);
}

bool sandbox_allow_names(scmp_filter_ctx ctx, const char *const *names, Error **errp)
{
    for (; *names; names++) {
        int nr = seccomp_syscall_resolve_name(*names);
        if (nr == __NR_SCMP_ERROR || nr < 0) {
            continue;       /* not a system call on this architecture */
        }
        if (!sandbox_rule(ctx, SCMP_ACT_ALLOW, nr, 0, NULL, errp)) {
            return false;
        }
    }
    return true;
}

bool sandbox_allow_ioctls(scmp_filter_ctx ctx, const SandboxIoctl *reqs, Error **errp)
{
    for (; reqs->name; reqs++) {
        /* The kernel reads the request as a 32-bit int: compare only those bits. */
        struct scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL,
                                          reqs->request & 0xffffffffUL);
        if (!sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &cmp, reqs->name, errp)) {
            return false;
        }
    }
    return true;
}

/* mmap and mprotect only without PROT_EXEC: no new code after start-up. */
bool sandbox_allow_memory(scmp_filter_ctx ctx, Error **errp)
{
    struct scmp_arg_cmp no_exec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
    return sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, &no_exec, "no PROT_EXEC",
                              errp) &&
           sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, &no_exec,
                              "no PROT_EXEC", errp);
}

/*
 * Threads, not processes: clone() must carry CLONE_THREAD unless spawning
 * is allowed. clone3() passes its flags in memory the filter cannot read,
 * so it fails with ENOSYS and the C library falls back to clone().
 */
bool sandbox_allow_threads(scmp_filter_ctx ctx, bool processes_too, Error **errp)
{
    if (!sandbox_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL, errp)) {
        return false;
    }
    if (processes_too) {
        return sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 0, NULL, errp);
    }
    struct scmp_arg_cmp thread = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
    return sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &thread, "CLONE_THREAD",
                              errp);
}

/* socket() only in the families vireo uses (netlink for getaddrinfo). */
static bool allow_sockets(scmp_filter_ctx ctx, Error **errp)
{
    static const struct { int domain; const char *name; } domains[] = {
        { AF_UNIX, "AF_UNIX" }, { AF_INET, "AF_INET" }, { AF_INET6, "AF_INET6" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(domains); i++) {
        struct scmp_arg_cmp d = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)domains[i].domain);
        if (!sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &d, domains[i].name,
                                errp)) {
            return false;
        }
    }
    struct scmp_arg_cmp nl[2] = {
        SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE),
    };
    struct scmp_arg_cmp pair = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
    return sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, nl, "AF_NETLINK", errp) &&
           sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, &pair, "AF_UNIX",
                              errp);
}

static bool kind_has_devices(SandboxKind kind)
{
    return kind == SANDBOX_MAIN || kind == SANDBOX_VCPU || kind == SANDBOX_IOTHREAD ||
           kind == SANDBOX_DAEMON;
}

static bool add_kind_lists(scmp_filter_ctx ctx, SandboxKind kind, bool spawn, Error **errp)
{
    bool ok = sandbox_allow_names(ctx, sandbox_calls_common, errp) && sandbox_allow_memory(ctx, errp);
    if (kind == SANDBOX_COMPRESS_WORKER) {
        /* Deflate or zstd over memory it is handed: no descriptor I/O at all. */
        return ok;
    }
    ok = ok && sandbox_allow_ioctls(ctx, sandbox_ioctls_tty, errp);
    if (ok && kind != SANDBOX_LOG_WRITER) {
        ok = sandbox_allow_names(ctx, calls_block_worker, errp);
    }
    if (ok && kind == SANDBOX_NBD_WORKER) {
        /*
         * Block workers, compression helpers and the log writer start from
         * here. Opening read-only with O_CLOEXEC, the way the C library
         * reads /proc and /sys for malloc (sandbox.c settles that before
         * the lock-down when it can): no creating, no writing.
         */
        struct scmp_arg_cmp ro = SCMP_A2(SCMP_CMP_EQ, O_RDONLY | O_CLOEXEC);
        ok = sandbox_allow_names(ctx, calls_nbd_worker, errp) &&
             sandbox_allow_threads(ctx, spawn, errp) &&
             sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, &ro,
                                "O_RDONLY|O_CLOEXEC", errp);
    }
    if (ok && kind_has_devices(kind)) {
        /* Devices may start block workers and the log writer. */
        ok = sandbox_allow_names(ctx, sandbox_calls_device, errp) && sandbox_allow_threads(ctx, spawn, errp) &&
             sandbox_allow_ioctls(ctx, ioctls_device, errp);
    }
    if (ok && (kind == SANDBOX_MAIN || kind == SANDBOX_VCPU)) {
        ok = sandbox_allow_ioctls(ctx, ioctls_vcpu, errp);
    }
    if (ok && (kind == SANDBOX_MAIN || kind == SANDBOX_DAEMON)) {
        ok = sandbox_allow_names(ctx, calls_main, errp) && allow_sockets(ctx, errp) &&
             sandbox_allow_ioctls(ctx, ioctls_main, errp);
    }
    return ok;
}

bool sandbox_rules_add(scmp_filter_ctx ctx, const SandboxConfig *c, SandboxKind kind,
                       Error **errp)
{
    bool spawn = c->spawn == SANDBOX_ALLOW;
    if (!add_kind_lists(ctx, kind, spawn || sandbox_sanitizer_build(), errp)) {
        return false;
    }
    if (sandbox_sanitizer_build() && !sandbox_allow_names(ctx, sandbox_calls_sanitizer, errp)) {
        return false;
    }
    /* The sub-options widen only the main loop's list (and so the process's). */
    if (kind != SANDBOX_MAIN && kind != SANDBOX_DAEMON) {
        return true;
    }
    return (c->obsolete != SANDBOX_ALLOW || sandbox_allow_names(ctx, calls_obsolete, errp)) &&
           (c->elevate != SANDBOX_ALLOW || sandbox_allow_names(ctx, calls_elevate, errp)) &&
           (!spawn || sandbox_allow_names(ctx, calls_spawn, errp)) &&
           (c->resourcecontrol != SANDBOX_ALLOW || sandbox_allow_names(ctx, calls_resourcecontrol, errp));
}
