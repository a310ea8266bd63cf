/*
 * virtio-blk (virtio 1.2 section 5.2) on the block layer: reads and writes go
 * to the image's asynchronous queue straight from and into guest buffers;
 * flush is asynchronous too; discard, write-zeroes and get-id are answered at
 * once. Completions arrive on the main loop through the queue's eventfd.
 */
#include <endian.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "block/block.h"
#include "core/main-loop.h"
#include "util/osdep.h"
#include "virtio/virtio-pci.h"

/* Feature bits */
#define BLK_F_SEG_MAX       2
#define BLK_F_GEOMETRY      4
#define BLK_F_RO            5
#define BLK_F_BLK_SIZE      6
#define BLK_F_FLUSH         9
#define BLK_F_TOPOLOGY      10
#define BLK_F_CONFIG_WCE    11
#define BLK_F_MQ            12
#define BLK_F_DISCARD       13
#define BLK_F_WRITE_ZEROES  14

/* Request types and status */
enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };
#define WZ_FLAG_UNMAP 1

#define SECTOR_SIZE     512
#define QUEUE_SIZE      256
#define ID_BYTES        20
#define MAX_QUEUES      16
#define MAX_DISCARD_SECTORS 0x3fffff

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

/* Configuration layout (struct virtio_blk_config). */
enum {
    CFG_CAPACITY = 0, CFG_SIZE_MAX = 8, CFG_SEG_MAX = 12, CFG_CYLINDERS = 16, CFG_HEADS = 18,
    CFG_SECTORS = 19, CFG_BLK_SIZE = 20, CFG_PHYS_EXP = 24, CFG_ALIGN_OFF = 25,
    CFG_MIN_IO = 26, CFG_OPT_IO = 28, CFG_WRITEBACK = 32, CFG_NUM_QUEUES = 34,
    CFG_MAX_DISCARD = 36, CFG_MAX_DISCARD_SEG = 40, CFG_DISCARD_ALIGN = 44,
    CFG_MAX_WZ = 48, CFG_MAX_WZ_SEG = 52, CFG_WZ_MAY_UNMAP = 56, CFG_SIZE = 60,
};

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

typedef struct VirtIOBlock {
    VirtIODevice vdev;
    BlockImage *img;
    BlockQueue *bq;
    char *serial;               /* get-id answer, NULL: empty */
    bool readonly;
    bool writeback;             /* the cache mode at power-on (cache=writethrough|directsync: off) */
    bool gather_segments;       /* the image sits on a per-segment-costly file system */
    bool pending_notify[MAX_QUEUES];
} VirtIOBlock;

typedef struct BlkRequest {
    VirtIOBlock *blk;
    VirtQueue *vq;
    VirtQueueElement elem;
    struct iovec *data;         /* the data part of the chain */
    unsigned data_n;
    uint32_t data_len;
    bool is_read;
    bool flush_after;           /* writethrough: the write completes after a flush */
    void *bounce;               /* contiguous copy of data, or NULL */
    struct iovec bounce_iov;
} BlkRequest;

static const OptParam blk_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "drive", OPT_STRING, "id of the -drive" },
    { "serial", OPT_STRING, "disk serial number" },
    { "num-queues", OPT_NUMBER, "request queues", "1" },
    { "queue-size", OPT_NUMBER, "size of each queue", "256" },
    { "config-wce", OPT_BOOL, "guest may change the cache mode", "on" },
    { "discard", OPT_BOOL, "offer discard", "on" },
    { "write-zeroes", OPT_BOOL, "offer write-zeroes", "on" },
    { "bootindex", OPT_NUMBER, "boot order (ignored)" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};

static void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

/* ---- completing requests ---- */

static void req_complete(BlkRequest *req, uint8_t status)
{
    VirtQueueElement *e = &req->elem;
    /* The status byte is the last device-writable byte of the chain. */
    iov_from_buf(e->in_sg, e->in_num, e->in_len - 1, &status, 1);
    uint32_t written = 1 + (status == S_OK ? req->data_len : 0);
    virtqueue_push(req->vq, e, written);
    unsigned q = req->vq->index;
    if (q < MAX_QUEUES) {
        req->blk->pending_notify[q] = true;
    }
    virtqueue_element_free(e);
    free(req->bounce);
    free(req->data);
    free(req);
}

static void notify_pending(VirtIOBlock *blk)
{
    for (unsigned q = 0; q < blk->vdev.nvqs && q < MAX_QUEUES; q++) {
        if (blk->pending_notify[q]) {
            blk->pending_notify[q] = false;
            virtqueue_notify(&blk->vdev.vq[q]);
        }
    }
}

