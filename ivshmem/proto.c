/*
 * The ivshmem wire format: 8-byte little-endian numbers with an optional
 * SCM_RIGHTS descriptor (see proto.h).
 */
#include "ivshmem/proto.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t ivshmem_send_part(int sock, int64_t value, int fd, size_t off)
{
    uint64_t le = htole64((uint64_t)value);
    struct iovec iov = {
        .iov_base = (char *)&le + off,
        .iov_len = IVSHMEM_MSG_SIZE - off,
    };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (fd >= 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Take the descriptors out of a received control buffer: the first goes to
 * *fd, any further ones are closed (a message carries at most one). */
static int take_fds(struct msghdr *msg, int *fd)
{
    int count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*fd < 0) {
                *fd = got;
            } else {
                close(got);
            }
            count++;
        }
    }
    return count;
}

int ivshmem_recv_msg(int sock, int64_t *value, int *fd, Error **errp)
{
    uint64_t le = 0;
    size_t got = 0;
    *fd = -1;
    while (got < IVSHMEM_MSG_SIZE) {
        struct iovec iov = { (char *)&le + got, IVSHMEM_MSG_SIZE - got };
        union {
            char buf[CMSG_SPACE(4 * sizeof(int))];
            struct cmsghdr align;
        } control;
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "receiving from the server");
            goto fail;
        }
        if (n == 0) {
            if (got == 0 && *fd < 0) {
                return 0;
            }
            error_setg(errp, "the server closed the connection inside a message");
            goto fail;
        }
        int count = take_fds(&msg, fd);
        if (count > 1 || (msg.msg_flags & MSG_CTRUNC)) {
            error_setg(errp, "the server sent more than one descriptor with a message");
            goto fail;
        }
        got += (size_t)n;
    }
    *value = (int64_t)le64toh(le);
    return 1;
fail:
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return -1;
}
