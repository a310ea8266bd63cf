/*
 * ivshmem-peer: drives an ivshmem-doorbell device from inside a Linux guest
 * that has no ivshmem driver (Debian's kernel binds nothing to 1af4:1110).
 *
 * It uses only sysfs: the device's `enable` file, its config space (to turn
 * on memory decoding and MSI-X), `resource0` (registers), `resource1` (the
 * MSI-X table and pending-bit array) and `resource2` (the shared memory).
 * Every vector stays masked, so a peer's doorbell only sets the vector's
 * pending bit, which this program can poll; nothing reaches the guest's
 * interrupt controller, so no handler is needed.
 *
 *   ivshmem-peer id                      print IVPosition
 *   ivshmem-peer write OFFSET TEXT       copy TEXT into shared memory
 *   ivshmem-peer read OFFSET LEN         print LEN bytes of shared memory
 *   ivshmem-peer ring PEER VECTOR        write the Doorbell register
 *   ivshmem-peer wait VECTOR MS          wait until VECTOR is pending
 *
 * Built statically by the lab test and copied into the guest's initramfs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SYSFS_PCI "/sys/bus/pci/devices"
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_CAP_PTR 0x34
#define PCI_CAP_ID_MSIX 0x11
#define MSIX_ENABLE 0x8000
#define MSIX_FUNCTION_MASK 0x4000
#define MSIX_ENTRY_SIZE 16
#define MSIX_VECTOR_MASKED 1u

#define REG_IVPOSITION 8
#define REG_DOORBELL 12

typedef struct Peer {
    char dir[300];           /* the device's sysfs directory */
    volatile uint32_t *regs; /* BAR0 */
    uint8_t *msix_bar;       /* the BAR holding the table and PBA */
    size_t msix_bar_size;
    uint32_t table_offset;
    uint32_t pba_offset;
    unsigned nr_vectors;
    uint8_t *shm;            /* BAR2 */
    size_t shm_size;
} Peer;

static void die(const char *what)
{
    fprintf(stderr, "ivshmem-peer: %s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned read_hex_file(const char *dir, const char *name)
{
    char path[400], buf[32] = "";
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof(buf), f)) {
        die(path);
    }
    fclose(f);
    return (unsigned)strtoul(buf, NULL, 16);
}

static int find_device(Peer *p)
{
    DIR *d = opendir(SYSFS_PCI);
    struct dirent *e;
    if (!d) {
        die(SYSFS_PCI);
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(p->dir, sizeof(p->dir), SYSFS_PCI "/%s", e->d_name);
        if (read_hex_file(p->dir, "vendor") == 0x1af4 &&
            read_hex_file(p->dir, "device") == 0x1110) {
            closedir(d);
            return 0;
        }
    }
    closedir(d);
    return -1;
}

static int open_in(const Peer *p, const char *name, int flags)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", p->dir, name);
    int fd = open(path, flags);
    if (fd < 0) {
        die(path);
    }
    return fd;
}

static void *map_resource(const Peer *p, int bar, size_t *size)
{
    char name[16];
    struct stat st;
    snprintf(name, sizeof(name), "resource%d", bar);
    int fd = open_in(p, name, O_RDWR | O_SYNC);
    if (fstat(fd, &st) < 0) {
        die(name);
    }
    void *ptr = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ptr == MAP_FAILED) {
        die(name);
    }
    close(fd);
    *size = st.st_size;
    return ptr;
}

static void config_rw(int fd, unsigned off, void *buf, size_t len, int write)
{
    ssize_t n = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
    if (n != (ssize_t)len) {
        die("config space");
    }
}

