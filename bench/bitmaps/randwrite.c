/*
 * Guest side of bench/bitmaps/run: 4 KiB O_DIRECT pwrites at random
 * 4 KiB-aligned offsets of a block device for a fixed time, one request in
 * flight, timed by the guest's monotonic clock. Prints one line:
 *   IOPS <rate> writes=<n> seconds=<elapsed>
 * Built static on the host and put into the initramfs.
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

/* xorshift64*: a different offset sequence per seed, no libc state */
static uint64_t next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: randwrite DEV SECONDS REGION_MIB SEED\n");
        return 2;
    }
    double secs = strtod(argv[2], NULL);
    uint64_t blocks = (strtoull(argv[3], NULL, 0) << 20) / 4096;
    uint64_t seed = strtoull(argv[4], NULL, 0) * 2654435761ULL + 1;
    int fd = open(argv[1], O_RDWR | O_DIRECT);
    void *buf;
    if (fd < 0) {
        perror("open");
        return 1;
    }
    if (blocks == 0 || secs <= 0 || posix_memalign(&buf, 4096, 4096)) {
        fprintf(stderr, "randwrite: bad arguments\n");
        return 2;
    }
    memset(buf, 0xc3, 4096);
    long n = 0;
    double start = now(), end = start + secs, t = start;
    while (t < end) {
        /* 64 writes between clock reads keep the clock out of the loop's cost */
        for (int i = 0; i < 64; i++) {
            uint64_t off = next(&seed) % blocks * 4096;
            ((uint64_t *)buf)[0] = off ^ (uint64_t)n;
            if (pwrite(fd, buf, 4096, (off_t)off) != 4096) {
                perror("pwrite");
                return 1;
            }
            n++;
        }
        t = now();
    }
    printf("IOPS %.1f writes=%ld seconds=%.3f\n", n / (t - start), n, t - start);
    return 0;
}
