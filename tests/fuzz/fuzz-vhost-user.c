/*
 * libFuzzer target for the vhost-user back-end library (vhost-user/):
 * the input is what a frontend sends. A real back-end device (two rings)
 * listens on a UNIX socket and runs its real event loop; the harness
 * connects as the frontend and sends the input as messages, with file
 * descriptors where the input asks for them, reading (and dropping)
 * whatever the back-end answers.
 *
 * Each message in the input is: one byte of harness control, the 12-byte
 * header as it goes on the wire, then the payload bytes the header's size
 * announces (taken from the input, zero-padded when the input ends; a
 * size the protocol does not allow is sent alone). Control bits 0-3: how
 * many descriptors to attach (at most 8), bit 4: eventfds instead of
 * 1 MiB memfds, bit 5: keep the header's version bits as they are (else
 * version 1 is set, so most messages pass the first check).
 *
 * The device pops what the rings offer and returns it unwritten, so rings
 * placed in shared memory by the messages get walked too.
 *
 * Checks besides the sanitizers: the back-end never stops serving: after
 * every input the next frontend is accepted and answers GET_FEATURES.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/osdep.h"
#include "vhost-user/vhost-user-msg.h"
#include "vhost-user/vhost-user.h"
#include "virtio/virtio.h"

#define MEMFD_SIZE  (1u << 20)
#define MAX_MSGS    64

static VuLoop *loop;
static VuDev dev;
static char sock_path[108];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-vhost-user: %s\n", what);
    abort();
}

static uint64_t dev_features(VuDev *d)
{
    return 1ULL << VIRTIO_F_VERSION_1;
}

static void dev_process(VuDev *d, VuVring *vr)
{
    VirtQueue *vq = vu_vring_vq(d, vr);
    VirtQueueElement elem;
    for (int i = 0; i < 16 && virtqueue_pop(vq, &elem); i++) {
        vu_request_begin(d, vr, elem.head);
        vu_request_done(d, vr, &elem, 0);
        virtqueue_element_free(&elem);
    }
    vu_vring_notify(d, vr);
}

static const VuDevOps dev_ops = {
    .features = dev_features,
    .process = dev_process,
};

static void cleanup(void)
{
    unlink(sock_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    snprintf(sock_path, sizeof(sock_path), "/tmp/vireo-fuzz-vu-%d.sock", (int)getpid());
    int lfd;
    if (!(loop = vu_loop_new(&err)) || (lfd = vu_listen_unix(sock_path, &err)) < 0 ||
        !vu_dev_init(&dev, "fuzz", loop, lfd, 2, 16, &dev_ops, NULL, &err)) {
        fprintf(stderr, "fuzz-vhost-user: %s\n", error_get_pretty(err));
        exit(1);
    }
    /* Every protocol feature the library implements. */
    static const unsigned offered[] = {
        VHOST_USER_PROTOCOL_F_MQ, VHOST_USER_PROTOCOL_F_LOG_SHMFD,
        VHOST_USER_PROTOCOL_F_REPLY_ACK, VHOST_USER_PROTOCOL_F_BACKEND_REQ,
        VHOST_USER_PROTOCOL_F_CONFIG, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD,
        VHOST_USER_PROTOCOL_F_RESET_DEVICE, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS,
        VHOST_USER_PROTOCOL_F_STATUS,
    };
    for (size_t i = 0; i < sizeof(offered) / sizeof(offered[0]); i++) {
        dev.protocol_offered |= 1ULL << offered[i];
    }
    atexit(cleanup);
    return 0;
}

/* Connect as the frontend and let the back-end accept. */
static int connect_frontend(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, sock_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fail("cannot connect to the back-end");
    }
    for (int i = 0; i < 100 && dev.conn_fd < 0; i++) {
        vu_loop_run_once(loop, 10);
    }
    if (dev.conn_fd < 0) {
        fail("the back-end does not accept a frontend");
    }
    return fd;
}

