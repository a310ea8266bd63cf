/*
 * virtio-blk requests on the block layer (see virtio-blk-req.h): reads and
 * writes go to the image's asynchronous queue straight from and into guest
 * buffers; flush is asynchronous too; discard, write-zeroes and get-id are
 * answered at once. Completions arrive through the queue's eventfd, which
 * the owner watches and hands to blk_queue_process().
 */
#include "virtio/virtio-blk-req.h"

#include <endian.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "util/byteorder.h"
#include "util/osdep.h"

/* Request types and status */
enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };
#define S_LATER         0xff    /* completes from the block queue */
#define WZ_FLAG_UNMAP   1
#define SECTOR_SIZE     VIRTIO_BLK_SECTOR_SIZE
#define ID_BYTES        20

/*
 * A request scattered over many small guest buffers costs file systems that
 * forward each segment to a server one round trip per segment (on the lab's
 * 9p share a 1 MiB request of 254 page-sized segments took ~30 ms as one
 * pwritev and ~3 ms as one contiguous write). For images on such file
 * systems those requests are gathered into one aligned host buffer. On
 * local files the copy is pure loss (a 1 MiB guest write ran at a quarter
 * of the speed with it), so there the guest buffers go to the host as they
 * are. Larger requests are never gathered so a guest cannot make us
 * allocate much.
 */
#define BOUNCE_MIN_SEGS     16
#define BOUNCE_MAX_BYTES    (4u << 20)
#define BOUNCE_ALIGN        4096

typedef struct BlkReqHeader {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
} BlkReqHeader;

typedef struct BlkDiscardSeg {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
} BlkDiscardSeg;

typedef struct BlkRequest {
    VirtioBlkBackend *be;
    VirtQueue *vq;
    VirtQueueElement elem;
    struct iovec *data;         /* the data part of the chain */
    unsigned data_n;
    uint32_t data_len;
    bool is_read;
    bool flush_after;           /* writethrough: the write completes after a flush */
    void *bounce;               /* contiguous copy of data, or NULL */
    struct iovec bounce_iov;
    BlockStatsCookie acct;      /* read, write and flush are timed until they complete */
    bool timed;
    bool is_flush;
    uint64_t offset;            /* of a read or write, to submit it again */
    struct BlkRequest *next_held;
} BlkRequest;


/* ---- completing requests ---- */

static void req_complete(BlkRequest *req, uint8_t status)
{
    VirtQueueElement *e = &req->elem;
    if (req->timed) {
        block_stats_done(req->be->stats, &req->acct, status == S_OK);
    }
    /* The status byte is the last device-writable byte of the chain. */
    iov_from_buf(e->in_sg, e->in_num, e->in_len - 1, &status, 1);
    uint32_t written = 1 + (status == S_OK ? req->data_len : 0);
    virtqueue_push(req->vq, e, written);
    if (req->be->completed) {
        req->be->completed(req->be, req->vq, e, written);
    }
    virtqueue_element_free(e);
    free(req->bounce);
    free(req->data);
    free(req);
}

static int submit(BlkRequest *req);

/* rerror=/werror=: true when the request is held (stop) or already completed. */
static bool error_policy(BlkRequest *req, int ret)
{
    VirtioBlkBackend *be = req->be;
    if (!be->io_error) {
        return false;
    }
    switch (be->io_error(be, req->is_read, -ret)) {
    case VIRTIO_BLK_ERROR_IGNORE:
        req_complete(req, S_OK);
        return true;
    case VIRTIO_BLK_ERROR_STOP: {
        BlkRequest **p = (BlkRequest **)&be->held;
        while (*p) {
            p = &(*p)->next_held;
        }
        req->next_held = NULL;
        *p = req;
        return true;
    }
    default:
        return false;
    }
}

static void aio_done(void *opaque, int ret)
{
    BlkRequest *req = opaque;
    if (ret < 0 && error_policy(req, ret)) {
        return;
    }
    if (ret == 0 && req->flush_after) {
        /* Writethrough: the guest hears of the write once it is on stable storage. */
        req->flush_after = false;
        if (blk_aio_flush(req->be->bq, aio_done, req) == 0) {
            return;
        }
        ret = -EIO;
    }
    if (ret == 0 && req->bounce && req->is_read) {
        iov_from_buf(req->data, req->data_n, 0, req->bounce, req->bounce_iov.iov_len);
    }
    req_complete(req, ret == 0 ? S_OK : S_IOERR);
}

/* ---- request types ---- */

