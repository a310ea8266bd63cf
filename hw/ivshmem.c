/*
 * ivshmem-plain and ivshmem-doorbell. See hw/ivshmem.h.
 *
 * The doorbell flavour is a client of an ivshmem server (the protocol is
 * one-way: 8-byte little-endian signed numbers, some with one descriptor):
 *   version 0; our ID; -1 with the shared memory    read at creation, so
 *                                                  BAR2 has its size
 *   PEER + eventfd, once per vector               a peer we may interrupt
 *   OUR-ID + eventfd, once per vector             our own interrupt vectors
 *   PEER without descriptor                       that peer left
 * Everything the server sends is checked; a violation closes the connection
 * with a message on stderr, and the guest keeps what it had.
 *
 * Doorbell writes signal a peer's eventfd: on KVM the kernel does it
 * (KVM_IOEVENTFD with datamatch per peer and vector), otherwise the
 * register's write handler does. Our own eventfds raise MSI-X vectors
 * through hw/pci.c (an irqfd on KVM).
 */
#include "hw/ivshmem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chardev/chardev.h"
#include "core/qdev.h"
#include "memory/host-backend.h"
#include "util/keyval.h"
#include "util/osdep.h"

#define IVSHMEM_VENDOR_ID       0x1af4
#define IVSHMEM_DEVICE_ID       0x1110
#define IVSHMEM_REVISION        1
#define IVSHMEM_CLASS_RAM       0x050000    /* memory controller, RAM */
#define IVSHMEM_SUBSYS_ID       0x1100      /* QEMU's default subsystem */

#define REG_BAR                 0
#define MSIX_BAR                1
#define SHM_BAR                 2
#define REG_BAR_SIZE            256
#define REG_INTR_MASK           0
#define REG_INTR_STATUS         4
#define REG_IV_POSITION         8
#define REG_DOORBELL            12

#define PROTOCOL_VERSION        0
#define MAX_PEER_ID             65535       /* the Doorbell has 16 bits for it */
#define MAX_VECTORS             2048        /* what MSI-X can describe */
#define SETUP_TIMEOUT_MS        10000       /* a silent server must not hang start-up */

typedef struct IvshmemPeer {
    int *fds;               /* eventfds, one per vector in order; capacity: vectors */
    unsigned nr_fds;
} IvshmemPeer;

typedef struct Ivshmem {
    char *type;             /* "ivshmem-plain" or "ivshmem-doorbell" */
    bool doorbell;
    PciDevice *pci;
    Device *qdev;
    unsigned vectors;       /* MSI-X vectors (doorbell) */
    bool ioeventfd;         /* doorbells completed by the kernel when possible */
    char *master;           /* on/off/auto, as given */
    /* shared memory */
    HostMemBackend *backend;    /* plain: the memdev */
    uint8_t *shm;           /* host mapping behind BAR2 */
    uint64_t shm_size;
    int shm_fd;             /* doorbell: from the server, mapped by us; else -1 */
    /* registers */
    uint32_t intr_mask, intr_status;
    int64_t vm_id;          /* IVPosition: our ID from the server (plain: 0) */
    /* server connection (doorbell) */
    Chardev *chr;
    ChardevConn *conn;      /* NULL once closed */
    bool broken;            /* the server violated the protocol: ignore it */
    uint8_t msg[8];         /* a message being assembled */
    unsigned msg_len;
    int msg_fd;             /* the descriptor that came with it, or -1 */
    IvshmemPeer *peers;     /* indexed by ID, nr_peers entries */
    unsigned nr_peers;
    uint64_t doorbell_at;   /* guest address the ioeventfds are bound to */
    struct Ivshmem *next;
} Ivshmem;

static Ivshmem *devices;

/* ---- doorbells: peers' eventfds ---- */

static uint64_t doorbell_value(unsigned peer, unsigned vector)
{
    return (uint64_t)peer << 16 | vector;
}

static void bind_doorbell(Ivshmem *s, unsigned peer, unsigned vector, bool on)
{
    if (s->doorbell_at == PCI_BAR_UNMAPPED || !s->ioeventfd) {
        return;
    }
    int fd = s->peers[peer].fds[vector];
    uint64_t addr = s->doorbell_at + REG_DOORBELL;
    if (on) {
        /* On refusal the write handler below signals the eventfd instead. */
        io_eventfd_add_match(AS_MMIO, addr, 4, fd, doorbell_value(peer, vector));
    } else {
        io_eventfd_del_match(AS_MMIO, addr, 4, fd, doorbell_value(peer, vector));
    }
}

