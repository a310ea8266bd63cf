/*
 * The vhost-user frontend's side of the wire: one message out with its
 * descriptors, one reply in, checked, under a deadline of
 * VHOST_USER_REPLY_TIMEOUT_MS. Internal to virtio/vhost-user.c.
 */
#include "virtio/vhost-user-wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "util/osdep.h"
#include "virtio/vhost-user.h"



/*
 * Wait until sock is ready for events, or the deadline passes, or the host
 * asks vireo to stop (the back-end must not hold shutdown off).
 */
static bool wait_ready(int sock, short events, int64_t deadline, Error **errp)
{
    for (;;) {
        int64_t left = deadline - monotonic_ms();
        int rc = left > 0 ? main_loop_wait_peer(sock, events, (int)left) : 0;
        if (rc > 0) {
            return true;
        }
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0 && errno == ECANCELED) {
            error_setg(errp, "gave up waiting: vireo is stopping");
            return false;
        }
        error_setg(errp, rc == 0 ? "no answer within %d ms" : "poll failed",
                   VHOST_USER_REPLY_TIMEOUT_MS);
        return false;
    }
}

bool vhost_user_send(int sock, const void *buf, size_t len, const int *fds,
                     unsigned nfds, Error **errp)
{
    int64_t deadline = monotonic_ms() + VHOST_USER_REPLY_TIMEOUT_MS;
    union {
        char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
        struct cmsghdr align;
    } control;
    size_t done = 0;
    while (done < len) {
        struct iovec iov = { (uint8_t *)buf + done, len - done };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds && done == 0) {    /* descriptors ride on the first byte */
            memset(&control, 0, sizeof(control));
            msg.msg_control = control.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_ready(sock, POLLOUT, deadline, errp)) {
                return false;
            }
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, errno, "cannot send");
            return false;
        }
        done += (size_t)n;
    }
    return true;
}

/* Descriptors that came with msg go into fds; those beyond the limit are closed. */
static void take_fds(struct msghdr *msg, int *fds, unsigned *nfds)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *in = (int *)CMSG_DATA(c);
        for (unsigned i = 0; i < k; i++) {
            if (*nfds < VHOST_USER_MAX_FDS) {
                fds[(*nfds)++] = in[i];
            } else {
                close(in[i]);
            }
        }
    }
}

/* Read exactly len bytes; descriptors that come along go into fds. */
static bool recv_all(int sock, void *buf, size_t len, int *fds, unsigned *nfds,
                     int64_t deadline, Error **errp)
{
    size_t got = 0;
    while (got < len) {
        union {
            char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
            struct cmsghdr align;
        } control;
        struct iovec iov = { (uint8_t *)buf + got, len - got };
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_ready(sock, POLLIN, deadline, errp)) {
                return false;
            }
            continue;
        }
        if (n > 0) {
            take_fds(&msg, fds, nfds);
        }
        if (n <= 0) {
            error_setg(errp, n == 0 ? "connection closed" : "cannot receive");
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

const char *vhost_user_request_name(uint32_t req)
{
    static const char *const names[VHOST_USER_REQUEST_MAX] = {
        [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
        [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
        [VHOST_USER_SET_OWNER] = "SET_OWNER",
        [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
        [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
        [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
        [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
        [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
        [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
        [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
        [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
        [VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
        [VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
        [VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
        [VHOST_USER_ADD_MEM_REG] = "ADD_MEM_REG",
        [VHOST_USER_SET_STATUS] = "SET_STATUS",
        [VHOST_USER_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
    };
    return req < VHOST_USER_REQUEST_MAX && names[req] ? names[req] : "?";
}

/*
 * One reply to `request`: the reply flag and version set, the same request
 * id, a payload of exactly want_size bytes (the size field is checked
 * before anything is read into the buffer) and at most max_fds descriptors.
 */
bool vhost_user_recv_reply(int sock, uint32_t request, VhostUserMsg *m, size_t want_size,
                       int *fds, unsigned max_fds, unsigned *nfds, Error **errp)
{
    int64_t deadline = monotonic_ms() + VHOST_USER_REPLY_TIMEOUT_MS;
    int got_fds[VHOST_USER_MAX_FDS];
    unsigned n = 0;
    bool ok = recv_all(sock, &m->hdr, sizeof(m->hdr), got_fds, &n, deadline, errp);
    if (ok && (m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        error_setg(errp, "reply has version %u", m->hdr.flags & VHOST_USER_VERSION_MASK);
        ok = false;
    } else if (ok && !(m->hdr.flags & VHOST_USER_REPLY_MASK)) {
        error_setg(errp, "reply lacks the reply flag");
        ok = false;
    } else if (ok && m->hdr.request != request) {
        error_setg(errp, "reply is for request %u", m->hdr.request);
        ok = false;
    } else if (ok && m->hdr.size != want_size) {
        error_setg(errp, "reply payload is %u bytes, not %zu", m->hdr.size, want_size);
        ok = false;
    }
    ok = ok && recv_all(sock, &m->payload, want_size, got_fds, &n, deadline, errp);
    if (ok && n > max_fds) {
        error_setg(errp, "reply carries %u descriptors, at most %u expected", n, max_fds);
        ok = false;
    }
    for (unsigned i = 0; i < n; i++) {
        if (ok && fds) {
            fds[i] = got_fds[i];
        } else {
            close(got_fds[i]);
        }
    }
    *nfds = ok ? n : 0;
    return ok;
}

/* ---- requests from the back-end (its channel) ---- */

void vhost_user_reader_reset(VhostUserReader *r)
{
    for (unsigned i = 0; i < r->nfds; i++) {
        close(r->fds[i]);
    }
    r->nfds = 0;
    r->got = 0;
}

int vhost_user_read_request(int sock, VhostUserReader *r, Error **errp)
{
    const size_t hdr = sizeof(r->msg.hdr);
    for (;;) {
        size_t want = r->got < hdr ? hdr : hdr + r->msg.hdr.size;
        if (r->got == want) {
            return 1;
        }
        union {
            char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
            struct cmsghdr align;
        } control;
        struct iovec iov = { (uint8_t *)&r->msg + r->got, want - r->got };
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return 0;
        }
        if (n > 0) {
            take_fds(&msg, r->fds, &r->nfds);
        }
        if (n == 0 && r->got == 0 && r->nfds == 0) {
            return -2;              /* closed between messages */
        }
        if (n <= 0) {
            error_setg(errp, n == 0 ? "the back-end closed its channel inside a message"
                                    : "cannot read the back-end's channel");
            return -1;
        }
        r->got += (size_t)n;
        if (r->got == hdr) {        /* the header decides what may follow */
            const VhostUserHeader *h = &r->msg.hdr;
            if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
                error_setg(errp, "back-end request has version %u",
                           h->flags & VHOST_USER_VERSION_MASK);
                return -1;
            }
            if (h->flags & VHOST_USER_REPLY_MASK) {
                error_setg(errp, "back-end sent a reply nobody asked for");
                return -1;
            }
            if (h->size > sizeof(VhostUserPayload)) {
                error_setg(errp, "back-end request %u has a payload of %u bytes, at most "
                           "%zu allowed", h->request, h->size, sizeof(VhostUserPayload));
                return -1;
            }
        }
    }
}
