/*
 * libFuzzer target for the block layer: the input is an image file.  For
 * qcow2, parallels and whatever probing finds, it is
 *   1. opened read-only: read, block status, info and check;
 *   2. restored and opened writable: a few writes, zero writes, discards,
 *      compressed writes and flushes, then closed (headers, refcounts and
 *      bitmaps written back);
 *   3. opened for repair: check -r all, then check again when anything was
 *      repaired.
 * The requests of step 2 are decoded from the input's last bytes, so the
 * fuzzer mutates the image and what is done to it together.
 *
 * Bounds: the image lives in a memfd (no disk), every file the process
 * writes is capped by RLIMIT_FSIZE, each request is at most 1 MiB of data,
 * and the block layer may open no file but the image itself: a hostile
 * header naming /etc/passwd as its external data file gets an error, not a
 * writable descriptor (vireo_open is wrapped at link time, see meson.build).
 * Any crash, hang, leak or sanitizer report is a bug.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"
#include "util/osdep.h"

#define FILE_CAP      (64u << 20)   /* RLIMIT_FSIZE: no file grows past this */
#define READ_SPAN     (64u << 20)   /* guest bytes sampled by the read pass */
#define MAX_REQ       (1u << 20)    /* largest write, in bytes */
#define MAX_OPS       8
#define OP_BYTES      6

static int image_fd = -1;
static char image_path[64];
static FILE *devnull;
static uint8_t rbuf[65536];
static uint8_t wbuf[MAX_REQ];

int __real_vireo_open(const char *path, int flags, mode_t mode, Error **errp);
int __wrap_vireo_open(const char *path, int flags, mode_t mode, Error **errp);

