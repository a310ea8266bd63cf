/*
 * vhost-user messages on a UNIX socket: a header, the payload and up to
 * VHOST_USER_MAX_FDS descriptors as SCM_RIGHTS. Receiving checks the
 * version and the size before reading a payload, and refuses truncated
 * descriptor lists (the kernel has already closed the excess ones).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/osdep.h"
#include "vhost-user/vhost-user-proto.h"

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
        fds[i] = -1;
    }
}

void vu_msg_close_fds(VuMsg *m)
{
    close_fds(m->fds, m->nfds);
    m->nfds = 0;
}

/* Take the descriptors out of the control messages, even on error. */
static bool take_fds(struct msghdr *mh, VuMsg *m, Error **errp)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        unsigned n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (unsigned i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (m->nfds < VHOST_USER_MAX_FDS) {
                m->fds[m->nfds++] = fd;
            } else {
                close(fd);
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC) {
        error_setg(errp, "more than %d file descriptors in one message", VHOST_USER_MAX_FDS);
        return false;
    }
    return true;
}

static int recv_full(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = recv(fd, (uint8_t *)buf + done, len - done, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r < 0 ? -errno : -EPIPE;
        }
        done += r;
    }
    return 0;
}

int vu_msg_recv(int fd, VuMsg *m, Error **errp)
{
    union {
        char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { &m->hdr, sizeof(m->hdr) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    m->nfds = 0;
    ssize_t r;
    do {
        r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        return 0;       /* the frontend left */
    }
    if (r < 0) {
        error_setg_errno(errp, errno, "cannot read a message");
        return -1;
    }
    if (!take_fds(&mh, m, errp)) {
        return -1;
    }
    if (r < (ssize_t)sizeof(m->hdr) &&
        recv_full(fd, (uint8_t *)&m->hdr + r, sizeof(m->hdr) - r) < 0) {
        error_setg(errp, "message header cut short");
        return -1;
    }
    if ((m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        error_setg(errp, "request %u: protocol version %u, not %u", m->hdr.request,
                   m->hdr.flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
        return -1;
    }
    if (m->hdr.size > sizeof(m->payload)) {
        error_setg(errp, "request %u: payload of %u bytes (at most %zu)", m->hdr.request,
                   m->hdr.size, sizeof(m->payload));
        return -1;
    }
    int e = recv_full(fd, &m->payload, m->hdr.size);
    if (e < 0) {
        error_setg_errno(errp, -e, "request %u: payload of %u bytes cut short",
                         m->hdr.request, m->hdr.size);
        return -1;
    }
    return 1;
}

bool vu_msg_send(int fd, uint32_t request, const void *payload, uint32_t size, int send_fd,
                 Error **errp)
{
    VhostUserHeader hdr = {
        .request = request,
        .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
        .size = size,
    };
    struct iovec iov[2] = { { &hdr, sizeof(hdr) }, { (void *)payload, size } };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
    if (send_fd >= 0) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &send_fd, sizeof(int));
    }
    ssize_t r;
    do {
        r = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r != (ssize_t)(sizeof(hdr) + size)) {
        error_setg_errno(errp, r < 0 ? errno : EPIPE, "cannot send the reply to request %u",
                         request);
        return false;
    }
    return true;
}

int vu_listen_unix(const char *path, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "socket path '%s' is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return -1;
    }
    unlink(path);       /* a stale socket of an earlier run */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        error_setg_errno(errp, errno, "cannot listen on '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}