static bool sector_range_ok(const VirtioBlkBackend *be, uint64_t sector, uint64_t len)
{
    uint64_t size = blk_size(be->img);
    return len % SECTOR_SIZE == 0 && sector <= UINT64_MAX / SECTOR_SIZE &&
           range_within(sector * SECTOR_SIZE, len, size);
}

/* Point the request's host I/O at one bounce buffer when that pays (see above). */
static void maybe_bounce(BlkRequest *req, size_t len, bool write)
{
    if (!req->be->gather_segments || req->data_n < BOUNCE_MIN_SEGS || len > BOUNCE_MAX_BYTES ||
        posix_memalign(&req->bounce, BOUNCE_ALIGN, len) != 0) {
        req->bounce = NULL;     /* allocation failure: use the guest buffers directly */
        return;
    }
    if (write) {
        iov_to_buf(req->data, req->data_n, 0, req->bounce, len);
    }
    req->bounce_iov = (struct iovec){ .iov_base = req->bounce, .iov_len = len };
}

static uint8_t do_read_write(BlkRequest *req, const BlkReqHeader *h, bool write)
{
    VirtioBlkBackend *be = req->be;
    VirtQueueElement *e = &req->elem;
    size_t len = write ? e->out_len - sizeof(*h) : e->in_len - 1;
    BlockStatsKind kind = write ? BLOCK_STATS_WRITE : BLOCK_STATS_READ;
    if (write && be->readonly) {
        block_stats_invalid(be->stats, kind);
        return S_IOERR;
    }
    if (!sector_range_ok(be, h->sector, len)) {
        block_stats_invalid(be->stats, kind);
        return S_IOERR;
    }
    block_stats_start(&req->acct, kind, h->sector * SECTOR_SIZE, len);
    req->timed = true;
    const struct iovec *src = write ? e->out_sg : e->in_sg;
    unsigned src_n = write ? e->out_num : e->in_num;
    req->data = xmalloc(sizeof(struct iovec) * (src_n ? src_n : 1));
    req->data_n = iov_slice(src, src_n, write ? sizeof(*h) : 0, len, req->data, src_n);
    req->data_len = write ? 0 : len;
    if (len == 0) {
        return S_OK;
    }
    req->offset = h->sector * SECTOR_SIZE;
    req->is_read = !write;
    req->flush_after = write && !be->vdev->config[VIRTIO_BLK_CFG_WRITEBACK];
    maybe_bounce(req, len, write);
    return submit(req) == 0 ? S_LATER : S_IOERR;
}

/* Hand a read, write or flush to the block queue (again, after a stop). */
static int submit(BlkRequest *req)
{
    VirtioBlkBackend *be = req->be;
    if (req->is_flush) {
        return blk_aio_flush(be->bq, aio_done, req);
    }
    struct iovec *iov = req->bounce ? &req->bounce_iov : req->data;
    int iovcnt = req->bounce ? 1 : (int)req->data_n;
    return req->is_read ? blk_aio_preadv(be->bq, req->offset, iov, iovcnt, aio_done, req)
                        : blk_aio_pwritev(be->bq, req->offset, iov, iovcnt, aio_done, req);
}

void virtio_blk_retry_held(VirtioBlkBackend *be)
{
    BlkRequest *req = be->held;
    be->held = NULL;
    while (req) {
        BlkRequest *next = req->next_held;
        if (submit(req) < 0) {
            req_complete(req, S_IOERR);
        }
        req = next;
    }
}

void virtio_blk_drop_held(VirtioBlkBackend *be)
{
    BlkRequest *req = be->held;
    be->held = NULL;
    while (req) {
        BlkRequest *next = req->next_held;
        virtqueue_element_free(&req->elem);
        free(req->bounce);
        free(req->data);
        free(req);
        req = next;
    }
}

static uint8_t do_get_id(BlkRequest *req)
{
    char id[ID_BYTES] = { 0 };
    const char *serial = req->be->serial;
    if (serial) {
        memcpy(id, serial, MIN(strlen(serial), sizeof(id)));
    }
    VirtQueueElement *e = &req->elem;
    size_t n = MIN((size_t)e->in_len - 1, sizeof(id));
    req->data_len = iov_from_buf(e->in_sg, e->in_num, 0, id, n);
    return S_OK;
}

