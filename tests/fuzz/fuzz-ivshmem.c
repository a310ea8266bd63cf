/*
 * libFuzzer target for ivshmem-doorbell (hw/ivshmem.c): what an ivshmem
 * server sends its client, and what a guest does to the device's BARs.
 * Each input creates the device on the real PCI host bridge with a UNIX
 * socket chardev connected to the harness, which is the server: the set-up
 * messages (version, ID, shared memory) are read while the device is
 * created; after that, peer notifications with and without descriptors
 * arrive through the chardev's connection, read by vireo's chardev code in
 * the harness's main-loop pass (fuzz-loop.h), mixed with guest accesses to
 * BAR0 (interrupt mask and status, IVPosition, doorbell), the MSI-X table
 * in BAR1, the shared memory in BAR2 and configuration space (moving BAR0
 * moves the doorbells). The device is destroyed at the end of every
 * input; the chardev stays and connects again for the next one.
 *
 * Input: byte 0: vectors (1 + (b & 3)), bit 2 ioeventfd=off, bit 3
 * master=on; then the three set-up messages, each a message as below;
 * then operations, an opcode byte (low 3 bits):
 *   0 a server message: kind byte (bits 0-2 the descriptor: none, eventfd,
 *     memfd, pipe, two eventfds, /dev/null, empty memfd; bit 3 an 8-byte
 *     value follows, else one signed byte; bit 4 the message arrives in
 *     two pieces; bit 5: no main-loop pass after it)
 *   1 BAR0 read: offset byte, size byte
 *   2 BAR0 write: offset byte, size byte, u32
 *   3 MSI-X table write: u16 offset, u32
 *   4 configuration space write: offset byte, size byte, u32 (the BAR
 *     registers of BAR0 and BAR1 excepted, so accesses keep their target)
 *   5 a harness-held eventfd is signalled (index byte), then a main-loop pass
 *   6 the server hangs up
 *   7 BAR2 (shared memory) read and write at a u16 offset
 *
 * Checks besides the sanitizers: no descriptor leaks (the process has no
 * more open after an input than before it; a well-formed input at start-up
 * opens what stays open), and the device either is created or fails with
 * an error, never hangs (a set-up message always arrives whole).
 */
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
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
#include "hw/irq.h"
#include "hw/ivshmem.h"
#include "hw/pci.h"
#include "memory/address-space.h"
#include "fuzz-loop.h"
#include "fuzz-pci-dev.h"

#define BAR0_AT     0xfe000000u
#define BAR1_AT     0xfe001000u
#define BAR2_AT     0x800000000ull      /* 64-bit */
#define MAX_HELD    64

static PciHost *host;
static Chardev *chr;
static char listen_path[108];
static int listen_fd = -1;
static int srv = -1;
static bool created;        /* the device exists: its chardev reads in main-loop passes */
static int held[MAX_HELD];
static unsigned nr_held;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-ivshmem: %s\n", what);
    abort();
}

static void set_level(void *opaque, unsigned gsi, bool level)
{
}