static void bind_all_doorbells(Ivshmem *s, bool on)
{
    for (unsigned p = 0; p < s->nr_peers; p++) {
        for (unsigned v = 0; (int64_t)p != s->vm_id && v < s->peers[p].nr_fds; v++) {
            bind_doorbell(s, p, v, on);
        }
    }
}

/* Follow BAR0 wherever the guest maps it (and away when it unmaps it). */
static void config_written(PciDevice *pci, void *opaque, unsigned offset, unsigned size)
{
    Ivshmem *s = opaque;
    uint64_t now = pci_bar_address(pci, REG_BAR);
    if (!s->doorbell || now == s->doorbell_at) {
        return;
    }
    bind_all_doorbells(s, false);
    s->doorbell_at = now;
    bind_all_doorbells(s, true);
}

static void ring_doorbell(Ivshmem *s, uint32_t value)
{
    unsigned peer = value >> 16, vector = value & 0xffff;
    if (peer >= s->nr_peers || vector >= s->peers[peer].nr_fds) {
        return;     /* unknown peer or vector: ignored, as the spec says */
    }
    uint64_t one = 1;
    if (write(s->peers[peer].fds[vector], &one, sizeof(one)) != sizeof(one)) {
        /* The counter is full or the peer's eventfd is gone: nothing to do. */
    }
}

/* ---- BAR0 registers ---- */

static uint32_t reg_read32(Ivshmem *s, unsigned reg)
{
    switch (reg) {
    case REG_INTR_MASK:
        return s->intr_mask;
    case REG_INTR_STATUS: {
        uint32_t v = s->intr_status;
        s->intr_status = 0;     /* reading clears it (revision 0 semantics, kept) */
        return v;
    }
    case REG_IV_POSITION:
        return (uint32_t)s->vm_id;
    default:
        return 0;               /* Doorbell is write-only; the rest is reserved */
    }
}

static uint64_t regs_read(void *opaque, uint64_t off, unsigned size)
{
    Ivshmem *s = opaque;
    /* Narrow and wide reads see the registers as one little-endian array. */
    uint64_t val = 0;
    for (unsigned i = 0; i < size; i += 4) {
        unsigned reg = (off + i) & ~3u;
        uint64_t word = reg_read32(s, reg);
        unsigned shift = (off + i) & 3;
        val |= (word >> (shift * 8)) << (i * 8);
    }
    return size >= 8 ? val : val & ((1ULL << (size * 8)) - 1);
}

static void regs_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    Ivshmem *s = opaque;
    if (size != 4 || (off & 3)) {
        return;     /* the registers are 32 bits wide: other writes are dropped */
    }
    switch (off) {
    case REG_INTR_MASK:
        s->intr_mask = value;
        break;
    case REG_INTR_STATUS:
        s->intr_status = value;
        break;
    case REG_DOORBELL:
        if (s->doorbell) {
            ring_doorbell(s, value);
        }
        break;
    default:
        break;      /* IVPosition is read-only, the rest reserved */
    }
}

static const IoOps regs_ops = { .read = regs_read, .write = regs_write };

static void device_reset(PciDevice *pci, void *opaque)
{
    Ivshmem *s = opaque;
    s->intr_mask = 0;
    s->intr_status = 0;     /* IVPosition keeps the ID the server gave */
    config_written(pci, s, 0, 0);   /* the reset unmapped BAR0: unbind its doorbells */
}

/* ---- the server connection ---- */