/* Discard and write-zeroes: one segment, as the config space says. */
static uint8_t do_discard_zeroes(BlkRequest *req, bool zeroes)
{
    VirtioBlkBackend *be = req->be;
    VirtQueueElement *e = &req->elem;
    BlkDiscardSeg seg;
    size_t payload = e->out_len - sizeof(BlkReqHeader);
    if (be->readonly) {
        return S_IOERR;
    }
    if (payload != sizeof(seg)) {
        return S_UNSUPP;
    }
    iov_to_buf(e->out_sg, e->out_num, sizeof(BlkReqHeader), &seg, sizeof(seg));
    uint64_t sector = le64toh(seg.sector);
    uint32_t n = le32toh(seg.num_sectors), flags = le32toh(seg.flags);
    if (flags & ~(zeroes ? WZ_FLAG_UNMAP : 0)) {
        return S_UNSUPP;
    }
    if (n > VIRTIO_BLK_MAX_DISCARD_SECTORS ||
        !sector_range_ok(be, sector, (uint64_t)n * SECTOR_SIZE)) {
        return S_IOERR;
    }
    uint64_t off = sector * SECTOR_SIZE, len = (uint64_t)n * SECTOR_SIZE;
    BlockStatsCookie acct;
    block_stats_start(&acct, zeroes ? BLOCK_STATS_WRITE : BLOCK_STATS_UNMAP, off, len);
    int r = zeroes ? blk_write_zeroes(be->img, off, len, NULL)
                   : blk_discard(be->img, off, len, NULL);
    block_stats_done(be->stats, &acct, r == 0);
    return r == 0 ? S_OK : S_IOERR;
}

static uint8_t dispatch(BlkRequest *req, const BlkReqHeader *h)
{
    switch (h->type) {
    case T_IN:           return do_read_write(req, h, false);
    case T_OUT:          return do_read_write(req, h, true);
    case T_FLUSH:
        block_stats_start(&req->acct, BLOCK_STATS_FLUSH, 0, 0);
        req->timed = true;
        req->is_flush = true;
        return submit(req) == 0 ? S_LATER : S_IOERR;
    case T_GET_ID:       return do_get_id(req);
    case T_DISCARD:      return do_discard_zeroes(req, false);
    case T_WRITE_ZEROES: return do_discard_zeroes(req, true);
    default:             return S_UNSUPP;
    }
}

void virtio_blk_handle_request(VirtioBlkBackend *be, VirtQueue *vq, VirtQueueElement *elem)
{
    if (elem->out_len < sizeof(BlkReqHeader) || elem->in_len < 1) {
        virtqueue_element_free(elem);
        virtio_mark_broken(be->vdev, "request without header or status byte");
        return;
    }
    BlkRequest *req = xzalloc(sizeof(*req));
    req->be = be;
    req->vq = vq;
    req->elem = *elem;
    BlkReqHeader h;
    iov_to_buf(elem->out_sg, elem->out_num, 0, &h, sizeof(h));
    h.type = le32toh(h.type);
    h.sector = le64toh(h.sector);
    uint8_t status = dispatch(req, &h);
    if (status != S_LATER) {
        req_complete(req, status);
    }
}

/* ---- configuration ---- */

void virtio_blk_fill_config(uint8_t *c, uint64_t size, unsigned num_queues,
                            unsigned queue_size, bool writeback, uint32_t blk_size)
{
    uint64_t sectors = size / SECTOR_SIZE;
    st_le64(c + VIRTIO_BLK_CFG_CAPACITY, sectors);
    st_le32(c + VIRTIO_BLK_CFG_SEG_MAX, queue_size - 2);
    st_le16(c + VIRTIO_BLK_CFG_CYLINDERS, MIN(sectors / (16 * 63), 65535));
    c[VIRTIO_BLK_CFG_HEADS] = 16;
    c[VIRTIO_BLK_CFG_SECTORS] = 63;
    st_le32(c + VIRTIO_BLK_CFG_BLK_SIZE, blk_size);
    c[VIRTIO_BLK_CFG_WRITEBACK] = writeback;
    st_le16(c + VIRTIO_BLK_CFG_NUM_QUEUES, num_queues);
    st_le32(c + VIRTIO_BLK_CFG_MAX_DISCARD, VIRTIO_BLK_MAX_DISCARD_SECTORS);
    st_le32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1);
    st_le32(c + VIRTIO_BLK_CFG_DISCARD_ALIGN, 1);
    st_le32(c + VIRTIO_BLK_CFG_MAX_WZ, VIRTIO_BLK_MAX_DISCARD_SECTORS);
    st_le32(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, 1);
}

bool virtio_blk_on_forwarding_fs(const char *file)
{
    struct statfs fs;
    if (statfs(file, &fs) != 0) {
        return false;
    }
    switch ((unsigned long)fs.f_type) {
    case V9FS_MAGIC:
    case FUSE_SUPER_MAGIC:
    case NFS_SUPER_MAGIC:
    case 0xff534d42:        /* CIFS */
    case 0xfe534d42:        /* SMB2 */
        return true;
    default:
        return false;
    }
}
