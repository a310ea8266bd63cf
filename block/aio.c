/*
 * Asynchronous requests on an image.
 *
 * The format driver turns each guest request into a plan: one contiguous
 * host I/O (the common case once metadata is cached), a synchronous
 * fallback, or a wait for a request it depends on.  Host I/O goes to
 * io_uring or, without it, to a small pool of threads.  Both signal one
 * eventfd, so an event loop needs to watch a single descriptor.  The
 * caller's callbacks only ever run from blk_queue_process(), never from
 * inside a submission, so callers need not be re-entrant.
 */
#include "block/block-int.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "block/block-stats.h"
#include "block/dirty-bitmap.h"
#include "util/osdep.h"
#include "util/seccomp-hook.h"

#define POOL_MAX_THREADS 16

struct BlockQueue {
    BlockImage *img;
    unsigned depth;
    int efd;                        /* readable when something completed */
    bool use_uring;
    bool force_async;               /* the file has no non-blocking I/O path */
    struct io_uring ring;
    unsigned host_in_flight;        /* host I/Os submitted, not yet reaped */
    unsigned in_flight;             /* caller requests not yet called back */
    unsigned unsubmitted;           /* SQEs prepared but not submitted */
    BlockAioReq *done_head, *done_tail;   /* finished, callback pending */
    BlockAioReq *spare;             /* recycled request structures */
    /* thread pool (used when use_uring is false) */
    pthread_t threads[POOL_MAX_THREADS];
    unsigned nthreads;
    pthread_mutex_t lock;
    pthread_cond_t work_cond;
    pthread_cond_t done_cond;
    BlockAioReq *work_head, *work_tail;
    BlockAioReq *pool_done;         /* finished by a worker, not yet reaped */
    bool stopping;
};

static void signal_efd(BlockQueue *q)
{
    uint64_t one = 1;
    ssize_t n = write(q->efd, &one, sizeof(one));
    (void)n;   /* the counter saturating still leaves it readable */
}

static void push_done(BlockQueue *q, BlockAioReq *req)
{
    req->next = NULL;
    if (q->done_tail) {
        q->done_tail->next = req;
    } else {
        /*
         * Only the first entry of a batch needs the wake-up: the descriptor
         * stays readable until blk_queue_process() reads it, and that read
         * happens before it takes the list, so a later first entry signals
         * again.  One write(2) per completion cost more than the I/O itself
         * on fast files.
         */
        q->done_head = req;
        signal_efd(q);
    }
    q->done_tail = req;
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    return len;
}

/* ---- thread pool ---- */

static void pool_run(BlockQueue *q, BlockAioReq *req)
{
    int fd = req->host_file ? req->host_file->fd : q->img->file.fd;
    ssize_t n;
    do {
        n = req->type == BLK_AIO_READ
            ? preadv(fd, req->iov, req->iovcnt, (off_t)req->host_offset)
            : pwritev(fd, req->iov, req->iovcnt, (off_t)req->host_offset);
    } while (n < 0 && errno == EINTR);
    req->ret = n < 0 ? -errno : (int)MIN((uint64_t)n, (uint64_t)INT32_MAX);
}

static void *pool_worker(void *opaque)
{
    BlockQueue *q = opaque;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->work_head && !q->stopping) {
            pthread_cond_wait(&q->work_cond, &q->lock);
        }
        if (!q->work_head) {
            break;
        }
        seccomp_thread_enter(SANDBOX_BLOCK_WORKER);     /* once the sandbox is on */
        BlockAioReq *req = q->work_head;
        q->work_head = req->next;
        if (!q->work_head) {
            q->work_tail = NULL;
        }
        pthread_mutex_unlock(&q->lock);
        pool_run(q, req);
        pthread_mutex_lock(&q->lock);
        req->next = q->pool_done;
        q->pool_done = req;
        pthread_cond_signal(&q->done_cond);
        signal_efd(q);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void pool_submit(BlockQueue *q, BlockAioReq *req)
{
    pthread_mutex_lock(&q->lock);
    req->next = NULL;
    if (q->work_tail) {
        q->work_tail->next = req;
    } else {
        q->work_head = req;
    }
    q->work_tail = req;
    if (q->nthreads < MIN(q->depth, POOL_MAX_THREADS) &&
        pthread_create(&q->threads[q->nthreads], NULL, pool_worker, q) == 0) {
        q->nthreads++;
    }
    pthread_cond_signal(&q->work_cond);
    pthread_mutex_unlock(&q->lock);
}

