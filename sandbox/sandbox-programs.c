/*
 * The daemons' allow-lists: what each program may still do once its
 * start-up is done (sandbox_confine_program()). Built from the same blocks
 * as vireo's own lists (sandbox-rules.c); everything else is denied.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "sandbox/sandbox-internal.h"
#include "util/osdep.h"

/*
 * vireo-storage-daemon keeps the widest list: its QMP monitor adds block
 * nodes (opening images) and exports (new listening sockets, NBD over
 * TCP) at run time, and exports run on iothreads with block workers. It
 * gets the list vireo's main loop has, minus what a VMM needs for KVM:
 * the SANDBOX_DAEMON kind, with every sub-option denied.
 */

/*
 * vireo-vhost-user-net: its tap queues and listening socket are open
 * before the filter. After that it accepts one frontend at a time,
 * exchanges messages and descriptors with it, maps the guest memory and
 * ring descriptors it is sent, and moves frames between rings and taps.
 * It opens nothing and creates no socket; at exit it removes its socket.
 */
static const char *const calls_vhost_user_net[] = {
    "poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_ctl", "accept", "accept4",
    "recvmsg", "sendmsg", "recvfrom", "sendto", "shutdown", "fcntl", "getsockopt", "setsockopt",
    "lseek",
    "unlink",
    "memfd_create", "ftruncate",   /* the inflight area, when a frontend asks */
    NULL
};
static const SandboxIoctl ioctls_vhost_user_net[] = {
    SANDBOX_IOCTL(TUNSETOFFLOAD), SANDBOX_IOCTL(TUNSETVNETHDRSZ), SANDBOX_IOCTL(TUNSETQUEUE),
    SANDBOX_IOCTL(TUNGETIFF), { 0 }
};

/*
 * vireo-ivshmem-server: the shared memory and the listening sockets (the
 * clients' and QMP's) are open before the filter. It accepts clients,
 * makes each one's interrupt eventfds, hands out descriptors with
 * SCM_RIGHTS, answers QMP and, detached, logs to syslog (a datagram
 * socket to /dev/log, connected on the first message). Out of
 * descriptors it gives back a spare one and opens /dev/null again to
 * keep in reserve: opening read-only is all it may do with a path.
 */
static const char *const calls_ivshmem_server[] = {
    "poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_ctl", "accept", "accept4",
    "recvmsg", "sendmsg", "recvfrom", "sendto", "connect", "shutdown", "fcntl", "getsockopt",
    "eventfd2", "unlink",
    NULL
};

/*
 * vireo-ivshmem-client: connected before the filter. After that it only
 * receives messages and descriptors from the server, polls them and stdin,
 * rings and drains eventfds, prints, and closes what it was sent. It
 * opens nothing, creates nothing, maps nothing.
 */
static const char *const calls_ivshmem_client[] = {
    "poll", "ppoll", "recvmsg",
    NULL
};

static bool allow_open_read_only(scmp_filter_ctx ctx, Error **errp)
{
    /* Exactly O_RDONLY|O_CLOEXEC: no creating, no writing, no O_PATH games. */
    struct scmp_arg_cmp flags = SCMP_A2(SCMP_CMP_EQ, O_RDONLY | O_CLOEXEC);
    return sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, &flags,
                              "O_RDONLY|O_CLOEXEC", errp);
}

static bool allow_unix_datagram_socket(scmp_filter_ctx ctx, Error **errp)
{
    /* syslog()'s socket; the type may carry SOCK_CLOEXEC. */
    struct scmp_arg_cmp args[2] = {
        SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
        SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM),
    };
    return sandbox_rule_named(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, args, "AF_UNIX", errp);
}

static bool add_common(scmp_filter_ctx ctx, Error **errp)
{
    return sandbox_allow_names(ctx, sandbox_calls_common, errp) &&
           sandbox_allow_memory(ctx, errp) &&
           sandbox_allow_ioctls(ctx, sandbox_ioctls_tty, errp) &&
           (!sandbox_sanitizer_build() ||
            (sandbox_allow_names(ctx, sandbox_calls_sanitizer, errp) &&
             sandbox_allow_threads(ctx, true, errp)));
}

bool sandbox_program_rules_add(scmp_filter_ctx ctx, SandboxProgram program, Error **errp)
{
    static const SandboxConfig deny_all = {
        .enable = true, .obsolete = SANDBOX_DENY, .elevate = SANDBOX_DENY,
        .spawn = SANDBOX_DENY, .resourcecontrol = SANDBOX_DENY,
    };
    switch (program) {
    case SANDBOX_PROGRAM_STORAGE_DAEMON:
        return sandbox_rules_add(ctx, &deny_all, SANDBOX_DAEMON, errp);
    case SANDBOX_PROGRAM_VHOST_USER_NET:
        return add_common(ctx, errp) &&
               sandbox_allow_names(ctx, calls_vhost_user_net, errp) &&
               sandbox_allow_ioctls(ctx, ioctls_vhost_user_net, errp);
    case SANDBOX_PROGRAM_IVSHMEM_SERVER:
        return add_common(ctx, errp) &&
               sandbox_allow_names(ctx, calls_ivshmem_server, errp) &&
               allow_open_read_only(ctx, errp) &&
               allow_unix_datagram_socket(ctx, errp);
    case SANDBOX_PROGRAM_IVSHMEM_CLIENT:
        return add_common(ctx, errp) &&
               sandbox_allow_names(ctx, calls_ivshmem_client, errp);
    default:
        error_setg(errp, "sandbox: no rules for program %d", (int)program);
        return false;
    }
}
