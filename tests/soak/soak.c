/*
 * A hostile guest program: run as root inside a Linux guest of vireo, it
 * takes every virtio-pci device (and ivshmem) away from its driver through
 * sysfs and attacks it for a bounded time, plus the UART, RTC, i8042 and
 * fw_cfg ports. Built static (gcc -static) by tests/soak/test_soak.py.
 *
 *   soak SEED SECONDS          attack, then leave every virtio device broken
 *                              (NEEDS_RESET) and print one line per device
 *
 * Everything the devices may write lands in one 2 MiB huge page this
 * program owns (its physical address comes from /proc/self/pagemap) or
 * outside guest RAM: the guest kernel must survive so that the host can
 * check the devices afterwards. Descriptor tables are always written whole,
 * so a chain can only lead to buffers made here.
 *
 * Output: "SOAK ..." lines on stdout; the last one before exit is
 * "SOAK-END ops=N ...". The seed fixes each thread's sequence of operations
 * (the interleaving of the two threads is not reproducible).
 *
 * The operations are in soak-ops.c; soak.h holds what the two share.
 */
#include "soak.h"

Dev devs[MAX_DEVS];
int ndevs;
uint8_t *dma_va;
uint64_t dma_pa, ram_end;
static volatile int stop;
static volatile int current_dev;    /* what thread 0 works on, for thread 1's races */
static unsigned long long op_count[16];
unsigned long long needs_reset_seen;
bool have_io;
__thread int thread_id;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("SOAK-FATAL ");
    vprintf(fmt, ap);
    printf(" (errno %d)\n", errno);
    va_end(ap);
    fflush(stdout);
    exit(2);
}

/* ---- sysfs helpers ---- */

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) {
        return -1;
    }
    buf[n] = 0;
    return n;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n < 0 ? -1 : 0;
}

uint32_t cfg_read(Dev *d, unsigned off, unsigned size)
{
    uint32_t v = 0;
    if (pread(d->cfg_fd, &v, size, off) != (ssize_t)size) {
        return 0xffffffff;
    }
    return v;
}

void cfg_write(Dev *d, unsigned off, uint32_t v, unsigned size)
{
    if (pwrite(d->cfg_fd, &v, size, off) < 0) {
        /* a refused write is one more thing the device did not see */
    }
}

/* ---- guest-physical memory for rings and buffers ---- */

static uint64_t virt_to_phys(void *va)
{
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) {
        die("open pagemap");
    }
    uint64_t e = 0;
    if (pread(fd, &e, 8, (uintptr_t)va / 4096 * 8) != 8) {
        die("read pagemap");
    }
    close(fd);
    if (!(e >> 63) || !(e & ((1ULL << 55) - 1))) {
        die("page not present or PFN hidden");
    }
    return (e & ((1ULL << 55) - 1)) * 4096 + (uintptr_t)va % 4096;
}

static uint32_t safe_pfn(unsigned i)
{
    return (uint32_t)(dma_pa / 4096) + i % (GENERAL_SIZE / 4096);
}

/*
 * No device may write the safe tail (only the balloon gets buffers there,
 * all device-readable): a changed word means a write outside the buffers
 * the guest gave. Returns the first changed offset into the tail, or -1.
 */
static long safe_tail_changed(void)
{
    const uint32_t *pfn = (const uint32_t *)(dma_va + GENERAL_SIZE);
    for (unsigned i = 0; i < SAFE_SIZE / 4; i++) {
        if (pfn[i] != safe_pfn(i)) {
            return (long)i * 4;
        }
    }
    return -1;
}