static void protocol_violation(Ivshmem *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void protocol_violation(Ivshmem *s, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    error_report("%s '%s': %s; closing the connection to the ivshmem server",
                 s->type, s->qdev->id ? s->qdev->id : s->qdev->path, why);
    s->broken = true;
    if (s->conn) {
        chardev_conn_close(s->conn);
    }
}

/* Take the descriptors that came with the bytes just read; more than one is an error. */
static int take_one_fd(Ivshmem *s, bool *extra)
{
    int fd = chardev_conn_take_fd(s->conn), more;
    *extra = false;
    while ((more = chardev_conn_take_fd(s->conn)) >= 0) {
        close(more);
        *extra = true;
    }
    return fd;
}

/* Only eventfds may become doorbells or interrupts: a pipe or socket could block us. */
static bool is_eventfd(int fd)
{
    char path[64], target[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        return false;
    }
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static bool grow_peers(Ivshmem *s, unsigned id)
{
    if (id < s->nr_peers) {
        return true;
    }
    IvshmemPeer *p = realloc(s->peers, (size_t)(id + 1) * sizeof(*p));
    if (!p) {
        return false;
    }
    memset(p + s->nr_peers, 0, (size_t)(id + 1 - s->nr_peers) * sizeof(*p));
    s->peers = p;
    s->nr_peers = id + 1;
    return true;
}

static void peer_close(Ivshmem *s, unsigned id)
{
    IvshmemPeer *p = &s->peers[id];
    for (unsigned v = 0; v < p->nr_fds; v++) {
        if ((int64_t)id == s->vm_id) {
            pci_msix_set_eventfd(s->pci, v, -1, NULL);
        } else {
            bind_doorbell(s, id, v, false);
        }
        close(p->fds[v]);
    }
    free(p->fds);
    p->fds = NULL;
    p->nr_fds = 0;
}

/* A connect notification (or, for our own ID, an interrupt vector). */
static void peer_add_fd(Ivshmem *s, unsigned id, int fd)
{
    if (!grow_peers(s, id)) {
        close(fd);
        protocol_violation(s, "out of memory for peer %u", id);
        return;
    }
    IvshmemPeer *p = &s->peers[id];
    if (p->nr_fds >= s->vectors) {
        close(fd);      /* more vectors than we were configured for: not needed */
        return;
    }
    if (!p->fds) {
        p->fds = xzalloc(s->vectors * sizeof(int));
    }
    unsigned v = p->nr_fds++;
    p->fds[v] = fd;
    if ((int64_t)id == s->vm_id) {
        pci_msix_set_eventfd(s->pci, v, fd, NULL);
    } else {
        bind_doorbell(s, id, v, true);
    }
}

static void handle_message(Ivshmem *s, int64_t msg, int fd)
{
    if (msg < -1 || msg > MAX_PEER_ID) {
        protocol_violation(s, "server sent invalid message %" PRId64, msg);
    } else if (msg == -1) {
        protocol_violation(s, "server sent unexpected shared memory message");
    } else if (fd < 0 && msg == s->vm_id) {
        protocol_violation(s, "server sent a disconnect notification for our own ID %" PRId64,
                           msg);
    } else if (fd < 0) {
        if ((uint64_t)msg < s->nr_peers) {
            peer_close(s, (unsigned)msg);       /* that peer left */
        }
    } else if (!is_eventfd(fd)) {
        protocol_violation(s, "server sent a descriptor that is not an eventfd for peer %"
                           PRId64, msg);
    } else {
        peer_add_fd(s, (unsigned)msg, fd);
        return;
    }
    if (fd >= 0) {
        close(fd);
    }
}

/*
 * A socket read stops right after the data that carried descriptors, so
 * the descriptors of one read belong to the message holding its last byte.
 */
static void server_read(void *session, const uint8_t *buf, size_t len)
{
    Ivshmem *s = session;
    if (s->broken || !s->conn) {
        return;
    }
    bool extra;
    int fd = take_one_fd(s, &extra);
    if (extra || (fd >= 0 && s->msg_fd >= 0 && s->msg_len + len <= sizeof(s->msg))) {
        if (fd >= 0) {
            close(fd);
        }
        protocol_violation(s, "server sent several descriptors with one message");
        return;
    }
    for (size_t i = 0; i < len && !s->broken; i++) {
        s->msg[s->msg_len++] = buf[i];
        if (i == len - 1 && fd >= 0) {
            s->msg_fd = fd;     /* the message holding the last byte owns it */
            fd = -1;
        }
        if (s->msg_len == sizeof(s->msg)) {
            uint64_t le;
            memcpy(&le, s->msg, sizeof(le));
            int msg_fd = s->msg_fd;
            s->msg_len = 0;
            s->msg_fd = -1;
            handle_message(s, (int64_t)le64toh(le), msg_fd);
        }
    }
    if (fd >= 0) {
        close(fd);      /* the loop stopped at a violation */
    }
}

static void *server_open(void *fe_opaque, ChardevConn *conn)
{
    Ivshmem *s = fe_opaque;
    if (!s->conn) {
        s->conn = conn;
    }
    return s;
}

/* The server went away: peers stay usable, as the spec allows. */
static void server_close(void *session)
{
    Ivshmem *s = session;
    s->conn = NULL;
    if (s->msg_fd >= 0) {
        close(s->msg_fd);
        s->msg_fd = -1;
    }
}

static const ChardevSessionHandlers server_handlers = {
    .open = server_open, .read = server_read, .close = server_close,
};

/* One set-up message, read before the main loop runs; fd gets its descriptor or -1. */
static bool recv_setup(Ivshmem *s, int64_t *msg, int *fd, const char *what, Error **errp)
{
    uint64_t le;
    if (!s->conn || !chardev_conn_read_sync(s->conn, &le, sizeof(le), SETUP_TIMEOUT_MS, errp)) {
        error_prepend(errp, "server sent invalid %s message: ", what);
        return false;
    }
    bool extra;
    *fd = take_one_fd(s, &extra);
    *msg = (int64_t)le64toh(le);
    if (extra) {
        if (*fd >= 0) {
            close(*fd);     /* the others went already; nobody takes this one */
            *fd = -1;
        }
        error_setg(errp, "server sent several descriptors with the %s message", what);
        return false;
    }
    return true;
}

static bool recv_version_and_id(Ivshmem *s, Error **errp)
{
    int64_t msg;
    int fd;
    if (!recv_setup(s, &msg, &fd, "version", errp)) {
        return false;
    }
    if (fd >= 0) {
        close(fd);
        error_setg(errp, "server sent invalid version message");
        return false;
    }
    if (msg != PROTOCOL_VERSION) {
        error_setg(errp, "server sent version %" PRId64 ", expecting %d", msg, PROTOCOL_VERSION);
        return false;
    }
    if (!recv_setup(s, &msg, &fd, "ID", errp)) {
        return false;
    }
    if (fd >= 0 || msg < 0 || msg > MAX_PEER_ID) {
        if (fd >= 0) {
            close(fd);
        }
        error_setg(errp, "server sent invalid ID message");
        return false;
    }
    s->vm_id = msg;
    return true;
}

static bool recv_shared_memory(Ivshmem *s, Error **errp)
{
    int64_t msg;
    int fd;
    struct stat st;
    if (!recv_setup(s, &msg, &fd, "shared memory", errp)) {
        return false;
    }
    if (msg != -1 || fd < 0) {
        if (fd >= 0) {
            close(fd);
        }
        error_setg(errp, "server sent invalid shared memory message");
        return false;
    }
    s->shm_fd = fd;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        error_setg(errp, "can't determine size of shared memory sent by server");
        return false;
    }
    s->shm_size = (uint64_t)st.st_size;
    void *p = mmap(NULL, s->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "can't map shared memory sent by server");
        return false;
    }
    s->shm = p;
    return true;
}

