/*
 * Guest side of bench/virtio/run: sequential 1 MiB writes and reads and
 * 4 KiB random reads with O_DIRECT on a block device, one line of MB/s and
 * IOPS per test. Built static on the host and put into the initramfs.
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

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: blkbench DEV SIZE_MIB RANDOM_READS\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_DIRECT);
    uint64_t size = strtoull(argv[2], NULL, 0) << 20;
    long nrand = strtol(argv[3], NULL, 0);
    void *buf;
    if (fd < 0 || posix_memalign(&buf, 4096, 1 << 20)) {
        perror("open");
        return 1;
    }
    memset(buf, 0x5a, 1 << 20);
    double t = now();
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        if (pwrite(fd, buf, 1 << 20, off) != 1 << 20) {
            perror("pwrite");
            return 1;
        }
    }
    fsync(fd);
    double dt = now() - t;
    printf("BENCH seq-write-1M %.1f MB/s\n", size / dt / 1e6);
    t = now();
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        if (pread(fd, buf, 1 << 20, off) != 1 << 20) {
            perror("pread");
            return 1;
        }
    }
    dt = now() - t;
    printf("BENCH seq-read-1M %.1f MB/s\n", size / dt / 1e6);
    srand(42);
    uint64_t blocks = size / 4096;
    t = now();
    for (long i = 0; i < nrand; i++) {
        uint64_t b = ((uint64_t)rand() << 16 ^ rand()) % blocks;
        if (pread(fd, buf, 4096, b * 4096) != 4096) {
            perror("pread");
            return 1;
        }
    }
    dt = now() - t;
    printf("BENCH rand-read-4k %.0f IOPS\n", nrand / dt);
    return 0;
}