static void aio_done(void *opaque, int ret)
{
    BlkRequest *req = opaque;
    if (ret == 0 && req->flush_after) {
        /* Writethrough: the guest hears of the write once it is on stable storage. */
        req->flush_after = false;
        if (blk_aio_flush(req->blk->bq, aio_done, req) == 0) {
            return;
        }
        ret = -EIO;
    }
    if (ret == 0 && req->bounce && req->is_read) {
        iov_from_buf(req->data, req->data_n, 0, req->bounce, req->bounce_iov.iov_len);
    }
    req_complete(req, ret == 0 ? S_OK : S_IOERR);
}

static void blk_queue_ready(void *opaque)
{
    VirtIOBlock *blk = opaque;
    blk_queue_process(blk->bq, false);
    notify_pending(blk);
}

/* ---- request types ---- */

static bool sector_range_ok(const VirtIOBlock *blk, uint64_t sector, uint64_t len)
{
    uint64_t size = blk_size(blk->img);
    return len % SECTOR_SIZE == 0 && sector <= UINT64_MAX / SECTOR_SIZE &&
           range_within(sector * SECTOR_SIZE, len, size);
}

/* Point the request's host I/O at one bounce buffer when that pays (see above). */
static void maybe_bounce(BlkRequest *req, size_t len, bool write)
{
    if (!req->blk->gather_segments || req->data_n < BOUNCE_MIN_SEGS || len > BOUNCE_MAX_BYTES ||
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
    VirtIOBlock *blk = req->blk;
    VirtQueueElement *e = &req->elem;
    size_t len = write ? e->out_len - sizeof(*h) : e->in_len - 1;
    if (write && blk->readonly) {
        return S_IOERR;
    }
    if (!sector_range_ok(blk, h->sector, len)) {
        return S_IOERR;
    }
    const struct iovec *src = write ? e->out_sg : e->in_sg;
    unsigned src_n = write ? e->out_num : e->in_num;
    req->data = xmalloc(sizeof(struct iovec) * (src_n ? src_n : 1));
    req->data_n = iov_slice(src, src_n, write ? sizeof(*h) : 0, len, req->data, src_n);
    req->data_len = write ? 0 : len;
    if (len == 0) {
        return S_OK;
    }
    uint64_t off = h->sector * SECTOR_SIZE;
    req->is_read = !write;
    req->flush_after = write && !blk->vdev.config[CFG_WRITEBACK];
    maybe_bounce(req, len, write);
    struct iovec *iov = req->bounce ? &req->bounce_iov : req->data;
    int iovcnt = req->bounce ? 1 : (int)req->data_n;
    int r = write ? blk_aio_pwritev(blk->bq, off, iov, iovcnt, aio_done, req)
                  : blk_aio_preadv(blk->bq, off, iov, iovcnt, aio_done, req);
    return r == 0 ? 0xff : S_IOERR;     /* 0xff: completes later */
}

static uint8_t do_get_id(BlkRequest *req)
{
    char id[ID_BYTES] = { 0 };
    const char *serial = req->blk->serial;
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
    VirtIOBlock *blk = req->blk;
    VirtQueueElement *e = &req->elem;
    BlkDiscardSeg seg;
    size_t payload = e->out_len - sizeof(BlkReqHeader);
    if (blk->readonly) {
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
    if (n > MAX_DISCARD_SECTORS || !sector_range_ok(blk, sector, (uint64_t)n * SECTOR_SIZE)) {
        return S_IOERR;
    }
    uint64_t off = sector * SECTOR_SIZE, len = (uint64_t)n * SECTOR_SIZE;
    int r = zeroes ? blk_write_zeroes(blk->img, off, len, NULL)
                   : blk_discard(blk->img, off, len, NULL);
    return r == 0 ? S_OK : S_IOERR;
}

static uint8_t dispatch(BlkRequest *req, const BlkReqHeader *h)
{
    switch (h->type) {
    case T_IN:           return do_read_write(req, h, false);
    case T_OUT:          return do_read_write(req, h, true);
    case T_FLUSH:
        return blk_aio_flush(req->blk->bq, aio_done, req) == 0 ? 0xff : S_IOERR;
    case T_GET_ID:       return do_get_id(req);
    case T_DISCARD:      return do_discard_zeroes(req, false);
    case T_WRITE_ZEROES: return do_discard_zeroes(req, true);
    default:             return S_UNSUPP;
    }
}

static void handle_request(VirtIOBlock *blk, VirtQueue *vq, VirtQueueElement *elem)
{
    if (elem->out_len < sizeof(BlkReqHeader) || elem->in_len < 1) {
        virtqueue_element_free(elem);
        virtio_mark_broken(&blk->vdev, "request without header or status byte");
        return;
    }
    BlkRequest *req = xzalloc(sizeof(*req));
    req->blk = blk;
    req->vq = vq;
    req->elem = *elem;
    BlkReqHeader h;
    iov_to_buf(elem->out_sg, elem->out_num, 0, &h, sizeof(h));
    h.type = le32toh(h.type);
    h.sector = le64toh(h.sector);
    uint8_t status = dispatch(req, &h);
    if (status != 0xff) {
        req_complete(req, status);
    }
}

static void blk_handle_output(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBlock *blk = vdev->opaque;
    VirtQueueElement elem;
    do {
        virtqueue_set_notification(vq, false);
        while (virtqueue_pop(vq, &elem)) {
            handle_request(blk, vq, &elem);
        }
        virtqueue_set_notification(vq, true);
    } while (!virtqueue_empty(vq));
    notify_pending(blk);
}

/* ---- device ---- */

static void blk_reset(VirtIODevice *vdev)
{
    VirtIOBlock *blk = vdev->opaque;
    /* Rings are gone: completions now only free their requests. */
    if (blk->bq) {
        blk_queue_drain(blk->bq);
    }
    memset(blk->pending_notify, 0, sizeof(blk->pending_notify));
    vdev->config[CFG_WRITEBACK] = blk->writeback;
}

static void blk_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size)
{
    /* Only the cache mode (writeback) byte is the driver's to change. */
    if (offset <= CFG_WRITEBACK && offset + size > CFG_WRITEBACK) {
        vdev->config[CFG_WRITEBACK] = (val >> (8 * (CFG_WRITEBACK - offset))) & 1;
    }
}

/* Drain in-flight requests into still-mapped guest RAM, then let the image go. */
static void blk_quiesce(VirtIODevice *vdev)
{
    VirtIOBlock *blk = vdev->opaque;
    if (!blk->bq) {
        return;
    }
    main_loop_set_fd_handler(blk_queue_fd(blk->bq), NULL, NULL, NULL);
    blk_queue_free(blk->bq);        /* drains first */
    blk->bq = NULL;
    blk_close(blk->img, NULL);
    blk->img = NULL;
}

static const VirtIODeviceOps blk_ops = {
    .reset = blk_reset,
    .config_write = blk_config_write,
    .quiesce = blk_quiesce,
};

static void fill_config(VirtIOBlock *blk, unsigned num_queues, unsigned queue_size)
{
    uint8_t *c = blk->vdev.config;
    uint64_t sectors = blk_size(blk->img) / SECTOR_SIZE;
    put64(c + CFG_CAPACITY, sectors);
    put32(c + CFG_SEG_MAX, queue_size - 2);
    put16(c + CFG_CYLINDERS, MIN(sectors / (16 * 63), 65535));
    c[CFG_HEADS] = 16;
    c[CFG_SECTORS] = 63;
    put32(c + CFG_BLK_SIZE, SECTOR_SIZE);
    c[CFG_WRITEBACK] = blk->writeback;
    put16(c + CFG_NUM_QUEUES, num_queues);
    put32(c + CFG_MAX_DISCARD, MAX_DISCARD_SECTORS);
    put32(c + CFG_MAX_DISCARD_SEG, 1);
    put32(c + CFG_DISCARD_ALIGN, 1);
    put32(c + CFG_MAX_WZ, MAX_DISCARD_SECTORS);
    put32(c + CFG_MAX_WZ_SEG, 1);
}

static uint64_t blk_features(const VirtIOBlock *blk, const KeyValList *kv, unsigned nq)
{
    uint64_t f = 1ULL << BLK_F_SEG_MAX | 1ULL << BLK_F_GEOMETRY | 1ULL << BLK_F_BLK_SIZE |
                 1ULL << BLK_F_FLUSH | 1ULL << BLK_F_TOPOLOGY;
    f |= keyval_get_bool(kv, "config-wce", true) ? 1ULL << BLK_F_CONFIG_WCE : 0;
    f |= keyval_get_bool(kv, "discard", true) ? 1ULL << BLK_F_DISCARD : 0;
    f |= keyval_get_bool(kv, "write-zeroes", true) ? 1ULL << BLK_F_WRITE_ZEROES : 0;
    f |= nq > 1 ? 1ULL << BLK_F_MQ : 0;
    f |= blk->readonly ? 1ULL << BLK_F_RO : 0;
    return f;
}

/* Network and user-space file systems: each I/O segment is a message. */
static bool on_forwarding_file_system(const char *file)
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

/* -drive file=..,format=..,if=none,id=..,readonly=on,cache=..,aio=.. */
static bool open_drive(VirtIOBlock *blk, const char *drive_opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(drive_opts, NULL, NULL, &kv, errp)) {
        return false;
    }
    const char *file = keyval_get(&kv, "file");
    const char *cache = keyval_get(&kv, "cache");
    const char *aio = keyval_get(&kv, "aio");
    blk->readonly = keyval_get_bool(&kv, "readonly", false);
    unsigned flags = blk->readonly ? 0 : BLK_O_RDWR;
    blk->writeback = !cache || (strcmp(cache, "writethrough") && strcmp(cache, "directsync"));
    if (cache && (!strcmp(cache, "none") || !strcmp(cache, "directsync"))) {
        flags |= BLK_O_NOCACHE;
    }
    if (aio && (!strcmp(aio, "io_uring") || !strcmp(aio, "native"))) {
        flags |= BLK_O_URING;
    }
    bool ok = false;
    if (!file) {
        error_setg(errp, "-drive without file=");
    } else {
        blk->img = blk_open(file, keyval_get(&kv, "format"), flags, errp);
        blk->gather_segments = on_forwarding_file_system(file);
        blk->bq = blk->img ? blk_queue_new(blk->img, QUEUE_SIZE * 2, errp) : NULL;
        ok = blk->bq != NULL;
    }
    keyval_free(&kv);
    return ok;
}

