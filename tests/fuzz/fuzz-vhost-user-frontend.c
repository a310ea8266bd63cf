/*
 * libFuzzer target for vireo's vhost-user frontend (virtio/vhost-user.c,
 * vhost-user-wire.c, vhost-user-chan.c) against a hostile back-end. Each
 * input connects a fresh frontend (vhost_user_connect, as vhost-user-blk
 * does) through a UNIX client socket chardev (one for all inputs; it
 * connects again for each) to a back-end the harness accepts and runs in
 * a second thread: it reads every request vireo sends and
 * answers as the input says (well-formed, wrong request id, flags or
 * size, extra descriptors, spurious messages, hanging up), keeps the
 * back-end channel vireo hands over, and closes every other descriptor it
 * receives. The main thread then drives the frontend as the device would
 * (DRIVER_OK and the ring hand-over, reset, configuration reads and
 * writes, queue enables, kicks) and sends back-end channel requests
 * (CONFIG_CHANGE_MSG and others), read by vireo's channel code in the
 * harness's main-loop pass (fuzz-loop.h). Guest RAM is a shared memfd, as
 * vhost-user needs; the device is a bare virtio device of two queues
 * without a transport.
 *
 * Input: byte 0 the set-up (bit 0 want_config, bit 1 want_inflight, bit 2
 * two units needed instead of one, bit 3 a config_change handler), bytes
 * 1-2 (u16) the length of the back-end's script, the script, then the
 * frontend operations. Script: per request vireo sends, an action byte
 * (low 3 bits: 0 answer well, 1 wrong request id, 2 wrong flags, 3 wrong
 * size (a size byte follows), 4 hang up, 5 answer with an extra
 * descriptor, 6 answer well then send an unsolicited message, 7 answer
 * GET_INFLIGHT_FD with a pipe instead of a memfd; bit 3: an 8-byte value
 * follows for the answer: features, queue count, ack, ring base). An
 * exhausted script answers well with values a real back-end would give.
 * Frontend operations: an opcode byte (low 3 bits): 0 DRIVER_OK, 1 reset,
 * 2 GET_CONFIG (length byte), 3 SET_CONFIG (offset, length bytes), 4
 * queue enable/disable and kick (queue byte), 5 a back-end channel
 * message (request, flags bytes, u16 size, payload), 6 a main-loop pass,
 * 7 a device status byte.
 *
 * Checks besides the sanitizers: no hang (every wait is for an answer the
 * back-end gives or a hang-up), and no descriptor leaks across inputs.
 * FUZZ_VERBOSE=1 in the environment prints why a connection failed.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/chardev-internal.h"
#include "memory/guest-memory.h"
#include "virtio/vhost-user.h"
#include "virtio/virtio.h"
#include "vhost-user/vhost-user-msg.h"
#include "fuzz-loop.h"

#define RAM_SIZE    (1u << 20)
#define NVQS        2

static GuestMemory mem;
static VirtIODevice vdev;
static char listen_path[108];
static int listen_fd = -1;

/* The back-end thread's view. */
typedef struct Backend {
    int sock;
    const uint8_t *script;
    size_t len, pos;
    pthread_mutex_t lock;
    int chan;                   /* the channel vireo handed over, or -1 */
} Backend;

static Backend be = { .lock = PTHREAD_MUTEX_INITIALIZER, .chan = -1 };
static Chardev *chr;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-vhost-user-frontend: %s\n", what);
    abort();
}

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        fail("/proc/self/fd");
    }
    while (readdir(d)) {
        n++;
    }
    closedir(d);
    return n;
}

static void queue_output(VirtIODevice *v, VirtQueue *vq)
{
}

static void config_changed(VirtIODevice *v)
{
}