/* ---- host I/O completion ---- */

static void host_done(BlockQueue *q, BlockAioReq *req, int res)
{
    q->host_in_flight--;
    if (res >= 0 && (uint64_t)res < req->len) {
        /* Short read: the host file ends inside the range, which reads as zeros. */
        if (req->type == BLK_AIO_READ) {
            size_t skip = (size_t)res;
            for (int i = 0; i < req->iovcnt; i++) {
                size_t l = req->iov[i].iov_len;
                if (skip < l) {
                    memset((uint8_t *)req->iov[i].iov_base + skip, 0, l - skip);
                    skip = 0;
                } else {
                    skip -= l;
                }
            }
            res = 0;
        } else {
            res = -EIO;
        }
    }
    req->ret = res < 0 ? res : 0;
    if (req->commit) {
        req->commit(q->img, req);
    }
    push_done(q, req);
}

static void uring_kick(BlockQueue *q)
{
    if (q->unsubmitted) {
        int r;
        do {
            r = io_uring_submit(&q->ring);
        } while (r == -EINTR);
        q->unsubmitted = 0;
    }
}

/* Reap finished host I/O; with @wait, block until at least one is reaped. */
static int reap(BlockQueue *q, bool wait)
{
    int count = 0;
    if (q->use_uring) {
        struct io_uring_cqe *cqe;
        if (wait && q->host_in_flight && io_uring_peek_cqe(&q->ring, &cqe) != 0) {
            /* Submit what is queued and sleep for a completion in one system call. */
            int r;
            do {
                r = io_uring_submit_and_wait(&q->ring, 1);
            } while (r == -EINTR);
            q->unsubmitted = 0;
            if (r < 0) {
                return 0;
            }
        } else {
            uring_kick(q);
        }
        while (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
            BlockAioReq *req = io_uring_cqe_get_data(cqe);
            int res = cqe->res;
            io_uring_cqe_seen(&q->ring, cqe);
            host_done(q, req, res);
            count++;
        }
        return count;
    }
    pthread_mutex_lock(&q->lock);
    while (wait && !q->pool_done && q->host_in_flight) {
        pthread_cond_wait(&q->done_cond, &q->lock);
    }
    BlockAioReq *list = q->pool_done;
    q->pool_done = NULL;
    pthread_mutex_unlock(&q->lock);
    /* Workers push in LIFO order; completion order does not matter. */
    while (list) {
        BlockAioReq *next = list->next;
        host_done(q, list, list->ret);
        list = next;
        count++;
    }
    return count;
}