static void send_msi(void *opaque, uint64_t addr, uint32_t data)
{
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

static void remove_socket(void)
{
    unlink(listen_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const IrqBackend irq = { .set_level = set_level, .send_msi = send_msi };
    irq_set_backend(&irq);
    host = fpd_init_bus();
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(listen_path, sizeof(listen_path), "%s/vireo-fuzz-ivshmem-%d.sock",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", listen_path);
    unlink(listen_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listen_fd, 4) < 0) {
        fail("the server's listening socket");
    }
    atexit(remove_socket);
    char opts[sizeof(listen_path) + 32];
    snprintf(opts, sizeof(opts), "socket,id=ivs,path=%s", listen_path);
    Error *err = NULL;
    if (!(chr = chardev_new_from_opts(opts, &err))) {
        fail(error_get_pretty(err));
    }
    /* One well-formed input first: what vireo opens once and keeps (lazily
     * created state) is open before the inputs whose descriptors count. */
    static const uint8_t warm_up[] = "\x00\x00\x00\x00\x01\x02\xff";
    LLVMFuzzerTestOneInput(warm_up, sizeof(warm_up) - 1);
    return 0;
}

typedef struct Input {
    const uint8_t *data;
    size_t size, pos;
} Input;

static unsigned get8(Input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static uint32_t get32(Input *in)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < 4; i++) {
        v |= get8(in) << (8 * i);
    }
    return v;
}

static void hold(int fd)
{
    if (fd >= 0 && nr_held < MAX_HELD) {
        held[nr_held++] = fd;
    } else if (fd >= 0) {
        close(fd);
    }
}

static int make_fd(unsigned kind, unsigned size_byte, int *second)
{
    int fds[2];
    *second = -1;
    switch (kind) {
    case 1:
        return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    case 2:
    case 6: {
        int fd = memfd_create("fuzz-ivshmem", MFD_CLOEXEC);
        if (fd >= 0 && kind == 2 && ftruncate(fd, 1ll << (4 + size_byte % 13)) < 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
    case 3:
        if (pipe2(fds, O_CLOEXEC) < 0) {
            return -1;
        }
        close(fds[1]);
        return fds[0];
    case 4:
        *second = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    case 5:
        return open("/dev/null", O_RDONLY | O_CLOEXEC);
    default:
        return -1;
    }
}

/* One server message from the input onto the socket. */
static void server_message(Input *in)
{
    unsigned kind = get8(in);
    int64_t value;
    if (kind & 8) {
        uint64_t v = get32(in);
        v |= (uint64_t)get32(in) << 32;
        value = (int64_t)v;
    } else {
        value = (int8_t)get8(in);
    }
    int second;
    int fd = make_fd(kind & 7, (unsigned)value, &second);
    uint64_t le = htole64((uint64_t)value);
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    memset(cbuf, 0, sizeof(cbuf));
    unsigned first_len = (kind & 16) ? 3 : 8;
    for (unsigned part = 0; part < 2; part++) {
        unsigned off = part ? first_len : 0;
        unsigned len = part ? 8 - first_len : first_len;
        if (!len) {
            break;
        }
        struct iovec iov = { (uint8_t *)&le + off, len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        int nfd = part == 0 ? (fd >= 0) + (second >= 0) : 0;
        if (nfd) {
            mh.msg_control = cbuf;
            mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(nfd * sizeof(int));
            int both[2] = { fd >= 0 ? fd : second, second };
            memcpy(CMSG_DATA(c), both, nfd * sizeof(int));
        }
        if (sendmsg(srv, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            break;
        }
        if (part == 0 && (kind & 16) && !(kind & 32) && created) {
            fuzz_loop_pump(16);     /* (set-up messages are read by the device itself) */
        }
    }
    hold(fd);       /* the harness keeps its copies: signals to send, then closed */
    hold(second);
}

static void cfg_write(unsigned slot, unsigned off, unsigned size, uint32_t val)
{
    fpd_cfg_write(slot, off, size, val);
}

static int find_slot(void)
{
    for (unsigned s = 1; s < 32; s++) {
        if (fpd_cfg_read(s, 0, 4) == (0x1110u << 16 | 0x1af4u)) {
            return (int)s;
        }
    }
    return -1;
}

static void map_bars(unsigned slot)
{
    cfg_write(slot, PCI_BASE_ADDRESS_0, 4, BAR0_AT);
    cfg_write(slot, PCI_BASE_ADDRESS_0 + 4, 4, BAR1_AT);
    cfg_write(slot, PCI_BASE_ADDRESS_0 + 8, 4, (uint32_t)BAR2_AT);
    cfg_write(slot, PCI_BASE_ADDRESS_0 + 12, 4, (uint32_t)(BAR2_AT >> 32));
    cfg_write(slot, PCI_COMMAND, 2, 0x6 /* memory, bus master */);
    /* MSI-X on: the capability list has it, and its control word follows the ID. */
    unsigned cap = fpd_cfg_read(slot, PCI_CAPABILITY_LIST, 1);
    for (unsigned n = 0; cap && n < 16; n++) {
        uint32_t hdr = fpd_cfg_read(slot, cap, 2);
        if ((hdr & 0xff) == PCI_CAP_ID_MSIX) {
            cfg_write(slot, cap + 2, 2, 0x8000);
            break;
        }
        cap = hdr >> 8;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned before = open_fds();
    if (size < 1) {
        return 0;
    }
    Input in = { data, size, 1 };
    /* One chardev for every input (vireo never removes one): it connects
     * again whenever the last device closed its connection, as its
     * reconnect=N timer would, and the harness takes the new one. */
    if (!chr->conns) {
        Error *cerr = NULL;
        int fd = chardev_socket_connect(chr, &cerr);
        if (fd < 0) {
            fail(error_get_pretty(cerr));
        }
        chardev_conn_new(chr, fd, fd, true, true);
    }
    srv = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (srv < 0) {
        fail("accept");
    }
    for (unsigned i = 0; i < 3; i++) {
        /* Whole messages, so creation never waits for the rest of one. */
        unsigned save = in.pos;
        server_message(&in);
        (void)save;
    }
    char opts[160];
    Error *err = NULL;
    snprintf(opts, sizeof(opts), "ivshmem-doorbell,id=iv0,chardev=ivs,vectors=%u,ioeventfd=%s,"
             "master=%s", 1 + (data[0] & 3), data[0] & 4 ? "off" : "on",
             data[0] & 8 ? "on" : "off");
    created = ivshmem_create(opts, host, &err);
    if (!created) {
        error_free(err);
    }
    int slot = created ? find_slot() : -1;
    if (created && slot < 0) {
        fail("ivshmem created but not on the bus");
    }
    if (slot >= 0) {
        map_bars((unsigned)slot);
    }
    fuzz_loop_pump(16);
    for (unsigned ops = 0; slot >= 0 && in.pos < in.size && ops < 256; ops++) {
        unsigned op = get8(&in);
        unsigned off, sz;
        uint32_t v;
        uint64_t r;
        switch (op & 7) {
        case 0: {
            unsigned kind_at = in.pos;
            server_message(&in);
            if (kind_at >= in.size || !(data[kind_at] & 32)) {
                fuzz_loop_pump(16);
            }
            break;
        }
        case 1:
            off = get8(&in);
            sz = 1u << (get8(&in) & 3);
            io_dispatch_read(AS_MMIO, BAR0_AT + off, sz > 4 ? 4 : sz, &r);
            break;
        case 2:
            off = get8(&in);
            sz = 1u << (get8(&in) & 3);
            v = get32(&in);
            io_dispatch_write(AS_MMIO, BAR0_AT + off, sz > 4 ? 4 : sz, v);
            fuzz_loop_pump(4);
            break;
        case 3:
            off = get8(&in) | get8(&in) << 8;
            v = get32(&in);
            io_dispatch_write(AS_MMIO, BAR1_AT + (off & 0xfff), 4, v);
            fuzz_loop_pump(4);
            break;
        case 4:
            off = get8(&in);
            sz = 1u << (get8(&in) & 1);
            v = get32(&in);
            if (off >= PCI_BASE_ADDRESS_0 && off < PCI_BASE_ADDRESS_0 + 8) {
                break;
            }
            cfg_write((unsigned)slot, off, sz, v);
            break;
        case 5:
            if (nr_held) {
                uint64_t one = 1;
                if (write(held[get8(&in) % nr_held], &one, sizeof(one)) < 0) {
                    /* not an eventfd, or full: as a peer's failed signal */
                }
                fuzz_loop_pump(16);
            }
            break;
        case 6:
            if (srv >= 0) {
                close(srv);
                srv = -1;
                fuzz_loop_pump(16);
            }
            break;
        default:
            off = get8(&in) | get8(&in) << 8;
            io_dispatch_read(AS_MMIO, BAR2_AT + off, 4, &r);
            io_dispatch_write(AS_MMIO, BAR2_AT + off, 1, (uint8_t)r ^ 0xff);
            break;
        }
    }
    ivshmem_destroy_all();
    created = false;
    fuzz_loop_pump(16);
    if (srv >= 0) {
        close(srv);
        srv = -1;
    }
    for (unsigned i = 0; i < nr_held; i++) {
        close(held[i]);
    }
    nr_held = 0;
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
