/* Shared between the sandbox module's files; not for the rest of vireo. */
#ifndef VIREO_SANDBOX_INTERNAL_H
#define VIREO_SANDBOX_INTERNAL_H

#include <seccomp.h>

#include "sandbox/sandbox.h"

/* The building blocks every list is made of (sandbox-rules.c). */
extern const char *const sandbox_calls_common[];        /* the C library, any thread */
extern const char *const sandbox_calls_device[];        /* device emulation: I/O, polling */
extern const char *const sandbox_calls_sanitizer[];     /* ASan/UBSan/LSan run-times */
extern const unsigned long sandbox_ioctls_tty[];        /* 0-terminated */
bool sandbox_sanitizer_build(void);
bool sandbox_rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned nargs,
                  const struct scmp_arg_cmp *args, Error **errp);
bool sandbox_allow_names(scmp_filter_ctx ctx, const char *const *names, Error **errp);
bool sandbox_allow_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, Error **errp);
bool sandbox_allow_memory(scmp_filter_ctx ctx, Error **errp);    /* never PROT_EXEC */
bool sandbox_allow_threads(scmp_filter_ctx ctx, bool processes_too, Error **errp);

/* Add program's allow-list (sandbox-programs.c). */
bool sandbox_program_rules_add(scmp_filter_ctx ctx, SandboxProgram program, Error **errp);

/* Add kind's allow-list, shaped by the sub-options in c, to ctx. */
bool sandbox_rules_add(scmp_filter_ctx ctx, const SandboxConfig *c, SandboxKind kind,
                       Error **errp);

/* chroot and drop to c->user; then no_new_privs. */
bool sandbox_drop_privileges(const SandboxConfig *c, Error **errp);

#endif