static void remove_socket(void)
{
    unlink(listen_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(listen_path, sizeof(listen_path), "%s/vireo-fuzz-vu-%d.sock",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", listen_path);
    unlink(listen_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listen_fd, 4) < 0) {
        fail("the back-end's listening socket");
    }
    atexit(remove_socket);
    char opts[sizeof(listen_path) + 32];
    snprintf(opts, sizeof(opts), "socket,id=vu0,path=%s", listen_path);
    if (!(chr = chardev_new_from_opts(opts, &err))) {
        fail(error_get_pretty(err));
    }
    if (!guest_memory_create(&mem, RAM_SIZE, RAM_SIZE, &err)) {
        fail(error_get_pretty(err));
    }
    virtio_device_init(&vdev, "vhost-user-blk", 2, &mem, 64, NVQS);
    for (unsigned i = 0; i < NVQS; i++) {
        VirtQueue *vq = virtio_queue_setup(&vdev, i, 128, queue_output);
        vq->desc = 0x1000 + 0x4000ull * i;
        vq->avail = vq->desc + 0x800;
        vq->used = vq->desc + 0x1000;
        vq->enabled = true;
    }
    /* One well-formed input first: what vireo opens once and keeps (lazily
     * created state) is open before the inputs whose descriptors count. */
    static const uint8_t warm_up[] = "\x0b\x00\x00\x00\x01\x00";
    LLVMFuzzerTestOneInput(warm_up, sizeof(warm_up) - 1);
    return 0;
}

static unsigned script8(void)
{
    return be.pos < be.len ? be.script[be.pos++] : 0;
}

static uint64_t script64(void)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) {
        v |= (uint64_t)script8() << (8 * i);
    }
    return v;
}

static bool full_read(int fd, void *buf, size_t len, int *fds, unsigned *nfds)
{
    size_t got = 0;
    while (got < len) {
        char cbuf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
        struct iovec iov = { (uint8_t *)buf + got, len - got };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf) };
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            return false;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
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
        got += (size_t)n;
    }
    return true;
}

static void send_with_fd(int sock, const void *buf, size_t len, int fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0) {
        /* vireo hung up first */
    }
}

/* What a well-behaved back-end would say. */
static uint64_t default_u64(uint32_t req)
{
    switch (req) {
    case VHOST_USER_GET_FEATURES:
        return 1ULL << 32 /* VERSION_1 */ | 1ULL << VHOST_USER_F_PROTOCOL_FEATURES |
               1ULL << 28 | 1ULL << 29;
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        return 1ULL << VHOST_USER_PROTOCOL_F_MQ | 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK |
               1ULL << VHOST_USER_PROTOCOL_F_BACKEND_REQ | 1ULL << VHOST_USER_PROTOCOL_F_CONFIG |
               1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD |
               1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS |
               1ULL << VHOST_USER_PROTOCOL_F_STATUS;
    case VHOST_USER_GET_QUEUE_NUM:
        return 4;
    case VHOST_USER_GET_MAX_MEM_SLOTS:
        return 8;
    default:
        return 0;
    }
}

static bool answers(uint32_t req, uint32_t flags)
{
    switch (req) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_QUEUE_NUM:
    case VHOST_USER_GET_MAX_MEM_SLOTS:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_GET_CONFIG:
    case VHOST_USER_GET_INFLIGHT_FD:
    case VHOST_USER_GET_STATUS:
        return true;
    default:
        return flags & VHOST_USER_NEED_REPLY_MASK;
    }
}