/* The only file the block layer may open is the image under test. */
int __wrap_vireo_open(const char *path, int flags, mode_t mode, Error **errp)
{
    if (strcmp(path, image_path) != 0) {
        error_setg_errno(errp, EACCES, "fuzz-image: will not open '%s'", path);
        errno = EACCES;
        return -1;
    }
    return __real_vireo_open(path, flags, mode, errp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    image_fd = memfd_create("vireo-fuzz-image", MFD_CLOEXEC);
    if (image_fd < 0) {
        perror("fuzz-image: memfd_create");
        exit(1);
    }
    snprintf(image_path, sizeof(image_path), "/proc/self/fd/%d", image_fd);

    /* Writes past the cap fail with EFBIG (SIGXFSZ is ignored, see below). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > FILE_CAP)) {
        rl.rlim_cur = FILE_CAP;
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0) {
            perror("fuzz-image: setrlimit");
            exit(1);
        }
    }

    devnull = fopen("/dev/null", "w");
    if (!devnull) {
        perror("fuzz-image: /dev/null");
        exit(1);
    }
    for (size_t i = 0; i < sizeof(wbuf); i++) {
        wbuf[i] = (uint8_t)(i * 31 + (i >> 9));
    }
    return 0;
}

/* Puts the input back into the image file; false if that fails. */
static bool restore(const uint8_t *data, size_t size)
{
    if (ftruncate(image_fd, 0) < 0) {
        return false;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(image_fd, data + done, size - done, (off_t)done);
        if (n <= 0) {
            return false;
        }
        done += (size_t)n;
    }
    return true;
}

static void drop(Error **err)
{
    error_free(*err);
    *err = NULL;
}

/*
 * Returns whether the write and repair passes are worth running: always for
 * an explicit format (repair opens what a plain open refuses), for probing
 * (@fmt NULL) only when it found raw; qcow2 and parallels have passes of
 * their own.
 */
static bool read_pass(const char *fmt)
{
    Error *err = NULL;
    BlockImage *img = blk_open(image_path, fmt, BLK_O_NO_BACKING, &err);
    if (!img) {
        drop(&err);
        return fmt != NULL;
    }
    if (!fmt && (strcmp(blk_format(img), "qcow2") == 0 ||
                 strcmp(blk_format(img), "parallels") == 0)) {
        blk_close(img, NULL);
        return false;
    }
    uint64_t size = blk_size(img);
    for (uint64_t off = 0; off < size && off < READ_SPAN; off += 1 << 20) {
        uint64_t n = size - off < sizeof(rbuf) ? size - off : sizeof(rbuf);
        if (blk_pread(img, off, rbuf, n, &err) < 0) {
            drop(&err);
        }
        BlockStatus st;
        if (blk_block_status(img, off, n, &st, &err) < 0) {
            drop(&err);
        }
    }
    BlockFormatInfo info;
    if (blk_get_info(img, &info, &err) < 0) {
        drop(&err);
    } else {
        blk_free_info(&info);
    }
    BlockCheckResult res;
    if (blk_check(img, &res, 0, &err) < 0) {
        drop(&err);
    }
    blk_close(img, NULL);
    return true;
}

/*
 * One request per OP_BYTES bytes: b0 selects the kind (bits 0-2), whether
 * the offset is unaligned (bit 3), how the length is scaled (bits 4-5) and
 * whether the offset may land far past the end (bit 6); b1-b3 are the offset
 * in sectors, b4-b5 the length.
 */
static void apply_op(BlockImage *img, const uint8_t *p, uint64_t size)
{
    Error *err = NULL;
    uint64_t off = ((uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3]) << 9;
    uint64_t len = (uint64_t)p[4] << 8 | p[5];
    static const unsigned scale[4] = { 0, 4, 9, 9 };
    len <<= scale[(p[0] >> 4) & 3];
    if (p[0] & 0x08) {
        off += p[1];
    }
    if (!(p[0] & 0x40) && size) {
        off %= size + size / 8 + 1;   /* mostly inside, sometimes just past the end */
    }
    uint64_t wlen = len < MAX_REQ ? len : MAX_REQ;
    int ret = 0;
    switch (p[0] & 7) {
    case 0:
    case 5:
        ret = blk_pwrite(img, off, wbuf, wlen, &err);
        break;
    case 1:
    case 6:
        ret = blk_write_zeroes(img, off, len, &err);
        break;
    case 2:
    case 7:
        ret = blk_discard(img, off, len, &err);
        break;
    case 3:
        ret = blk_flush(img, &err);
        break;
    case 4:
        ret = blk_pwrite_compressed(img, off, wbuf, wlen, &err);
        break;
    }
    if (ret < 0) {
        drop(&err);
    }
}

static void write_pass(const char *fmt, const uint8_t *data, size_t size)
{
    Error *err = NULL;
    BlockImage *img = blk_open(image_path, fmt, BLK_O_RDWR | BLK_O_NO_BACKING, &err);
    if (!img) {
        drop(&err);
        return;
    }
    size_t nops = size / 64 < MAX_OPS ? size / 64 : MAX_OPS;
    const uint8_t *ops = data + size - nops * OP_BYTES;
    uint64_t vsize = blk_size(img);
    for (size_t i = 0; i < nops; i++) {
        apply_op(img, ops + i * OP_BYTES, vsize);
    }
    if (blk_flush(img, &err) < 0) {
        drop(&err);
    }
    if (blk_close(img, &err) < 0) {
        drop(&err);
    }
}

/* qemu-img check -r all: repair, then look again if anything changed. */
static void repair_pass(const char *fmt)
{
    Error *err = NULL;
    BlockImage *img = blk_open(image_path, fmt,
                               BLK_O_RDWR | BLK_O_NO_BACKING | BLK_O_CHECK |
                               BLK_O_NO_BITMAPS, &err);
    if (!img) {
        drop(&err);
        return;
    }
    BlockCheckResult res;
    if (blk_check(img, &res, BLK_FIX_LEAKS | BLK_FIX_ERRORS, &err) < 0) {
        drop(&err);
    } else if (res.leaks_fixed || res.corruptions_fixed) {
        if (blk_check(img, &res, 0, &err) < 0) {
            drop(&err);
        }
    }
    if (blk_close(img, &err) < 0) {
        drop(&err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const formats[] = { "qcow2", "parallels", NULL };
    static bool xfsz_ignored;
    if (!xfsz_ignored) {
        /* libFuzzer installs its SIGXFSZ handler after LLVMFuzzerInitialize. */
        signal(SIGXFSZ, SIG_IGN);
        xfsz_ignored = true;
    }
    if (size > FILE_CAP / 2) {
        return -1;   /* not worth keeping in the corpus */
    }
    /* The block layer reports what it repairs on stderr; keep the log readable. */
    FILE *saved = stderr;
    stderr = devnull;
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        if (!restore(data, size)) {
            break;
        }
        if (read_pass(formats[i])) {
            write_pass(formats[i], data, size);
            repair_pass(formats[i]);
        }
    }
    stderr = saved;
    return 0;
}