static void host_submit(BlockQueue *q, BlockAioReq *req)
{
    q->host_in_flight++;
    if (req->type == BLK_AIO_WRITE) {
        block_stats_file_wrote(req->host_file ? req->host_file->fd : q->img->file.fd,
                               req->host_offset + iov_total(req->iov, req->iovcnt));
    }
    if (!q->use_uring) {
        pool_submit(q, req);
        return;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
    while (!sqe) {
        uring_kick(q);
        sqe = io_uring_get_sqe(&q->ring);
        if (!sqe) {
            reap(q, true);
        }
    }
    int fd = req->host_file ? req->host_file->fd : q->img->file.fd;
    if (req->type == BLK_AIO_READ) {
        io_uring_prep_readv(sqe, fd, req->iov, (unsigned)req->iovcnt, req->host_offset);
    } else {
        io_uring_prep_writev(sqe, fd, req->iov, (unsigned)req->iovcnt, req->host_offset);
    }
    io_uring_sqe_set_data(sqe, req);
    if (q->force_async) {
        io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
    }
    q->unsubmitted++;
    /* Let a burst of submissions share one system call, but never sit on a full SQ. */
    if (q->unsubmitted >= q->depth / 4 + 1) {
        uring_kick(q);
    }
}

/* ---- planning ---- */

/* Do the request with the synchronous driver calls through a bounce buffer. */
static void do_sync(BlockImage *img, BlockAioReq *req)
{
    Error *err = NULL;
    /* Not zeroed: a read fills it before it is copied out and a write's
     * copy covers it, so zeroing was a second pass over up to 1 MiB. */
    uint8_t *buf = NULL;
    size_t size = ROUND_UP(MAX(req->len, 1), BLK_DIRECT_ALIGN);
    if (posix_memalign((void **)&buf, BLK_DIRECT_ALIGN, size)) {
        req->ret = -ENOMEM;
        return;
    }
    int ret;
    if (req->type == BLK_AIO_READ) {
        ret = img->drv->read(img, req->offset, buf, req->len, &err);
        size_t pos = 0;
        for (int i = 0; ret == 0 && i < req->iovcnt; i++) {
            memcpy(req->iov[i].iov_base, buf + pos, req->iov[i].iov_len);
            pos += req->iov[i].iov_len;
        }
    } else if (req->type == BLK_AIO_WRITE) {
        size_t pos = 0;
        for (int i = 0; i < req->iovcnt; i++) {
            memcpy(buf + pos, req->iov[i].iov_base, req->iov[i].iov_len);
            pos += req->iov[i].iov_len;
        }
        ret = img->drv->write(img, req->offset, buf, req->len, &err);
    } else {
        ret = img->drv->flush ? img->drv->flush(img, &err) : bfile_flush(&img->file, &err);
    }
    free(buf);
    if (err) {
        error_free(err);
    }
    req->ret = ret < 0 ? -EIO : 0;
}

static void plan(BlockAioReq *req)
{
    BlockQueue *q = req->queue;
    BlockImage *img = q->img;
    BlockAioPlan p;
    /* A filter file node (blkdebug, quorum) has no descriptor to submit to. */
    if (req->type == BLK_AIO_FLUSH || !img->drv->aio_plan || img->file.ops) {
        blk_aio_quiesce(img);
        do_sync(img, req);
        p = BLK_PLAN_DONE;
    } else {
        p = img->drv->aio_plan(img, req);
        if (p == BLK_PLAN_SYNC) {
            blk_aio_quiesce(img);
            do_sync(img, req);
            p = BLK_PLAN_DONE;
        }
    }
    if (p == BLK_PLAN_DIRECT) {
        host_submit(q, req);
    } else if (p == BLK_PLAN_DONE) {
        push_done(q, req);
    }
}

void blk_aio_replan(BlockAioReq *req)
{
    plan(req);
}

void blk_aio_quiesce(BlockImage *img)
{
    BlockQueue *q = img->queue;
    while (q && q->host_in_flight) {
        reap(q, true);
    }
}

/* ---- public interface ---- */

/*
 * Does the host file lack a non-blocking read path (tmpfs, and some network
 * and FUSE file systems)?  io_uring then cannot issue a request inline: it
 * tries, gets -EAGAIN and hands the request to an io-wq worker anyway.
 * IOSQE_ASYNC sends it there directly, which on tmpfs costs a third less CPU
 * per request.  On files that do support it (ext4, xfs, block devices) the
 * inline path is the fast one, so this must be asked, not assumed.
 * preadv2(RWF_NOWAIT) fails with EOPNOTSUPP exactly when the file lacks
 * FMODE_NOWAIT, the same test io_uring makes.
 */
static bool file_lacks_nowait(int fd)
{
    void *buf = blk_alloc_aligned(BLK_DIRECT_ALIGN);
    struct iovec iov = { buf, BLK_DIRECT_ALIGN };
    bool lacks = preadv2(fd, &iov, 1, 0, RWF_NOWAIT) < 0 && errno == EOPNOTSUPP;
    free(buf);
    return lacks;
}

static BlockQueue *queue_new(BlockImage *img, unsigned depth, bool uring, Error **errp)
{
    if (img->queue) {
        error_setg(errp, "image '%s' already has an I/O queue", img->filename);
        return NULL;
    }
    BlockQueue *q = xzalloc(sizeof(*q));
    q->img = img;
    q->depth = depth ? depth : 1;
    q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->efd < 0) {
        error_setg_errno(errp, errno, "cannot create an eventfd");
        free(q);
        return NULL;
    }
    q->use_uring = uring;
    if (q->use_uring) {
        int r = io_uring_queue_init(MAX(q->depth * 2, 8u), &q->ring, 0);
        if (r < 0) {
            error_setg_errno(errp, -r, "cannot set up io_uring");
            close(q->efd);
            free(q);
            return NULL;
        }
        io_uring_register_eventfd(&q->ring, q->efd);
        q->force_async = file_lacks_nowait(img->file.fd);
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work_cond, NULL);
    pthread_cond_init(&q->done_cond, NULL);
    img->queue = q;
    return q;
}