static void *backend_thread(void *opaque)
{
    VhostUserMsg m;
    for (;;) {
        int fds[VHOST_USER_MAX_FDS];
        unsigned nfds = 0;
        if (!full_read(be.sock, &m.hdr, sizeof(m.hdr), fds, &nfds) ||
            m.hdr.size > sizeof(m.payload) ||
            !full_read(be.sock, &m.payload, m.hdr.size, fds, &nfds)) {
            for (unsigned i = 0; i < nfds; i++) {
                close(fds[i]);
            }
            break;
        }
        for (unsigned i = 0; i < nfds; i++) {
            if (m.hdr.request == VHOST_USER_SET_BACKEND_REQ_FD && i == 0) {
                pthread_mutex_lock(&be.lock);
                if (be.chan >= 0) {
                    close(be.chan);
                }
                be.chan = fds[i];
                pthread_mutex_unlock(&be.lock);
            } else {
                close(fds[i]);
            }
        }
        uint32_t req = m.hdr.request;
        unsigned action = script8();
        uint64_t value = (action & 8) ? script64() : default_u64(req);
        if ((action & 7) == 4) {
            shutdown(be.sock, SHUT_RDWR);   /* hang up (closed by the main thread) */
            break;
        }
        if (!answers(req, m.hdr.flags) && (action & 7) != 6) {
            continue;
        }
        VhostUserMsg r = { .hdr = { .request = req,
                                    .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
                                    .size = sizeof(uint64_t) } };
        r.payload.u64 = value;
        int fd = -1;
        if (req == VHOST_USER_GET_VRING_BASE) {
            r.payload.state.index = m.payload.state.index;
            r.payload.state.num = (uint32_t)value;
        } else if (req == VHOST_USER_GET_CONFIG && m.hdr.size >= VHOST_USER_CONFIG_HDR_SIZE) {
            r.hdr.size = m.hdr.size;
            r.payload.config = m.payload.config;
            memset(r.payload.config.region, (int)(value & 0xff), sizeof(r.payload.config.region));
        } else if (req == VHOST_USER_GET_INFLIGHT_FD) {
            r.hdr.size = sizeof(VhostUserInflight);
            r.payload.inflight = m.payload.inflight;
            r.payload.inflight.mmap_size = (action & 8) ? value : 4096;
            r.payload.inflight.mmap_offset = 0;
            if ((action & 7) == 7) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) == 0) {
                    close(p[1]);
                    fd = p[0];
                }
            } else {
                fd = memfd_create("fuzz-inflight", MFD_CLOEXEC);
                if (fd >= 0 && ftruncate(fd, 4096) < 0) {
                    close(fd);
                    fd = -1;
                }
            }
        }
        switch (action & 7) {
        case 1:
            r.hdr.request = req + 1 + (uint32_t)(value & 0xff);
            break;
        case 2:
            r.hdr.flags = (uint32_t)(value & 0xff) & ~VHOST_USER_REPLY_MASK;
            break;
        case 3:
            r.hdr.size = script8();
            break;
        case 5:
            if (fd < 0) {
                fd = eventfd(0, EFD_CLOEXEC);
            }
            break;
        default:
            break;
        }
        size_t len = sizeof(r.hdr) + (r.hdr.size <= sizeof(r.payload) ? r.hdr.size : 0);
        send_with_fd(be.sock, &r, len, fd);
        if (fd >= 0) {
            close(fd);
        }
        if ((action & 7) == 6) {
            /* more than was asked: an unsolicited message */
            send_with_fd(be.sock, &r, sizeof(r.hdr) + 8, -1);
        }
    }
    return NULL;
}

typedef struct Input {
    const uint8_t *data;
    size_t size, pos;
} Input;

