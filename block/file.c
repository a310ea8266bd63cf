/*
 * Host files under an image: full-length reads and writes, O_DIRECT bounce
 * buffers for unaligned metadata access, hole punching.
 */
#include "block/block-int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block-stats.h"
#include "util/osdep.h"

void *blk_alloc_aligned(size_t len)
{
    void *p = NULL;
    size_t rounded = ROUND_UP(len ? len : 1, BLK_DIRECT_ALIGN);
    if (posix_memalign(&p, BLK_DIRECT_ALIGN, rounded)) {
        abort();
    }
    memset(p, 0, rounded);
    return p;
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t head = MIN(len, (size_t)16);
    for (size_t i = 0; i < head; i++) {
        if (p[i]) {
            return false;
        }
    }
    /* The first 16 bytes are zero, so the rest is zero iff it equals itself shifted. */
    return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

int bfile_open(BlockFile *f, const char *path, bool writable, bool direct, Error **errp)
{
    int flags = (writable ? O_RDWR : O_RDONLY) | (direct ? O_DIRECT : 0);
    f->fd = vireo_open(path, flags, 0, errp);
    block_stats_file_opened(f->fd);
    f->direct = direct;
    f->writable = writable;
    f->unsafe = false;
    f->ops = NULL;
    f->ops_state = NULL;
    return f->fd < 0 ? -1 : 0;
}

void bfile_close(BlockFile *f)
{
    if (f->ops) {
        f->ops->close(f->ops_state);
        f->ops = NULL;
        f->ops_state = NULL;
    }
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
}

static bool is_aligned(uint64_t off, const void *buf, size_t len)
{
    return ((off | len | (uintptr_t)buf) & (BLK_DIRECT_ALIGN - 1)) == 0;
}

/* pread that loops over short reads and fills what lies past EOF with zeros. */
static int pread_all(int fd, uint64_t off, void *buf, size_t len, Error **errp)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "read of %zu bytes at offset %llu failed",
                             len, (unsigned long long)off);
            return -1;
        }
        if (n == 0) {
            memset((char *)buf + done, 0, len - done);
            break;
        }
        done += (size_t)n;
    }
    return 0;
}

static int pwrite_all(int fd, uint64_t off, const void *buf, size_t len, Error **errp)
{
    size_t done = 0;
    block_stats_file_wrote(fd, off + len);
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO,
                             "write of %zu bytes at offset %llu failed",
                             len, (unsigned long long)off);
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

void bfile_set_extent_size_hint(int fd, uint64_t hint)
{
    struct fsxattr attr;
    if (!hint || hint > UINT32_MAX || ioctl(fd, FS_IOC_FSGETXATTR, &attr) < 0) {
        return;
    }
    attr.fsx_xflags |= FS_XFLAG_EXTSIZE;
    attr.fsx_extsize = (uint32_t)hint;
    (void)ioctl(fd, FS_IOC_FSSETXATTR, &attr);
}

void bfile_set_nocow(int fd, bool nocow)
{
    int flags;
    /* Only btrfs has the flag, and only an empty file takes it; elsewhere it is ignored. */
    if (nocow && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags |= FS_NOCOW_FL;
        (void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
}

int bfile_pread(BlockFile *f, uint64_t off, void *buf, size_t len, Error **errp)
{
    if (off > INT64_MAX || len > INT64_MAX - off) {
        error_setg(errp, "read at offset %llu is beyond any file", (unsigned long long)off);
        return -1;
    }
    if (f->ops) {
        return f->ops->pread(f->ops_state, off, buf, len, errp);
    }
    if (!f->direct || is_aligned(off, buf, len)) {
        return pread_all(f->fd, off, buf, len, errp);
    }
    uint64_t start = off & ~(uint64_t)(BLK_DIRECT_ALIGN - 1);
    size_t span = ROUND_UP(off + len, BLK_DIRECT_ALIGN) - start;
    uint8_t *bounce = blk_alloc_aligned(span);
    int ret = pread_all(f->fd, start, bounce, span, errp);
    if (ret == 0) {
        memcpy(buf, bounce + (off - start), len);
    }
    free(bounce);
    return ret;
}

int bfile_pwrite(BlockFile *f, uint64_t off, const void *buf, size_t len, Error **errp)
{
    if (off > INT64_MAX || len > INT64_MAX - off) {
        error_setg(errp, "write at offset %llu is beyond any file", (unsigned long long)off);
        return -1;
    }
    if (f->ops) {
        return f->ops->pwrite(f->ops_state, off, buf, len, errp);
    }
    if (!f->direct || is_aligned(off, buf, len)) {
        return pwrite_all(f->fd, off, buf, len, errp);
    }
    /* O_DIRECT needs whole aligned blocks: read, modify, write back. */
    uint64_t start = off & ~(uint64_t)(BLK_DIRECT_ALIGN - 1);
    size_t span = ROUND_UP(off + len, BLK_DIRECT_ALIGN) - start;
    uint8_t *bounce = blk_alloc_aligned(span);
    int ret = pread_all(f->fd, start, bounce, span, errp);
    if (ret == 0) {
        memcpy(bounce + (off - start), buf, len);
        ret = pwrite_all(f->fd, start, bounce, span, errp);
    }
    free(bounce);
    return ret;
}

int bfile_flush(BlockFile *f, Error **errp)
{
    if (f->unsafe) {
        return 0;
    }
    if (f->ops) {
        return f->ops->flush(f->ops_state, errp);
    }
    if (fdatasync(f->fd) < 0) {
        error_setg_errno(errp, errno, "flush failed");
        return -1;
    }
    return 0;
}

int64_t bfile_length(BlockFile *f, Error **errp)
{
    if (f->ops) {
        return f->ops->length(f->ops_state, errp);
    }
    off_t end = lseek(f->fd, 0, SEEK_END);
    if (end < 0) {
        error_setg_errno(errp, errno, "cannot find the file size");
        return -1;
    }
    return end;
}

int bfile_truncate(BlockFile *f, uint64_t len, Error **errp)
{
    if (f->ops && len <= INT64_MAX) {
        return f->ops->truncate(f->ops_state, len, errp);
    }
    if (len > INT64_MAX || ftruncate(f->fd, (off_t)len) < 0) {
        error_setg_errno(errp, len > INT64_MAX ? EFBIG : errno,
                         "cannot resize the file to %llu bytes", (unsigned long long)len);
        return -1;
    }
    return 0;
}

int bfile_zero_range(BlockFile *f, uint64_t off, uint64_t len, Error **errp)
{
    if (!f->ops && fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)len) == 0) {
        return 0;
    }
    /* No hole punching here (e.g. a block device or tmpfs quirk): write zeros. */
    size_t chunk = MIN(len, (uint64_t)1 << 20);
    void *zeros = blk_alloc_aligned(chunk);
    int ret = 0;
    while (len && ret == 0) {
        size_t n = MIN(len, (uint64_t)chunk);
        ret = bfile_pwrite(f, off, zeros, n, errp);
        off += n;
        len -= n;
    }
    free(zeros);
    return ret;
}

int bfile_hole_fd(BlockFile *f)
{
    return f->ops ? f->ops->hole_fd(f->ops_state) : f->fd;
}

int64_t bfile_allocated_bytes(BlockFile *f)
{
    struct stat st;
    if (f->ops) {
        return f->ops->allocated(f->ops_state);
    }
    if (fstat(f->fd, &st) < 0) {
        return -1;
    }
    return (int64_t)st.st_blocks * 512;
}
