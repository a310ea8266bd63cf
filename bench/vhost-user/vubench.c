/*
 * Guest side of bench/vhost-user/run: with O_DIRECT on a block device,
 * 4 KiB random reads and writes (IOPS) and 1 MiB sequential writes and
 * reads (MB/s) at queue depth 1, one result line per test. Built static on
 * the host and put into the initramfs (busybox dd cannot do random I/O).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A fixed pseudo-random sequence, so both daemons see the same offsets. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int sequential(int fd, void *buf, uint64_t size, int write)
{
    double t = now();
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        ssize_t r = write ? pwrite(fd, buf, 1 << 20, off) : pread(fd, buf, 1 << 20, off);
        if (r != 1 << 20) {
            perror(write ? "pwrite" : "pread");
            return 1;
        }
    }
    if (write) {
        fdatasync(fd);
    }
    printf("RESULT seq-%s-MBps %.1f\n", write ? "write" : "read", size / 1e6 / (now() - t));
    return 0;
}

static int random_io(int fd, void *buf, uint64_t size, long n, int write)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull, blocks = size / 4096;
    double t = now();
    for (long i = 0; i < n; i++) {
        off_t off = (off_t)(next_rand(&seed) % blocks) * 4096;
        ssize_t r = write ? pwrite(fd, buf, 4096, off) : pread(fd, buf, 4096, off);
        if (r != 4096) {
            perror(write ? "pwrite" : "pread");
            return 1;
        }
    }
    printf("RESULT rand-%s-IOPS %.0f\n", write ? "write" : "read", n / (now() - t));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: vubench DEV SIZE_MIB RANDOM_IOS\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_DIRECT);
    uint64_t size = strtoull(argv[2], NULL, 0) << 20;
    long n = strtol(argv[3], NULL, 0);
    void *buf;
    if (fd < 0 || posix_memalign(&buf, 4096, 1 << 20)) {
        perror("open");
        return 1;
    }
    memset(buf, 0x5a, 1 << 20);
    int bad = sequential(fd, buf, size, 1) || sequential(fd, buf, size, 0) ||
              random_io(fd, buf, size, n, 0) || random_io(fd, buf, size, n, 1);
    fflush(stdout);
    return bad;
}
