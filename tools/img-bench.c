/*
 * vireo-img bench: keep N requests in flight on an image through the
 * block layer's asynchronous queue and time the run.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/img.h"
#include "util/osdep.h"

typedef struct Bench {
    BlockQueue *q;
    uint64_t image_size, bufsize, step, offset;
    uint64_t count, submitted, completed;
    bool write;
    int failed;
    uint8_t *bufs;
    struct iovec *iovs;
    unsigned depth;
    uint64_t flush_interval;     /* flush after this many completed requests, 0: never */
    uint64_t since_flush;
    bool log;                    /* VIREO_BENCH_LOG: report completions and flushes */
} Bench;

static void submit_next(Bench *b, unsigned slot);

typedef struct Slot {
    Bench *bench;
    unsigned index;
    uint64_t offset;
} Slot;

static void flush_done(void *opaque, int ret)
{
    Bench *b = opaque;
    if (ret < 0) {
        b->failed = ret;
    } else if (b->log) {
        fprintf(stderr, "flushed\n");
    }
}

static void slot_done(void *opaque, int ret)
{
    Slot *s = opaque;
    Bench *b = s->bench;
    b->completed++;
    if (ret < 0) {
        b->failed = ret;
    }
    if (b->log && ret == 0) {
        fprintf(stderr, "done %" PRIu64 "\n", s->offset);
    }
    if (b->flush_interval && ++b->since_flush >= b->flush_interval) {
        b->since_flush = 0;
        blk_aio_flush(b->q, flush_done, b);
    }
    if (b->submitted < b->count && !b->failed) {
        submit_next(b, s->index);
    }
}

static Slot *slots;

static void submit_next(Bench *b, unsigned slot)
{
    uint64_t off = b->offset;
    b->offset += b->step;
    /*
     * qemu-img 7.2 wraps at the image size: each lap starts at 0 again (a
     * stride that ends a request past the end fails it, as there).
     */
    b->offset = b->image_size ? b->offset % b->image_size : 0;
    b->submitted++;
    slots[slot].offset = off;
    int r = b->write ? blk_aio_pwritev(b->q, off, &b->iovs[slot], 1, slot_done, &slots[slot])
                     : blk_aio_preadv(b->q, off, &b->iovs[slot], 1, slot_done, &slots[slot]);
    if (r < 0) {
        b->failed = r == -EINVAL ? -EIO : r;   /* past the end: qemu-img's EIO */
        b->completed++;
    }
}

int img_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "pattern", required_argument, NULL, 256 },
        { "no-drain", no_argument, NULL, 257 },
        { "flush-interval", required_argument, NULL, 258 },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    Bench b = { .count = 75000, .depth = 64, .bufsize = 4096 };
    int pattern = 0xa5, ch;
    unsigned flags = 0;
    bool quiet = false, step_set = false;
    Error *err = NULL;
    while ((ch = getopt_long(argc, argv, "c:d:f:ni:o:qs:S:t:wU", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': b.count = strtoull(optarg, NULL, 10); break;
        case 'd': b.depth = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'f': fmt = optarg; break;
        case 'n': flags |= BLK_O_URING; break;
        case 'i':
            if (!strcmp(optarg, "io_uring") || !strcmp(optarg, "native")) {
                flags |= BLK_O_URING;
            } else if (strcmp(optarg, "threads")) {
                img_error("Invalid aio option: %s\n", optarg);
                return 1;
            }
            break;
        case 'o':
            if (!parse_size(optarg, &b.offset, &err)) {
                goto bad_size;
            }
            break;
        case 'q': quiet = true; break;
        case 's':
            if (!parse_size(optarg, &b.bufsize, &err) || !b.bufsize) {
                goto bad_size;
            }
            break;
        case 'S':
            if (!parse_size(optarg, &b.step, &err)) {
                goto bad_size;
            }
            step_set = true;
            break;
        case 't':
            if (!strcmp(optarg, "none") || !strcmp(optarg, "directsync")) {
                flags |= BLK_O_NOCACHE;
            } else if (strcmp(optarg, "writeback") && strcmp(optarg, "unsafe") &&
                       strcmp(optarg, "writethrough")) {
                img_error("Invalid cache mode\n");
                return 1;
            }
            break;
        case 'w': b.write = true; flags |= BLK_O_RDWR; break;
        case 'U': break;
        case 256: pattern = (int)strtol(optarg, NULL, 0); break;
        case 257: break;
        case 258: b.flush_interval = strtoull(optarg, NULL, 10); break;
        default: return 1;
        }
    }
    if (optind != argc - 1 || b.depth == 0 || b.bufsize > (256u << 20)) {
        img_error("Expecting one image file name (and a sane depth/size)\n");
        return 1;
    }
    b.log = getenv("VIREO_BENCH_LOG") != NULL;
    if (!step_set) {
        b.step = b.bufsize;
    }
    BlockImage *img = img_open(argv[optind], fmt, flags);
    if (!img) {
        return 1;
    }
    b.image_size = blk_size(img);
    b.q = blk_queue_new(img, b.depth, &err);
    if (!b.q) {
        img_report_err(err);
        blk_close(img, NULL);
        return 1;
    }
    size_t bufsize = ROUND_UP(b.bufsize, 4096);
    b.bufs = blk_alloc_aligned(bufsize * b.depth);
    memset(b.bufs, pattern, bufsize * b.depth);
    b.iovs = xmalloc(sizeof(struct iovec) * b.depth);
    slots = xmalloc(sizeof(Slot) * b.depth);
    for (unsigned i = 0; i < b.depth; i++) {
        b.iovs[i] = (struct iovec) { b.bufs + i * bufsize, b.bufsize };
        slots[i] = (Slot) { &b, i };
    }
    if (!quiet) {
        printf("Sending %" PRIu64 " %s requests, %" PRIu64 " bytes each, %u in parallel "
               "(starting at offset %" PRIu64 ", step size %" PRIu64 ")\n", b.count,
               b.write ? "write" : "read", b.bufsize, b.depth, b.offset, b.step);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < b.depth && b.submitted < b.count; i++) {
        submit_next(&b, i);
    }
    while (b.completed < b.submitted || blk_queue_in_flight(b.q)) {
        blk_queue_process(b.q, true);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!quiet) {
        printf("Run completed in %3.3f seconds.\n", secs);
    }
    blk_queue_free(b.q);
    int ret = 0;
    if (b.failed) {
        img_error("Failed request: %s\n", strerror(-b.failed));
        ret = 1;
    }
    if (blk_close(img, &err) < 0) {
        img_report_err(err);
        ret = 1;
    }
    free(b.bufs);
    free(b.iovs);
    free(slots);
    return ret;

bad_size:
    img_error("%s\n", error_get_pretty(err));
    error_free(err);
    return 1;
}
