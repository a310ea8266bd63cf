/* Shared between the sandbox module's files; not for the rest of vireo. */
#ifndef VIREO_SANDBOX_INTERNAL_H
#define VIREO_SANDBOX_INTERNAL_H

#include <seccomp.h>

#include "sandbox/sandbox.h"

/* An ioctl request a list allows, with its name for the listing. */
typedef struct SandboxIoctl {
    unsigned long request;
    const char *name;
} SandboxIoctl;
#define SANDBOX_IOCTL(req) { (unsigned long)(req), #req }

/* The building blocks every list is made of (sandbox-rules.c). */
extern const char *const sandbox_calls_common[];        /* the C library, any thread */
extern const char *const sandbox_calls_device[];        /* device emulation: I/O, polling */
extern const char *const sandbox_calls_sanitizer[];     /* ASan/UBSan/LSan run-times */
extern const SandboxIoctl sandbox_ioctls_tty[];         /* ends with a NULL name */
bool sandbox_sanitizer_build(void);
bool sandbox_rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned nargs,
                  const struct scmp_arg_cmp *args, Error **errp);
/* label says what the comparison means (an ioctl request's name, a socket family). */
bool sandbox_rule_named(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned nargs,
                        const struct scmp_arg_cmp *args, const char *label, Error **errp);
bool sandbox_allow_names(scmp_filter_ctx ctx, const char *const *names, Error **errp);
bool sandbox_allow_ioctls(scmp_filter_ctx ctx, const SandboxIoctl *reqs, Error **errp);

/*
 * Every rule goes through sandbox_rule_named(); with a recorder set, each
 * is also handed to it as it is added (the listing, sandbox-list.c).
 */
typedef struct SandboxRuleRecord {
    int nr;
    uint32_t action;
    unsigned nargs;
    struct scmp_arg_cmp args[6];
    const char *label;
} SandboxRuleRecord;
typedef void SandboxRuleRecorder(const SandboxRuleRecord *rule, void *opaque);
void sandbox_set_recorder(SandboxRuleRecorder *fn, void *opaque);

/*
 * Build the filter sandbox_install() or sandbox_confine_program() would
 * load (kind, or program when program >= 0) without loading it; NULL on
 * error. seccomp_release() it.
 */
scmp_filter_ctx sandbox_build_filter(const SandboxConfig *config, SandboxKind kind, int program,
                                     Error **errp);
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