static void setup_dma(void)
{
    write_file("/proc/sys/vm/nr_hugepages", "4");
    dma_va = mmap(NULL, HUGE_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
    if (dma_va == MAP_FAILED) {
        die("no 2 MiB huge page");
    }
    mlock(dma_va, HUGE_SIZE);
    memset(dma_va, 0, HUGE_SIZE);
    dma_pa = virt_to_phys(dma_va);
    if (dma_pa % HUGE_SIZE) {
        die("huge page at 0x%llx is not 2 MiB aligned", (unsigned long long)dma_pa);
    }
    /* The balloon reads page numbers from the safe tail: our own pages. */
    uint32_t *pfn = (uint32_t *)(dma_va + GENERAL_SIZE);
    for (unsigned i = 0; i < SAFE_SIZE / 4; i++) {
        pfn[i] = safe_pfn(i);
    }
    /* Where RAM ends: nothing the devices accept may reach past it. */
    FILE *f = fopen("/proc/iomem", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long long a, b;
        if ((strstr(line, "System RAM") || strstr(line, "ACPI")) && line[0] != ' ' &&
            sscanf(line, "%llx-%llx", &a, &b) == 2 && b + 1 > ram_end) {
            ram_end = b + 1;
        }
    }
    if (f) {
        fclose(f);
    }
    if (!ram_end) {
        die("no System RAM in /proc/iomem");
    }
}

/* ---- device discovery ---- */

static void map_bars(Dev *d)
{
    char path[400], buf[4096];
    snprintf(path, sizeof(path), "%s/resource", d->dir);
    if (read_file(path, buf, sizeof(buf)) < 0) {
        return;
    }
    char *line = buf;
    for (int i = 0; i < 6 && line && *line; i++) {
        unsigned long long a, b, flags;
        if (sscanf(line, "%llx %llx %llx", &a, &b, &flags) == 3 && b > a) {
            Bar *bar = &d->bar[i];
            bar->pa = a;
            bar->len = b - a + 1;
            bar->io = flags & 0x100;
            bar->present = true;
            if (!bar->io) {
                snprintf(path, sizeof(path), "%s/resource%d", d->dir, i);
                int fd = open(path, O_RDWR | O_SYNC);
                if (fd >= 0) {
                    void *m = mmap(NULL, bar->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                    bar->map = m == MAP_FAILED ? NULL : m;
                    close(fd);
                }
            } else if (bar->len <= 0x10000 && a < 0x10000) {
                d->io_base = a;
            }
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
}

static void find_caps(Dev *d)
{
    unsigned pos = cfg_read(d, 0x34, 1) & 0xfc;
    for (int guard = 0; pos >= 0x40 && guard < 48; guard++) {
        uint8_t id = cfg_read(d, pos, 1);
        if (id == 0x09 && d->virtio) {
            uint8_t type = cfg_read(d, pos + 3, 1), bar = cfg_read(d, pos + 4, 1);
            uint32_t off = cfg_read(d, pos + 8, 4), len = cfg_read(d, pos + 12, 4);
            if (bar < 6 && d->bar[bar].map && (uint64_t)off + len <= d->bar[bar].len) {
                volatile uint8_t *p = d->bar[bar].map + off;
                switch (type) {
                case 1: d->common = len >= C_LEN ? p : NULL; break;
                case 2: d->notify = p; d->notify_len = len;
                        d->notify_mult = cfg_read(d, pos + 16, 4); break;
                case 3: d->isr = p; break;
                case 4: d->devcfg = p; d->devcfg_len = len; break;
                }
            }
        } else if (id == 0x11) {
            uint32_t table = cfg_read(d, pos + 4, 4);
            unsigned n = (cfg_read(d, pos + 2, 2) & 0x7ff) + 1, bar = table & 7;
            if (bar < 6 && d->bar[bar].map && (table & ~7u) + n * 16ull <= d->bar[bar].len) {
                d->msix_table = d->bar[bar].map + (table & ~7u);
                d->msix_len = n * 16;
            }
        }
        pos = cfg_read(d, pos + 1, 1) & 0xfc;
    }
}

static void discover(void)
{
    DIR *dir = opendir("/sys/bus/pci/devices");
    if (!dir) {
        die("no /sys/bus/pci/devices");
    }
    struct dirent *e;
    while ((e = readdir(dir)) && ndevs < MAX_DEVS) {
        if (e->d_name[0] == '.') {
            continue;
        }
        Dev *d = &devs[ndevs];
        char path[400], buf[64];
        snprintf(d->bdf, sizeof(d->bdf), "%.31s", e->d_name);
        snprintf(d->dir, sizeof(d->dir), "/sys/bus/pci/devices/%s", e->d_name);
        snprintf(path, sizeof(path), "%s/vendor", d->dir);
        if (read_file(path, buf, sizeof(buf)) < 0) {
            continue;
        }
        d->vendor = strtoul(buf, NULL, 16);
        snprintf(path, sizeof(path), "%s/device", d->dir);
        read_file(path, buf, sizeof(buf));
        d->device = strtoul(buf, NULL, 16);
        if (d->vendor != VIRTIO_VENDOR && !(d->vendor == 0x1af4 && d->device == 0x1110)) {
            continue;
        }
        d->virtio = d->device >= 0x1000 && d->device <= 0x107f;
        d->balloon = d->device == 0x1002 || d->device == 0x1045;
        /* Take the device from its driver: from now on only we drive it. */
        snprintf(path, sizeof(path), "%s/driver/unbind", d->dir);
        write_file(path, d->bdf);
        snprintf(path, sizeof(path), "%s/config", d->dir);
        d->cfg_fd = open(path, O_RDWR);
        if (d->cfg_fd < 0) {
            continue;
        }
        pthread_mutex_init(&d->cfg_lock, NULL);
        /* I/O and memory decoding on, bus mastering on. */
        cfg_write(d, 4, cfg_read(d, 4, 2) | 7, 2);
        if (pread(d->cfg_fd, d->saved_cfg, 64, 0) != 64) {
            continue;
        }
        map_bars(d);
        find_caps(d);
        if (d->common) {
            d->numq = *(volatile uint16_t *)(d->common + C_NUMQ);
        }
        printf("SOAK dev %s %04x:%04x virtio=%d common=%d notify=%d devcfg=%d msix=%u io=0x%x "
               "numq=%u\n", d->bdf, d->vendor, d->device, d->virtio, !!d->common, !!d->notify,
               !!d->devcfg, d->msix_len / 16, d->io_base, d->numq);
        ndevs++;
    }
    closedir(dir);
}


static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *opaque)
{
    Worker *w = opaque;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->id, &set);
    sched_setaffinity(0, sizeof(set), &set);
    Rng r = { w->seed * 0x9e3779b97f4a7c15ULL + w->id + 1 };
    thread_id = w->id;
    Rng *rp = &r;
    while (now() < w->until) {
        /* Thread 1 often races thread 0 on the same device: setup vs status. */
        int di = w->id == 1 && chance(rp, 40) ? current_dev : (int)below(rp, ndevs);
        if (w->id == 0) {
            current_dev = di;
        }
        unsigned op = pick_op(rp);
        if (w->id == 1 && chance(rp, 30)) {
            op = chance(rp, 50) ? OP_STATUS : OP_QRESET;
        }
        op = run_op(rp, op, &devs[di]);
        __atomic_add_fetch(&op_count[op], 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Leave virtio device d broken on purpose: a descriptor loop, else a ring outside RAM. */
static const char *break_device(Dev *d)
{
    C8(d, C_STATUS) = 0;
    for (int i = 0; i < 1000 && C8(d, C_STATUS); i++) {
        usleep(1000);
    }
    C8(d, C_STATUS) = S_ACK | S_DRIVER;
    C32(d, C_GFSEL) = 1;
    C32(d, C_GF) = 1;
    C32(d, C_GFSEL) = 0;
    C32(d, C_GF) = 0;
    C8(d, C_STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK;
    unsigned q = request_queue(d);
    C16(d, C_QSEL) = q;
    C16(d, C_QSIZE) = 16;
    uint64_t base = 0x100000;
    memset(dma_va + base, 0, 0x3000);
    uint64_t buf = d->balloon ? dpa(GENERAL_SIZE) : dpa(base + 0x2000);
    put_desc(dma_va + base, 0, buf, 64, 1, 1);
    put_desc(dma_va + base, 1, buf, 64, 1, 0);
    uint16_t *avail = (uint16_t *)(dma_va + base + 0x1000);
    avail[2] = 0;
    avail[1] = 1;
    set_q64(d, C_QDESC, dpa(base));
    set_q64(d, C_QAVAIL, dpa(base + 0x1000));
    set_q64(d, C_QUSED, dpa(base + 0x1800));
    C16(d, C_QENABLE) = 1;
    C8(d, C_STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
    kick(d, q);
    for (int i = 0; i < 2000; i++) {
        if (C8(d, C_STATUS) & S_NEEDS_RESET) {
            return "loop";
        }
        usleep(1000);
    }
    C8(d, C_STATUS) = 0;
    C8(d, C_STATUS) = S_ACK | S_DRIVER;
    C8(d, C_STATUS) = S_ACK | S_DRIVER | S_FEATURES_OK;
    C16(d, C_QSEL) = q;
    set_q64(d, C_QDESC, 1ull << 46);
    C16(d, C_QENABLE) = 1;
    return C8(d, C_STATUS) & S_NEEDS_RESET ? "ring-outside-ram" : "none";
}

/*
 * A heartbeat the host reads without the UART: the last 32 bytes of
 * ivshmem's shared memory get a magic, a counter bumped every 100 ms, the
 * phase (1 attack, 2 done, 3 devices left broken) and the operations so far.
 * If the console goes quiet, a moving counter says the guest still runs.
 */
static volatile unsigned beat_phase;

static void *heartbeat(void *arg)
{
    Bar *b = arg;
    volatile uint64_t *w = (volatile uint64_t *)(b->map + b->len - 32);
    for (uint64_t n = 1;; n++) {
        unsigned long long ops = 0;
        for (unsigned i = 0; i < OP_NUM; i++) {
            ops += __atomic_load_n(&op_count[i], __ATOMIC_RELAXED);
        }
        w[0] = 0x5441454b414f53ull;     /* "SOAKBEAT" minus the last byte */
        w[1] = n;
        w[2] = beat_phase;
        w[3] = ops;
        usleep(100 * 1000);
    }
    return NULL;
}

static void start_heartbeat(void)
{
    for (int i = 0; i < ndevs; i++) {
        Bar *b = &devs[i].bar[2];
        if (devs[i].device == 0x1110 && b->present && b->map && b->len >= 4096) {
            pthread_t th;
            pthread_create(&th, NULL, heartbeat, b);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: soak SEED SECONDS\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 0);
    double seconds = atof(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("SOAK-SEED %llu seconds=%g cpus=%ld\n", (unsigned long long)seed, seconds,
           sysconf(_SC_NPROCESSORS_ONLN));
    have_io = iopl(3) == 0;
    setup_dma();
    printf("SOAK dma=0x%llx ram_end=0x%llx io=%d\n", (unsigned long long)dma_pa,
           (unsigned long long)ram_end, have_io);
    discover();
    if (!ndevs) {
        die("no virtio devices");
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    Worker w[2];
    int nw = cpus >= 2 ? 2 : 1;
    printf("SOAK-START threads=%d\n", nw);
    if (have_io) {
        /*
         * Bytes the attack loops back into the console's input are noise,
         * not flow control: a stray XOFF would stop the console for good.
         */
        struct termios t;
        if (tcgetattr(STDIN_FILENO, &t) == 0) {
            t.c_iflag &= ~(IXON | IXOFF | IXANY);
            tcsetattr(STDIN_FILENO, TCSANOW, &t);
        }
        /* Sent, and the last THRE interrupt handled (Linux then clears its bit). */
        tcdrain(STDOUT_FILENO);
        usleep(500 * 1000);
        uart_save();
    }
    beat_phase = 1;
    start_heartbeat();
    double until = now() + seconds;
    for (int i = 0; i < nw; i++) {
        w[i] = (Worker){ .id = i, .seed = seed, .until = until };
        pthread_create(&w[i].th, NULL, worker, &w[i]);
    }
    for (int i = 0; i < nw; i++) {
        pthread_join(w[i].th, NULL);
    }
    beat_phase = 2;
    if (have_io) {
        tcflush(STDIN_FILENO, TCIFLUSH);    /* and none of it is read as a line */
        /* The bytes the attack sent out of the UART end in no newline: start a line. */
        printf("\n");
    }
    unsigned long long total = 0;
    for (unsigned i = 0; i < OP_NUM; i++) {
        total += op_count[i];
        printf("SOAK op %s %llu\n", op_names[i], op_count[i]);
    }
    long changed = safe_tail_changed();
    if (changed < 0) {
        printf("SOAK-SAFE intact\n");
    } else {
        printf("SOAK-SAFE changed at +0x%lx\n", changed);
    }
    printf("SOAK-END ops=%llu needs_reset_seen=%llu\n", total, needs_reset_seen);
    for (int i = 0; i < ndevs; i++) {
        Dev *d = &devs[i];
        if (d->virtio && d->common) {
            const char *how = break_device(d);
            printf("SOAK-BROKEN %s %04x %s status=0x%02x\n", d->bdf, d->device, how,
                   C8(d, C_STATUS));
        }
    }
    beat_phase = 3;
    usleep(300 * 1000);     /* one more beat with the phase */
    return 0;
}
