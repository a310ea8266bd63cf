/*
 * raw: the guest disk is the host file, byte for byte.
 */
#include "block/block-int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <unistd.h>

#include "block/block-stats.h"
#include "util/osdep.h"

/*
 * The last data extent lseek(SEEK_DATA/SEEK_HOLE) reported.  On tmpfs a
 * SEEK_HOLE walks the page cache up to the next hole, i.e. to the end of a
 * fully written file, so asking again for every chunk of a sequential scan
 * (convert, map) made the scan quadratic.  Writes only turn holes into data,
 * so a remembered data extent stays true until this image punches or zeroes
 * a range or changes size; those forget it.
 */
typedef struct RawState {
    uint64_t data_start, data_end;   /* empty when equal */
} RawState;

static void raw_forget_extent(BlockImage *img)
{
    RawState *r = img->opaque;
    r->data_start = r->data_end = 0;
}

static int raw_probe(const uint8_t *buf, size_t len)
{
    return 1;   /* anything is a raw image, as a last resort */
}

static int raw_open(BlockImage *img, Error **errp)
{
    int64_t len = bfile_length(&img->file, errp);
    if (len < 0) {
        return -1;
    }
    /* The guest sees whole sectors; the partial tail reads as zeros past EOF. */
    img->size = ROUND_UP((uint64_t)len, BDRV_SECTOR_SIZE);
    img->cluster_size = BDRV_SECTOR_SIZE;
    img->opaque = xzalloc(sizeof(RawState));
    return 0;
}

static int raw_close(BlockImage *img, Error **errp)
{
    free(img->opaque);
    img->opaque = NULL;
    return 0;
}

static int raw_read(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp)
{
    return bfile_pread(&img->file, off, buf, len, errp);
}

static int raw_write(BlockImage *img, uint64_t off, const void *buf, size_t len,
                     Error **errp)
{
    return bfile_pwrite(&img->file, off, buf, len, errp);
}

static int raw_discard(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    raw_forget_extent(img);
    /* Discard is advisory: a file system without hole punching just keeps the data. */
    fallocate(img->file.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              (off_t)off, (off_t)len);
    return 0;
}

static int raw_write_zeroes(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    raw_forget_extent(img);
    block_stats_file_wrote(img->file.fd, off + len);    /* a write, if not of data */
    if (fallocate(img->file.fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0) {
        return 0;
    }
    return bfile_zero_range(&img->file, off, len, errp);
}

static int raw_block_status(BlockImage *img, uint64_t off, uint64_t len,
                            BlockStatus *st, Error **errp)
{
    RawState *r = img->opaque;
    if (off >= r->data_start && off < r->data_end) {
        st->kind = BLK_STATUS_DATA;
        st->host_offset = off;
        st->len = MIN(len, r->data_end - off);
        return 0;
    }
    int fd = bfile_hole_fd(&img->file);
    off_t data = lseek(fd, (off_t)off, SEEK_DATA);
    st->host_offset = off;
    if (data < 0 && errno == ENXIO) {
        st->kind = BLK_STATUS_ZERO;          /* a hole up to the end of the file */
        st->len = len;
        return 0;
    }
    if (data < 0) {
        st->kind = BLK_STATUS_DATA;          /* no hole information: say data */
        st->len = len;
        return 0;
    }
    if ((uint64_t)data > off) {
        st->kind = BLK_STATUS_ZERO;
        st->len = MIN(len, (uint64_t)data - off);
        return 0;
    }
    off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
    st->kind = BLK_STATUS_DATA;
    st->len = hole < 0 ? len : MIN(len, (uint64_t)hole - off);
    if (st->len == 0) {
        st->len = len;
    } else if (hole > 0 && (uint64_t)hole > off) {
        r->data_start = off;
        r->data_end = (uint64_t)hole;
    }
    return 0;
}

static int raw_create(const char *filename, const BlockCreateOptions *opts, Error **errp)
{
    if (opts->backing_file) {
        error_setg(errp, "raw images cannot have a backing file");
        return -1;
    }
    int fd = vireo_open(filename, O_RDWR | O_CREAT | O_TRUNC, 0644, errp);
    if (fd < 0) {
        return -1;
    }
    bfile_set_nocow(fd, opts->nocow);
    bfile_set_extent_size_hint(fd, opts->extent_size_hint);
    BlockFile f = { .fd = fd, .writable = true };
    int ret = bfile_truncate(&f, opts->size, errp);
    if (ret == 0 && opts->preallocation == BLK_PREALLOC_FALLOC && opts->size &&
        fallocate(fd, 0, 0, (off_t)opts->size) < 0) {
        error_setg_errno(errp, errno, "cannot preallocate '%s'", filename);
        ret = -1;
    }
    if (ret == 0 && opts->preallocation == BLK_PREALLOC_FULL) {
        size_t chunk = 1 << 20;
        void *zeros = blk_alloc_aligned(chunk);
        for (uint64_t off = 0; ret == 0 && off < opts->size; off += chunk) {
            ret = bfile_pwrite(&f, off, zeros, MIN((uint64_t)chunk, opts->size - off), errp);
        }
        free(zeros);
    }
    close(fd);
    return ret;
}

static int raw_resize(BlockImage *img, uint64_t size, Error **errp)
{
    raw_forget_extent(img);
    if (bfile_truncate(&img->file, size, errp) < 0) {
        return -1;
    }
    /* The file gets the exact length asked for; the guest, as at open, whole sectors. */
    img->size = ROUND_UP(size, BDRV_SECTOR_SIZE);
    return 0;
}

static BlockAioPlan raw_aio_plan(BlockImage *img, BlockAioReq *req)
{
    req->host_offset = req->offset;
    return BLK_PLAN_DIRECT;
}

const BlockDriver blk_driver_raw = {
    .name = "raw",
    .probe = raw_probe,
    .open = raw_open,
    .close = raw_close,
    .create = raw_create,
    .read = raw_read,
    .write = raw_write,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .block_status = raw_block_status,
    .resize = raw_resize,
    .aio_plan = raw_aio_plan,
};