static bool connect_server(Ivshmem *s, const char *chardev_id, Error **errp)
{
    s->chr = chardev_find(chardev_id);
    if (!s->chr) {
        error_setg(errp, "Property '%s.chardev' can't find value '%s'", s->type, chardev_id);
        return false;
    }
    if (!chardev_attach_sessions(s->chr, &server_handlers, s, errp)) {
        s->chr = NULL;
        return false;
    }
    if (!s->conn) {
        error_setg(errp, "chardev '%s' is not connected to an ivshmem server", chardev_id);
        return false;
    }
    return recv_version_and_id(s, errp) && recv_shared_memory(s, errp);
}

/* ---- creation ---- */

static const OptParam ivshmem_params[] = {
    { "driver", OPT_STRING, "ivshmem-plain or ivshmem-doorbell" },
    { "id", OPT_STRING, "device id" },
    { "bus", OPT_STRING, "PCI bus (pci.0)" },
    { "addr", OPT_STRING, "PCI slot[.function]" },
    { "memdev", OPT_STRING, "memory backend (ivshmem-plain)" },
    { "chardev", OPT_STRING, "ID of a chardev to use as a backend (ivshmem-doorbell)" },
    { "vectors", OPT_NUMBER, "MSI-X vectors (ivshmem-doorbell)", "1" },
    { "ioeventfd", OPT_BOOL, "doorbells in the kernel (ivshmem-doorbell)", "on" },
    { "master", OPT_STRING, "on/off/auto", "off" },
    { "romfile", OPT_STRING, "accepted, no option ROM" },
    { "rombar", OPT_NUMBER, "accepted, no option ROM" },
    { "multifunction", OPT_BOOL, "accepted", "off" },
    { NULL },
};

