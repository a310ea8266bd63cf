#include "util/seccomp-hook.h"

#include <stddef.h>

static SeccompThreadHook *thread_hook;

void seccomp_thread_enter(SandboxKind kind)
{
    SeccompThreadHook *hook = __atomic_load_n(&thread_hook, __ATOMIC_ACQUIRE);
    if (hook) {
        hook(kind);
    }
}

void seccomp_set_thread_hook(SeccompThreadHook *hook)
{
    __atomic_store_n(&thread_hook, hook, __ATOMIC_RELEASE);
}