static unsigned get8(Input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static void chan_message(Input *in)
{
    VhostUserMsg m;
    memset(&m, 0, sizeof(m));
    m.hdr.request = get8(in) % 8;
    m.hdr.flags = get8(in);
    unsigned size = get8(in);
    size |= get8(in) << 8;
    m.hdr.size = size;
    unsigned n = size > sizeof(m.payload) ? 0 : size;
    n = n > in->size - in->pos ? (unsigned)(in->size - in->pos) : n;
    memcpy(&m.payload, in->data + in->pos, n);
    in->pos += n;
    pthread_mutex_lock(&be.lock);
    int chan = be.chan >= 0 ? dup(be.chan) : -1;
    pthread_mutex_unlock(&be.lock);
    if (chan < 0) {
        return;
    }
    if (send(chan, &m, sizeof(m.hdr) + n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the channel is closed or full */
    }
    fuzz_loop_pump(16);
    uint8_t drain[512];
    while (recv(chan, drain, sizeof(drain), MSG_DONTWAIT) > 0) {
        /* vireo's acks */
    }
    close(chan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned before = open_fds();
    if (size < 3) {
        return 0;
    }
    size_t slen = data[1] | data[2] << 8;
    slen = slen > size - 3 ? size - 3 : slen;
    Input in = { data, size, 3 + slen };
    be.script = data + 3;
    be.len = slen;
    be.pos = 0;
    /* One chardev for every input (vireo never removes one): it connects
     * again once the last frontend took its connection, as its reconnect=N
     * would, and the back-end accepts before the frontend starts talking. */
    Error *err = NULL;
    if (!chr->conns) {
        int fd = chardev_socket_connect(chr, &err);
        if (fd < 0) {
            fail(error_get_pretty(err));
        }
        chardev_conn_new(chr, fd, fd, true, true);
    }
    be.sock = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (be.sock < 0) {
        fail("accept");
    }
    pthread_t th;
    if (pthread_create(&th, NULL, backend_thread, NULL) != 0) {
        fail("pthread_create");
    }
    static const unsigned feature_bits[] = { 28, 29, 1, 2, 6, 9, UINT32_MAX };
    VhostUserSetup setup = {
        .name = "vhost-user-blk", .vq_index = 0, .nvqs = NVQS,
        .units = data[0] & 4 ? 2 : 1,
        .want_config = data[0] & 1, .want_inflight = data[0] & 2,
        .feature_bits = feature_bits,
        .config_change = data[0] & 8 ? config_changed : NULL,
    };
    vdev.status = 0;
    vdev.broken = false;
    VhostUserDev *dev = vhost_user_connect(chr, &vdev, &setup, &err);
    if (!dev) {
        if (getenv("FUZZ_VERBOSE")) {
            fprintf(stderr, "connect: %s\n", error_get_pretty(err));
        }
        error_free(err);
        err = NULL;
    }
    for (unsigned ops = 0; dev && in.pos < in.size && ops < 64; ops++) {
        unsigned op = get8(&in);
        uint8_t buf[256];
        unsigned a, b;
        switch (op & 7) {
        case 0:
            vdev.guest_features = vhost_user_mask_features(dev, vdev.host_features);
            vdev.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                          VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
            vhost_user_set_status(dev);
            break;
        case 1:
            vdev.status = 0;
            vhost_user_set_status(dev);
            vhost_user_reset(dev);
            vdev.broken = false;
            break;
        case 2:
            if (!vhost_user_get_config(dev, buf, get8(&in) % 65, &err)) {
                error_free(err);
                err = NULL;
            }
            break;
        case 3:
            a = get8(&in) % 64;
            b = get8(&in) % 17;
            memset(buf, 0x5a, b);
            if (!vhost_user_set_config(dev, buf, a, b, &err)) {
                error_free(err);
                err = NULL;
            }
            break;
        case 4:
            a = get8(&in);
            vhost_user_enable_queue(dev, a % NVQS, a & 0x80);
            vhost_user_kick(dev, a % NVQS);
            break;
        case 5:
            chan_message(&in);
            break;
        case 6:
            fuzz_loop_pump(16);
            (void)vhost_user_max_queues(dev);
            break;
        default:
            vdev.status = (uint8_t)get8(&in);
            vhost_user_set_status(dev);
            break;
        }
    }
    fuzz_loop_pump(16);
    if (dev) {
        vdev.status = 0;
        vhost_user_set_status(dev);
        vhost_user_free(dev);
    }
    fuzz_loop_pump(16);
    shutdown(be.sock, SHUT_RDWR);   /* the back-end thread ends at its next read */
    pthread_join(th, NULL);
    close(be.sock);
    pthread_mutex_lock(&be.lock);
    if (be.chan >= 0) {
        close(be.chan);
        be.chan = -1;
    }
    pthread_mutex_unlock(&be.lock);
    /* More open than when the input began is a leak (a connection of the
     * input before may still be closing when this one begins, so fewer is
     * no proof). */
    unsigned after = open_fds();
    if (after > before) {
        fprintf(stderr, "%s: %u descriptors open after the input, %u before\n", __FILE__,
                after, before);
        fail("descriptor leak");
    }
    return 0;
}