static bool blk_setup(const VirtioCreateContext *ctx, const KeyValList *kv, VirtIOBlock *blk,
                      unsigned *nq, Error **errp)
{
    const char *drive = keyval_get(kv, "drive");
    const char *drive_opts = drive ? virtio_find_backend_opts(ctx->cfg->drives, drive) : NULL;
    *nq = keyval_get_number(kv, "num-queues", 1);
    unsigned qsize = keyval_get_number(kv, "queue-size", QUEUE_SIZE);
    if (!drive) {
        error_setg(errp, "drive property not set");
        return false;
    }
    if (!drive_opts) {
        error_setg(errp, "Property 'virtio-blk-device.drive' can't find value '%s'", drive);
        return false;
    }
    if (*nq < 1 || *nq > MAX_QUEUES) {
        error_setg(errp, "num-queues property must be between 1 and %d", MAX_QUEUES);
        return false;
    }
    if (qsize < 4 || qsize > VIRTQUEUE_MAX_SIZE || (qsize & (qsize - 1))) {
        error_setg(errp, "queue-size property must be a power of 2 between 4 and %d",
                   VIRTQUEUE_MAX_SIZE);
        return false;
    }
    if (!open_drive(blk, drive_opts, errp)) {
        return false;
    }
    const char *serial = keyval_get(kv, "serial");
    blk->serial = serial ? xstrdup(serial) : NULL;
    virtio_device_init(&blk->vdev, "virtio-blk", VIRTIO_ID_BLOCK, ctx->mem, CFG_SIZE, *nq);
    for (unsigned q = 0; q < *nq; q++) {
        virtio_queue_setup(&blk->vdev, q, qsize, blk_handle_output);
    }
    blk->vdev.host_features |= blk_features(blk, kv, *nq);
    blk->vdev.ops = &blk_ops;
    blk->vdev.opaque = blk;
    fill_config(blk, *nq, qsize);
    main_loop_set_fd_handler(blk_queue_fd(blk->bq), blk_queue_ready, NULL, blk);
    return true;
}

bool virtio_blk_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    VirtioPciOptions po;
    unsigned nq = 1;
    if (!keyval_parse(opts, "driver", blk_params, &kv, errp)) {
        return false;
    }
    VirtIOBlock *blk = xzalloc(sizeof(*blk));
    bool ok = blk_setup(ctx, &kv, blk, &nq, errp) &&
              virtio_pci_parse_options(&kv, nq + 1, &po, errp);
    if (ok) {
        virtio_pci_apply_feature_props(&kv, &blk->vdev);
        ok = virtio_pci_plug(ctx, &kv, "virtio-blk-pci", &blk->vdev, 0x010000, &po, errp);
    }
    keyval_free(&kv);
    if (!ok && blk->bq) {
        main_loop_set_fd_handler(blk_queue_fd(blk->bq), NULL, NULL, NULL);
        blk_queue_free(blk->bq);
    }
    if (!ok) {
        if (blk->img) {
            blk_close(blk->img, NULL);
        }
        free(blk->serial);
        free(blk->vdev.config);
        free(blk->vdev.vq);
        free(blk);
    }
    return ok;
}
