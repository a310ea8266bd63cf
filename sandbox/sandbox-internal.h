/* Shared between the sandbox module's files; not for the rest of vireo. */
#ifndef VIREO_SANDBOX_INTERNAL_H
#define VIREO_SANDBOX_INTERNAL_H

#include <seccomp.h>

#include "sandbox/sandbox.h"

/* Add kind's allow-list, shaped by the sub-options in c, to ctx. */
bool sandbox_rules_add(scmp_filter_ctx ctx, const SandboxConfig *c, SandboxKind kind,
                       Error **errp);

/* chroot and drop to c->user; then no_new_privs. */
bool sandbox_drop_privileges(const SandboxConfig *c, Error **errp);

#endif