/* Turn on memory decoding and MSI-X with every vector masked. */
static void setup_config(Peer *p)
{
    int fd = open_in(p, "config", O_RDWR);
    uint16_t cmd, ctrl;
    uint8_t cap, id;
    uint32_t table, pba;

    config_rw(fd, PCI_COMMAND, &cmd, 2, 0);
    cmd |= PCI_COMMAND_MEMORY;
    config_rw(fd, PCI_COMMAND, &cmd, 2, 1);

    config_rw(fd, PCI_CAP_PTR, &cap, 1, 0);
    for (int guard = 0; cap && guard < 48; guard++) {
        config_rw(fd, cap, &id, 1, 0);
        if (id == PCI_CAP_ID_MSIX) {
            break;
        }
        config_rw(fd, cap + 1u, &cap, 1, 0);
    }
    if (!cap || id != PCI_CAP_ID_MSIX) {
        fprintf(stderr, "ivshmem-peer: the device has no MSI-X capability\n");
        exit(1);
    }
    config_rw(fd, cap + 2u, &ctrl, 2, 0);
    config_rw(fd, cap + 4u, &table, 4, 0);
    config_rw(fd, cap + 8u, &pba, 4, 0);
    p->nr_vectors = (ctrl & 0x7ff) + 1u;
    if ((table & 7) != 1 || (pba & 7) != 1) {
        fprintf(stderr, "ivshmem-peer: MSI-X table or PBA not in BAR1\n");
        exit(1);
    }
    p->table_offset = table & ~7u;
    p->pba_offset = pba & ~7u;
    p->msix_bar = map_resource(p, 1, &p->msix_bar_size);
    for (unsigned v = 0; v < p->nr_vectors; v++) {
        volatile uint32_t *vctl = (volatile uint32_t *)
            (p->msix_bar + p->table_offset + v * MSIX_ENTRY_SIZE + 12);
        *vctl |= MSIX_VECTOR_MASKED;
    }
    ctrl = (ctrl | MSIX_ENABLE) & ~MSIX_FUNCTION_MASK;
    config_rw(fd, cap + 2u, &ctrl, 2, 1);
    close(fd);
}

static void open_peer(Peer *p)
{
    size_t regs_size;
    if (find_device(p) < 0) {
        fprintf(stderr, "ivshmem-peer: no 1af4:1110 device\n");
        exit(1);
    }
    int fd = open_in(p, "enable", O_WRONLY);
    if (write(fd, "1", 1) != 1 && errno != EBUSY) {
        die("enable");
    }
    close(fd);
    setup_config(p);
    p->regs = map_resource(p, 0, &regs_size);
    p->shm = map_resource(p, 2, &p->shm_size);
}

static int vector_pending(const Peer *p, unsigned vector)
{
    volatile uint64_t *pba = (volatile uint64_t *)(p->msix_bar + p->pba_offset);
    return (pba[vector / 64] >> (vector % 64)) & 1;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static unsigned long parse_num(const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || *end || v > max) {
        fprintf(stderr, "ivshmem-peer: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    Peer p = {0};
    if (argc < 2) {
        fprintf(stderr, "usage: ivshmem-peer id|write|read|ring|wait ...\n");
        return 2;
    }
    open_peer(&p);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "id")) {
        printf("%u\n", p.regs[REG_IVPOSITION / 4]);
    } else if (!strcmp(cmd, "write") && argc == 4) {
        unsigned long off = parse_num(argv[2], p.shm_size);
        size_t len = strlen(argv[3]) + 1;
        if (len > p.shm_size - off) {
            fprintf(stderr, "ivshmem-peer: past the end of shared memory\n");
            return 1;
        }
        memcpy(p.shm + off, argv[3], len);
        msync(p.shm, p.shm_size, MS_SYNC);
    } else if (!strcmp(cmd, "read") && argc == 4) {
        unsigned long off = parse_num(argv[2], p.shm_size);
        unsigned long len = parse_num(argv[3], p.shm_size - off);
        fwrite(p.shm + off, 1, strnlen((char *)p.shm + off, len), stdout);
        putchar('\n');
    } else if (!strcmp(cmd, "ring") && argc == 4) {
        unsigned long peer = parse_num(argv[2], 0xffff);
        unsigned long vector = parse_num(argv[3], 0xffff);
        p.regs[REG_DOORBELL / 4] = (uint32_t)(peer << 16 | vector);
    } else if (!strcmp(cmd, "wait") && argc == 4) {
        unsigned long vector = parse_num(argv[2], p.nr_vectors - 1);
        long deadline = now_ms() + (long)parse_num(argv[3], 600000);
        while (!vector_pending(&p, vector)) {
            if (now_ms() > deadline) {
                printf("timeout\n");
                return 1;
            }
            usleep(1000);
        }
        printf("pending %lu\n", vector);
    } else {
        fprintf(stderr, "ivshmem-peer: unknown command or wrong arguments\n");
        return 2;
    }
    return 0;
}