/* Read and drop what the back-end sent, closing descriptors it passed. */
static size_t drain_replies(int fd, uint8_t *last, size_t last_size)
{
    size_t got = 0;
    for (;;) {
        uint8_t buf[4096];
        union {
            char b[CMSG_SPACE(8 * sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            return got;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int i = 0; i < nfds; i++) {
                    int rfd;
                    memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    close(rfd);
                }
            }
        }
        if (last && got < last_size) {
            memcpy(last + got, buf, MIN((size_t)n, last_size - got));
        }
        got += (size_t)n;
    }
}

static int make_fd(bool event)
{
    if (event) {
        return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    int fd = memfd_create("vireo-fuzz-vu", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, MEMFD_SIZE) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_message(int sock, uint8_t ctl, const uint8_t *msg, size_t len)
{
    int fds[8];
    unsigned nfds = MIN(ctl & 15u, 8u);
    for (unsigned i = 0; i < nfds; i++) {
        fds[i] = make_fd(ctl & 0x10);
        if (fds[i] < 0) {
            fail("cannot create a descriptor to pass");
        }
    }
    union {
        char b[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = { (void *)msg, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        mh.msg_control = cbuf.b;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET) {
        fail("cannot send a message");
    }
    for (unsigned i = 0; i < nfds; i++) {
        close(fds[i]);
    }
}

/* Let the back-end handle what it was sent (and poll its rings). */
static void run_backend(int sock)
{
    for (int i = 0; i < 4 && dev.conn_fd >= 0; i++) {
        struct pollfd p = { .fd = dev.conn_fd, .events = POLLIN };
        if (poll(&p, 1, 0) != 1) {
            vu_loop_run_once(loop, 0);      /* rings being polled */
            break;
        }
        vu_loop_run_once(loop, 0);
        drain_replies(sock, NULL, 0);
    }
}

static void disconnect_frontend(int sock)
{
    close(sock);
    for (int i = 0; i < 100 && dev.conn_fd >= 0; i++) {
        vu_loop_run_once(loop, 10);
    }
    if (dev.conn_fd >= 0) {
        fail("the back-end kept a frontend that had left");
    }
}

/* A frontend's first question must get an answer. */
static void check_still_serving(void)
{
    int sock = connect_frontend();
    VhostUserHeader h = { .request = VHOST_USER_GET_FEATURES, .flags = VHOST_USER_VERSION };
    send_message(sock, 0, (const uint8_t *)&h, sizeof(h));
    uint8_t reply[sizeof(h) + 8];
    size_t got = 0;
    for (int i = 0; i < 100 && got < sizeof(reply); i++) {
        vu_loop_run_once(loop, 10);
        got += drain_replies(sock, reply + got, sizeof(reply) - got);
    }
    if (got < sizeof(reply)) {
        fail("the back-end no longer answers GET_FEATURES");
    }
    disconnect_frontend(sock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) {
        return -1;
    }
    int sock = connect_frontend();
    const uint8_t *p = data, *end = data + size;
    uint8_t msg[sizeof(VhostUserMsg)];
    for (int n = 0; n < MAX_MSGS && end - p >= 1 + (ptrdiff_t)sizeof(VhostUserHeader) &&
                    dev.conn_fd >= 0; n++) {
        uint8_t ctl = *p++;
        VhostUserHeader h;
        memcpy(&h, p, sizeof(h));
        p += sizeof(h);
        if (!(ctl & 0x20)) {
            h.flags = (h.flags & ~VHOST_USER_VERSION_MASK) | VHOST_USER_VERSION;
        }
        size_t len = sizeof(h);
        memcpy(msg, &h, sizeof(h));
        if (h.size <= sizeof(VhostUserPayload)) {
            size_t take = MIN((size_t)h.size, (size_t)(end - p));
            memcpy(msg + len, p, take);
            memset(msg + len + take, 0, h.size - take);
            p += take;
            len += h.size;
        }
        send_message(sock, ctl, msg, len);
        run_backend(sock);
    }
    disconnect_frontend(sock);
    check_still_serving();
    return 0;
}
