/*
 * Where threads tell the sandbox what kind they are. The libraries every
 * program links (util, block, nbd) call seccomp_thread_enter() at the top of
 * their threads' loops; vireo's sandbox registers what it does, other
 * programs register nothing and the call costs one atomic load.
 */
#ifndef VIREO_UTIL_SECCOMP_HOOK_H
#define VIREO_UTIL_SECCOMP_HOOK_H

typedef enum SandboxKind {
    SANDBOX_MAIN,           /* main loop, monitors: the union of all below */
    SANDBOX_VCPU,           /* KVM_RUN and device emulation on exits */
    SANDBOX_IOTHREAD,       /* -object iothread event loops */
    SANDBOX_BLOCK_WORKER,   /* block/aio.c thread-pool workers */
    SANDBOX_LOG_WRITER,     /* util/log.c's stderr writer */
    SANDBOX_DAEMON,         /* a daemon's single event loop */
    SANDBOX_NBD_WORKER,     /* nbd/nbd-server.c's connection workers */
    SANDBOX_COMPRESS_WORKER,    /* block/qcow2-compress.c's helper threads */
    SANDBOX_NR_KINDS
} SandboxKind;

typedef void SeccompThreadHook(SandboxKind kind);

/* Called by a thread of this kind, at its start and each turn of its loop. */
void seccomp_thread_enter(SandboxKind kind);

/* The sandbox sets this once the process-wide filter is in place. */
void seccomp_set_thread_hook(SeccompThreadHook *hook);

#endif
