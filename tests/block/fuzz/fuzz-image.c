/*
 * libFuzzer target: open arbitrary bytes as qcow2, as parallels and as
 * whatever probing finds, then read, map and check.  Any crash, hang or
 * sanitizer report is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "block/block.h"

static void exercise(const char *path, const char *fmt)
{
    Error *err = NULL;
    BlockImage *img = blk_open(path, fmt, BLK_O_NO_BACKING, &err);
    if (!img) {
        error_free(err);
        return;
    }
    uint8_t buf[65536];
    uint64_t size = blk_size(img);
    for (uint64_t off = 0; off < size && off < (64u << 20); off += 1 << 20) {
        uint64_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
        if (blk_pread(img, off, buf, n, &err) < 0) {
            error_free(err);
            err = NULL;
        }
        BlockStatus st;
        if (blk_block_status(img, off, n, &st, &err) < 0) {
            error_free(err);
            err = NULL;
        }
    }
    BlockCheckResult res;
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    if (blk_check(img, &res, 0, &err) < 0) {
        error_free(err);
        err = NULL;
    }
    fclose(stderr);
    stderr = saved;
    blk_close(img, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/vireo-fuzz-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        return 0;
    }
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    exercise(path, "qcow2");
    exercise(path, "parallels");
    exercise(path, NULL);
    unlink(path);
    return 0;
}