static bool parse_slot(const char *type, const char *addr, int *slot, Error **errp)
{
    *slot = -1;
    if (!addr) {
        return true;
    }
    char *end;
    unsigned long v = strtoul(addr, &end, 16);
    if (end == addr || (*end && strcmp(end, ".0") != 0) || v >= PCI_MAX_SLOTS) {
        error_setg(errp, "Property '%s.addr' doesn't take value '%s'", type, addr);
        return false;
    }
    *slot = (int)v;
    return true;
}

static bool check_common(Ivshmem *s, const KeyValList *kv, Error **errp)
{
    const char *bus = keyval_get(kv, "bus");
    if (bus && strcmp(bus, "pci.0") != 0) {
        error_setg(errp, "Bus '%s' not found", bus);
        return false;
    }
    const char *master = keyval_get(kv, "master");
    if (master && strcmp(master, "on") && strcmp(master, "off") && strcmp(master, "auto")) {
        error_setg(errp, "Parameter 'master' does not accept value '%s'", master);
        return false;
    }
    s->master = xstrdup(master ? master : "off");
    return true;
}

static bool check_shm_size(Ivshmem *s, const char *what, Error **errp)
{
    if (s->shm_size & (s->shm_size - 1) || s->shm_size < 16) {
        error_setg(errp, "%s size 0x%" PRIx64 " is not a power of two of at least 16 bytes, "
                   "as a PCI BAR must be", what, s->shm_size);
        return false;
    }
    return true;
}

static bool setup_plain(Ivshmem *s, const KeyValList *kv, Error **errp)
{
    const char *memdev = keyval_get(kv, "memdev");
    if (!memdev) {
        error_setg(errp, "You must specify a 'memdev'");
        return false;
    }
    HostMemBackend *b = host_backend_find(memdev);
    if (!b) {
        error_setg(errp, "Property '%s.memdev' can't find value '%s'", s->type, memdev);
        return false;
    }
    if (!host_backend_claim(b, errp)) {
        return false;
    }
    s->backend = b;
    s->shm = b->hva;
    s->shm_size = b->size;
    if (!b->share) {
        /* QEMU 7.2 says nothing; the guest would silently share nothing. */
        warn_report("%s: memdev '%s' is not shared (share=on): other processes will not "
                    "see this guest's writes", s->type, memdev);
    }
    return check_shm_size(s, "memdev", errp);
}

static bool setup_doorbell(Ivshmem *s, const KeyValList *kv, Error **errp)
{
    const char *chardev = keyval_get(kv, "chardev");
    if (!chardev) {
        error_setg(errp, "You must specify a 'chardev'");
        return false;
    }
    uint64_t vectors = keyval_get_number(kv, "vectors", 1);
    if (vectors == 0 || vectors > MAX_VECTORS) {
        error_setg(errp, "Failed to initialize interrupts: "
                   "The number of MSI-X vectors is invalid");
        return false;
    }
    s->vectors = (unsigned)vectors;
    s->ioeventfd = keyval_get_bool(kv, "ioeventfd", true);
    if (!connect_server(s, chardev, errp)) {
        return false;
    }
    if (!strcmp(s->master, "on") && s->vm_id != 0) {
        error_setg(errp, "master must connect to the server before any peers");
        return false;
    }
    return check_shm_size(s, "shared memory from the server:", errp);
}