BlockQueue *blk_queue_new(BlockImage *img, unsigned depth, Error **errp)
{
    return queue_new(img, depth, img->flags & BLK_O_URING, errp);
}

BlockQueue *blk_queue_new_pool(BlockImage *img, unsigned depth, Error **errp)
{
    return queue_new(img, depth, false, errp);
}

void blk_queue_free(BlockQueue *q)
{
    if (!q) {
        return;
    }
    blk_queue_drain(q);
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->work_cond);
    pthread_mutex_unlock(&q->lock);
    for (unsigned i = 0; i < q->nthreads; i++) {
        pthread_join(q->threads[i], NULL);
    }
    if (q->use_uring) {
        io_uring_queue_exit(&q->ring);
    }
    while (q->spare) {
        BlockAioReq *next = q->spare->next;
        free(q->spare);
        q->spare = next;
    }
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->work_cond);
    pthread_cond_destroy(&q->done_cond);
    close(q->efd);
    q->img->queue = NULL;
    free(q);
}

int blk_queue_fd(BlockQueue *q) { return q->efd; }
unsigned blk_queue_in_flight(BlockQueue *q) { return q->in_flight; }

static int submit(BlockQueue *q, int type, uint64_t offset, struct iovec *iov,
                  int iovcnt, BlockCompletionFn *cb, void *opaque)
{
    BlockImage *img = q->img;
    uint64_t len = iov_total(iov, iovcnt);
    if (type != BLK_AIO_FLUSH && !range_within(offset, len, img->size)) {
        return -EINVAL;
    }
    if (type != BLK_AIO_READ && !(img->flags & BLK_O_RDWR)) {
        return -EPERM;
    }
    BlockAioReq *req = q->spare;
    if (req) {
        q->spare = req->next;
    } else {
        req = xmalloc(sizeof(*req));
    }
    if (type == BLK_AIO_WRITE) {
        blk_dirty_bitmaps_mark(img, offset, len);
    }
    *req = (BlockAioReq) {
        .queue = q, .type = type, .offset = offset, .len = len,
        .iov = iov, .iovcnt = iovcnt, .cb = cb, .opaque = opaque,
    };
    q->in_flight++;
    plan(req);
    return 0;
}

int blk_aio_preadv(BlockQueue *q, uint64_t offset, struct iovec *iov, int iovcnt,
                   BlockCompletionFn *cb, void *opaque)
{
    return submit(q, BLK_AIO_READ, offset, iov, iovcnt, cb, opaque);
}

int blk_aio_pwritev(BlockQueue *q, uint64_t offset, struct iovec *iov, int iovcnt,
                    BlockCompletionFn *cb, void *opaque)
{
    return submit(q, BLK_AIO_WRITE, offset, iov, iovcnt, cb, opaque);
}

int blk_aio_flush(BlockQueue *q, BlockCompletionFn *cb, void *opaque)
{
    return submit(q, BLK_AIO_FLUSH, 0, NULL, 0, cb, opaque);
}

void blk_queue_submit(BlockQueue *q)
{
    if (q->use_uring) {
        uring_kick(q);
    }
}

int blk_queue_process(BlockQueue *q, bool wait)
{
    uint64_t cnt;
    ssize_t n = read(q->efd, &cnt, sizeof(cnt));   /* clear the wake-up */
    (void)n;
    reap(q, wait && !q->done_head);
    int called = 0;
    BlockAioReq *list = q->done_head;
    q->done_head = q->done_tail = NULL;
    while (list) {
        BlockAioReq *req = list;
        list = req->next;
        q->in_flight--;
        BlockCompletionFn *cb = req->cb;
        void *opaque = req->opaque;
        int ret = req->ret;
        req->next = q->spare;
        q->spare = req;
        if (cb) {
            cb(opaque, ret);
        }
        called++;
    }
    if (q->use_uring) {
        uring_kick(q);
    }
    return called;
}

void blk_queue_drain(BlockQueue *q)
{
    while (q->in_flight) {
        blk_queue_process(q, true);
    }
}