static void print_props(void *opaque, StrBuf *out, int indent)
{
    Ivshmem *s = opaque;
    if (s->doorbell) {
        strbuf_printf(out, "%*svectors = %u (0x%x)\n", indent, "", s->vectors, s->vectors);
        strbuf_printf(out, "%*sioeventfd = %s\n", indent, "", s->ioeventfd ? "true" : "false");
        strbuf_printf(out, "%*schardev = \"%s\"\n", indent, "", chardev_id(s->chr));
    } else {
        strbuf_printf(out, "%*smemdev = \"/objects/%s\"\n", indent, "", s->backend->id);
    }
    strbuf_printf(out, "%*smaster = \"%s\"\n", indent, "", s->master);
    strbuf_printf(out, "%*saddr = %02x.0\n", indent, "", pci_device_slot(s->pci));
    strbuf_printf(out, "%*sclass RAM controller, addr 00:%02x.0, pci id %04x:%04x "
                  "(sub %04x:%04x)\n", indent, "", pci_device_slot(s->pci), IVSHMEM_VENDOR_ID,
                  IVSHMEM_DEVICE_ID, IVSHMEM_VENDOR_ID, IVSHMEM_SUBSYS_ID);
}

static const DeviceOps ivshmem_qdev_ops = { .print_props = print_props };

static bool add_pci_function(Ivshmem *s, PciHost *host, int slot, Error **errp)
{
    PciDeviceInfo info = {
        .name = s->type, .vendor_id = IVSHMEM_VENDOR_ID, .device_id = IVSHMEM_DEVICE_ID,
        .subsystem_vendor_id = IVSHMEM_VENDOR_ID, .subsystem_id = IVSHMEM_SUBSYS_ID,
        .class_code = IVSHMEM_CLASS_RAM, .revision = IVSHMEM_REVISION,
        .reset = device_reset, .config_written = config_written,
    };
    s->pci = pci_device_add(host, slot, &info, s, errp);
    if (!s->pci ||
        !pci_bar_register(s->pci, REG_BAR, PCI_BAR_MEM32, false, REG_BAR_SIZE, &regs_ops, s,
                          errp)) {
        return false;
    }
    if (s->doorbell && !pci_msix_init(s->pci, s->vectors, MSIX_BAR, errp)) {
        return false;
    }
    return pci_bar_register_ram(s->pci, SHM_BAR, true, s->shm_size, s->shm, errp);
}

static void destroy(Ivshmem *s)
{
    for (unsigned p = 0; p < s->nr_peers; p++) {
        peer_close(s, p);
    }
    free(s->peers);
    pci_device_remove(s->pci);
    if (s->chr) {
        chardev_detach(s->chr);
    }
    if (s->conn) {
        chardev_conn_close(s->conn);
    }
    if (s->msg_fd >= 0) {
        close(s->msg_fd);
    }
    if (s->shm_fd >= 0) {
        if (s->shm) {
            munmap(s->shm, s->shm_size);
        }
        close(s->shm_fd);
    }
    host_backend_release(s->backend);
    if (s->qdev) {
        qdev_remove(s->qdev);
    }
    free(s->master);
    free(s->type);
    free(s);
}

static bool realize(Ivshmem *s, const KeyValList *kv, PciHost *host, Error **errp)
{
    int slot;
    if (!check_common(s, kv, errp) || !parse_slot(s->type, keyval_get(kv, "addr"), &slot, errp)) {
        return false;
    }
    if (!(s->doorbell ? setup_doorbell(s, kv, errp) : setup_plain(s, kv, errp))) {
        return false;
    }
    s->qdev = qdev_add(s->type, keyval_get(kv, "id"), "pci.0", DEVICE_USER, &ivshmem_qdev_ops,
                       s, errp);
    return s->qdev && add_pci_function(s, host, slot, errp);
}

bool ivshmem_create(const char *opts, PciHost *host, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "driver", ivshmem_params, &kv, errp)) {
        return false;
    }
    const char *driver = keyval_get(&kv, "driver");
    Ivshmem *s = xzalloc(sizeof(*s));
    s->type = xstrdup(driver ? driver : "");
    s->doorbell = !strcmp(s->type, "ivshmem-doorbell");
    s->shm_fd = s->msg_fd = -1;
    s->doorbell_at = PCI_BAR_UNMAPPED;
    bool ok = realize(s, &kv, host, errp);
    keyval_free(&kv);
    if (!ok) {
        destroy(s);
        return false;
    }
    s->next = devices;
    devices = s;
    return true;
}

void ivshmem_destroy_all(void)
{
    while (devices) {
        Ivshmem *s = devices;
        devices = s->next;
        destroy(s);
    }
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *ivshmem_params_table(void);
const OptParam *ivshmem_params_table(void)
{
    return ivshmem_params;
}
