/*
 * vireo-img convert and measure.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "tools/img-opts.h"
#include "tools/img.h"
#include "util/osdep.h"

#define CONVERT_CHUNK (2u << 20)
#define CONVERT_SPARSE_MAX (16u << 20)   /* the largest -S qemu-img takes */

typedef struct Convert {
    BlockImage **src;
    int nb_src;
    BlockImage *dst;
    uint64_t total;
    bool compress, fresh_target, skip_unallocated, progress;
    bool full_alloc;         /* -S 0: zeros are written as data, nothing left sparse */
    uint32_t zero_unit;      /* granularity of zero detection on the target */
} Convert;

/* How [off, off+len) of @img reads, looking down its backing chain. */
static int read_status(BlockImage *img, uint64_t off, uint64_t len, bool top_only,
                       BlockStatusKind *kind, uint64_t *n, Error **errp)
{
    BlockStatus st;
    for (BlockImage *i = img; i; i = blk_backing(i)) {
        if (off >= blk_size(i)) {
            *kind = BLK_STATUS_ZERO;
            *n = len;
            return 0;
        }
        if (blk_block_status(i, off, MIN(len, blk_size(i) - off), &st, errp) < 0) {
            return -1;
        }
        len = st.len;
        if (st.kind != BLK_STATUS_UNALLOCATED) {
            *kind = st.kind == BLK_STATUS_ZERO ? BLK_STATUS_ZERO : BLK_STATUS_DATA;
            *n = len;
            return 0;
        }
        if (top_only) {
            break;
        }
    }
    *kind = top_only ? BLK_STATUS_UNALLOCATED : BLK_STATUS_ZERO;
    *n = len;
    return 0;
}

/* Write @len bytes at @off, leaving out zero blocks a fresh target already has. */
static int write_data(Convert *c, uint64_t off, const uint8_t *buf, size_t len, Error **errp)
{
    size_t unit = c->zero_unit;
    size_t pos = 0;
    while (pos < len) {
        size_t n = MIN(unit - (size_t)((off + pos) % unit), len - pos);
        bool zero = buffer_is_zero(buf + pos, n);
        size_t run = n;
        /* Extend the run while blocks have the same zero-ness. */
        while (pos + run < len) {
            size_t m = MIN(unit, len - pos - run);
            if (buffer_is_zero(buf + pos + run, m) != zero) {
                break;
            }
            run += m;
        }
        int ret = 0;
        if (zero && c->full_alloc) {
            ret = blk_pwrite(c->dst, off + pos, buf + pos, run, errp);
        } else if (zero && c->fresh_target) {
            ret = 0;
        } else if (zero) {
            ret = blk_write_zeroes(c->dst, off + pos, run, errp);
        } else if (c->compress) {
            /* The whole run at once, so the driver can compress its clusters in parallel. */
            ret = blk_pwrite_compressed(c->dst, off + pos, buf + pos, run, errp);
        } else {
            ret = blk_pwrite(c->dst, off + pos, buf + pos, run, errp);
        }
        if (ret < 0) {
            return -1;
        }
        pos += run;
    }
    return 0;
}

static void show_progress(Convert *c, uint64_t done)
{
    if (c->progress) {
        printf("    (%.2f/100%%)\r", c->total ? done * 100.0 / c->total : 100.0);
        fflush(stdout);
    }
}

/*
 * Reading the sources and writing the target overlap: a reader thread fills
 * a few chunk buffers ahead while the main thread writes.  On a fast host
 * file both halves are kernel copies of the same size, so a serial loop
 * leaves one CPU idle while the other does both.  The two sides touch
 * disjoint images (sources vs target), so the block layer needs no locks.
 */
#define CONVERT_SLOTS 3

typedef struct Chunk {
    uint64_t off, len;          /* target range */
    BlockStatusKind kind;       /* DATA (bytes in buf), ZERO or UNALLOCATED */
    uint8_t *buf;
} Chunk;

typedef struct Reader {
    Convert *c;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    Chunk slots[CONVERT_SLOTS];
    uint64_t produced, consumed;    /* slot i % CONVERT_SLOTS belongs to the reader
                                       while consumed <= i < consumed + SLOTS and i >= produced */
    bool done, stop;
    Error *err;
} Reader;

/*
 * Compressed clusters are written whole, so with -c every chunk must end on a
 * target cluster boundary (or at the end of the image).  A status run that
 * ends inside a cluster is cut back to the last boundary; one shorter than
 * the rest of its cluster becomes data for the whole cluster, read back as
 * whatever the source holds there (zeros for a hole).
 */
static void align_to_clusters(const Convert *c, uint64_t off, uint64_t end_of_source,
                              BlockStatusKind *kind, uint64_t *n)
{
    uint64_t cs = c->zero_unit;
    uint64_t end = off + *n;
    if (end == end_of_source || end % cs == 0) {
        return;
    }
    uint64_t down = end - end % cs;
    if (down > off) {
        *n = down - off;
    } else {
        *n = MIN(down + cs, end_of_source) - off;
        *kind = BLK_STATUS_DATA;
    }
}

static void *reader_main(void *opaque)
{
    Reader *r = opaque;
    Convert *c = r->c;
    Error *err = NULL;
    uint64_t base = 0;
    for (int i = 0; i < c->nb_src && !err; i++) {
        BlockImage *src = c->src[i];
        uint64_t size = blk_size(src);
        for (uint64_t off = 0; off < size;) {
            pthread_mutex_lock(&r->lock);
            while (r->produced - r->consumed == CONVERT_SLOTS && !r->stop) {
                pthread_cond_wait(&r->cond, &r->lock);
            }
            bool stop = r->stop;
            pthread_mutex_unlock(&r->lock);
            if (stop) {
                goto out;
            }
            Chunk *ch = &r->slots[r->produced % CONVERT_SLOTS];
            uint64_t want = MIN((uint64_t)CONVERT_CHUNK - (off % CONVERT_CHUNK), size - off);
            uint64_t n;
            if (read_status(src, off, want, c->skip_unallocated, &ch->kind, &n, &err) < 0) {
                goto out;
            }
            if (c->compress) {
                align_to_clusters(c, base + off, base + size, &ch->kind, &n);
            }
            if ((ch->kind == BLK_STATUS_DATA && blk_pread(src, off, ch->buf, n, &err) < 0)) {
                goto out;
            }
            ch->off = base + off;
            ch->len = n;
            pthread_mutex_lock(&r->lock);
            r->produced++;
            pthread_cond_broadcast(&r->cond);
            pthread_mutex_unlock(&r->lock);
            off += n;
        }
        base += size;
    }
out:
    pthread_mutex_lock(&r->lock);
    r->err = err;
    r->done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static int write_chunk(Convert *c, const Chunk *ch, Error **errp)
{
    if (ch->kind == BLK_STATUS_UNALLOCATED) {
        return 0;       /* left to the target's backing file */
    }
    if (ch->kind == BLK_STATUS_ZERO && c->full_alloc) {
        memset(ch->buf, 0, ch->len);
        return write_data(c, ch->off, ch->buf, ch->len, errp);
    }
    if (ch->kind == BLK_STATUS_ZERO) {
        return c->fresh_target ? 0 : blk_write_zeroes(c->dst, ch->off, ch->len, errp);
    }
    return write_data(c, ch->off, ch->buf, ch->len, errp);
}

static int copy_sources(Convert *c, Error **errp)
{
    Reader r = { .c = c };
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    for (int i = 0; i < CONVERT_SLOTS; i++) {
        r.slots[i].buf = blk_alloc_aligned(CONVERT_CHUNK);
    }
    pthread_t tid;
    Error *werr = NULL;
    int perr = pthread_create(&tid, NULL, reader_main, &r);
    bool threaded = perr == 0;
    if (!threaded) {
        error_setg_errno(&werr, perr, "cannot start the reader thread");
        r.done = true;
    }
    for (;;) {
        pthread_mutex_lock(&r.lock);
        while (r.consumed == r.produced && !r.done) {
            pthread_cond_wait(&r.cond, &r.lock);
        }
        bool empty = r.consumed == r.produced;
        pthread_mutex_unlock(&r.lock);
        if (empty) {
            break;      /* the reader finished (or failed) and everything is written */
        }
        const Chunk *ch = &r.slots[r.consumed % CONVERT_SLOTS];
        if (write_chunk(c, ch, &werr) < 0) {
            break;
        }
        show_progress(c, ch->off + ch->len);
        pthread_mutex_lock(&r.lock);
        r.consumed++;
        pthread_cond_broadcast(&r.cond);
        pthread_mutex_unlock(&r.lock);
    }
    pthread_mutex_lock(&r.lock);
    r.stop = true;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.lock);
    if (threaded) {
        pthread_join(tid, NULL);
    }
    for (int i = 0; i < CONVERT_SLOTS; i++) {
        free(r.slots[i].buf);
    }
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.cond);
    /* The first failure in target order: a write error precedes later read errors. */
    if (werr) {
        error_free(r.err);
        error_propagate(errp, werr);
        return -1;
    }
    if (r.err) {
        error_propagate(errp, r.err);
        return -1;
    }
    return 0;
}

/*
 * -S SIZE: the shortest run of zeros left unwritten in the target; 0 asks
 * for a fully allocated target.  Runs are detected per target cluster (per
 * 4 KiB on raw) whatever the size, so only 0 changes what is written.
 */
static bool parse_sparse_size(const char *arg, Convert *c)
{
    uint64_t n;
    if (img_parse_size(arg, &n) < 0) {
        img_error("Invalid buffer size for sparse output specified. You may use k, M, G, "
                  "T, P or E suffixes for\n");
        img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.\n");
        return false;
    }
    if (n % 512 || n > CONVERT_SPARSE_MAX) {
        img_error("Invalid buffer size for sparse output specified. Valid sizes are "
                  "multiples of 512 up to %u. Select 0 to disable sparse detection "
                  "(fully allocates output).\n", CONVERT_SPARSE_MAX);
        return false;
    }
    c->full_alloc = n == 0;
    return true;
}

/*
 * Create the target from the -o list (checked against @out_fmt's options
 * and the host file's), -B and -F winning over backing_file/backing_fmt.
 * Returns false with the message printed.
 */
static bool create_target(Convert *c, const char *out_name, const char *out_fmt,
                          const char *options, const char **backing, const char *backing_fmt)
{
    ImgOptSet set;
    Error *err = NULL;
    if (!img_create_optset(out_fmt, true, NULL, &set)) {
        return false;
    }
    bool ok = false;
    if (options && !img_optset_parse(&set, options, &err)) {
        img_report_err(err);
        goto out;
    }
    if ((*backing && !img_optset_set(&set, "backing_file", *backing, &err)) ||
        (backing_fmt && !img_optset_set(&set, "backing_fmt", backing_fmt, &err))) {
        img_error("Backing file not supported for file format '%s'\n", out_fmt);
        error_free(err);
        goto out;
    }
    *backing = img_optset_get(&set, "backing_file");
    char *size = xasprintf("%" PRIu64, c->total);
    img_optset_set(&set, "size", size, NULL);
    free(size);
    if (*backing && !img_optset_get(&set, "backing_fmt")) {
        char *path = blk_backing_path(out_name, *backing);
        BlockImage *b = img_open(path, NULL, BLK_O_NO_BACKING);
        free(path);
        if (!b) {
            goto out;
        }
        img_optset_set(&set, "backing_fmt", blk_format(b), NULL);
        blk_close(b, NULL);
    }
    BlockCreateOptions o = { .format = out_fmt };
    if (!img_optset_to_create(&set, &o, &err) || blk_create(out_name, &o, &err) < 0) {
        img_error("%s: error while converting %s: %s\n", out_name, out_fmt,
                  error_get_pretty(err));
        error_free(err);
        goto out;
    }
    /* The name stays valid for the caller: it only tests whether there is one. */
    *backing = *backing ? "" : NULL;
    ok = true;
out:
    img_optset_free(&set);
    return ok;
}

int img_convert(int argc, char **argv)
{
    const char *fmt = NULL, *out_fmt = "raw", *backing = NULL, *backing_fmt = NULL;
    char *options = NULL;
    bool no_create = false, quiet = false, copy_offload = false, salvage = false;
    bool sparse_given = false;
    Convert c = { .zero_unit = 4096 };
    int ch, ret = 1;
    enum { OPT_SALVAGE = 512 };
    static const struct option longopts[] = {
        { "force-share", no_argument, NULL, 'U' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "salvage", no_argument, NULL, OPT_SALVAGE },
        { NULL, 0, NULL, 0 },
    };
    while ((ch = getopt_long(argc, argv, "f:O:B:F:o:cCpqnhS:Wm:t:T:U", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f': fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'B': backing = optarg; break;
        case 'F': backing_fmt = optarg; break;
        case 'c': c.compress = true; break;
        case 'C': copy_offload = true; break;
        case 'p': c.progress = true; break;
        case 'q': quiet = true; break;
        case 'n': no_create = true; break;
        case OPT_SALVAGE: salvage = true; break;
        case 'S':
            if (!parse_sparse_size(optarg, &c)) {
                goto out_opts;
            }
            sparse_given = true;
            break;
        case 'W': case 'm': case 't': case 'T': case 'U': break;
        case OPT_OBJECT:
            if (!img_add_object(optarg)) {
                goto out_opts;
            }
            break;
        case 'o':
            if (!img_opts_list_valid(optarg)) {
                img_error("Invalid option list: %s\n", optarg);
                goto out_opts;
            }
            img_opts_accumulate(&options, optarg);
            break;
        default: goto out_opts;
        }
    }
    c.progress &= !quiet;
    if (copy_offload && (c.compress || sparse_given || salvage)) {
        img_error(salvage && !c.compress && !sparse_given
                  ? "Cannot use copy offloading in salvaging mode\n"
                  : "Cannot enable copy offloading when -%c is used\n",
                  c.compress ? 'c' : 'S');
        goto out_opts;
    }
    c.nb_src = argc - optind - 1;
    const char *out_name = c.nb_src >= 1 ? argv[argc - 1] : NULL;
    if (options && img_opts_help_requested(options)) {
        ret = img_print_create_help(out_name, out_fmt);
        goto out_opts;
    }
    if (c.nb_src < 1) {
        img_error("Must specify image file name\n");
        goto out_opts;
    }
    if (copy_offload || salvage) {
        /* Neither is implemented: refuse rather than quietly copy another way. */
        img_error("%s is not supported by this program\n",
                  copy_offload ? "Copy offloading (-C)" : "Salvaging (--salvage)");
        goto out_opts;
    }
    c.src = xzalloc(sizeof(BlockImage *) * (size_t)c.nb_src);
    Error *err = NULL;
    for (int i = 0; i < c.nb_src; i++) {
        c.src[i] = img_open(argv[optind + i], fmt, 0);
        if (!c.src[i]) {
            goto out;
        }
        c.total += blk_size(c.src[i]);
    }
    if (c.compress && strcmp(out_fmt, "qcow2")) {
        img_error("Compression not supported for this file format\n");
        goto out;
    }
    if (!no_create && !create_target(&c, out_name, out_fmt, options, &backing, backing_fmt)) {
        goto out;
    }
    /* Like qemu-img, convert writes with cache=unsafe: no waiting for the disk. */
    c.dst = img_open(out_name, no_create ? NULL : out_fmt, BLK_O_RDWR | BLK_O_UNSAFE);
    if (!c.dst) {
        goto out;
    }
    c.fresh_target = !no_create;
    c.skip_unallocated = backing != NULL;
    if (strcmp(blk_format(c.dst), "raw")) {
        c.zero_unit = blk_cluster_size(c.dst);
    }
    if (c.compress && blk_cluster_size(c.dst) > CONVERT_CHUNK) {
        img_error("cluster size too large for compression\n");
        goto out;
    }
    ret = 0;
    if (copy_sources(&c, &err) < 0) {
        img_error("error while converting: %s\n", error_get_pretty(err));
        error_free(err);
        err = NULL;
        ret = 1;
    }
    if (c.progress && ret == 0) {
        printf("    (100.00/100%%)\n");
    }
out:
    if (c.dst && blk_close(c.dst, &err) < 0) {
        img_report_err(err);
        ret = 1;
    }
    for (int i = 0; i < c.nb_src; i++) {
        blk_close(c.src[i], NULL);
    }
    free(c.src);
out_opts:
    free(options);
    return ret;
}

/* ---- measure ---- */

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* Clusters of refcount table and blocks to cover @clusters plus themselves. */
static uint64_t refcount_meta_bytes(uint64_t clusters, uint64_t cs, int refcount_order)
{
    uint64_t per_table_cluster = cs / 8;
    uint64_t per_block = cs * 8 >> refcount_order;
    uint64_t table = 0, blocks = 0, n = 0, last;
    bool generous = true;
    do {
        last = n;
        blocks = div_round_up(clusters + table + blocks, per_block);
        table = div_round_up(blocks, per_table_cluster);
        n = clusters + blocks + table;
        if (n == last && generous) {
            /* Leave room for the table to grow by half without relocating. */
            clusters += div_round_up(table, 2);
            n = 0;
            generous = false;
        }
    } while (n != last);
    return (blocks + table) * cs;
}

/* @l2_entry_size: 8, or 16 with extended L2 entries (tables cover half as much). */
static uint64_t qcow2_full_size(uint64_t size, uint64_t cs, int refcount_order,
                                uint64_t l2_entry_size)
{
    uint64_t aligned = ROUND_UP(size, cs);
    uint64_t meta = cs;                                    /* header */
    uint64_t l2e = ROUND_UP(aligned / cs, cs / l2_entry_size);
    meta += l2e * l2_entry_size;                           /* L2 tables */
    uint64_t l1e = ROUND_UP(l2e * l2_entry_size / cs, cs / 8);
    meta += l1e * 8;                                       /* L1 table */
    meta += refcount_meta_bytes(div_round_up(aligned + meta, cs), cs, refcount_order);
    return meta + aligned;
}

static uint64_t bitmaps_size(BlockImage *img, uint64_t cs)
{
    BlockFormatInfo fi;
    uint64_t total = 0, dir = 0;
    if (blk_get_info(img, &fi, NULL) < 0) {
        return 0;
    }
    for (int i = 0; i < fi.nb_bitmaps; i++) {
        uint64_t bits = div_round_up(blk_size(img), fi.bitmaps[i].granularity);
        uint64_t clusters = div_round_up(div_round_up(bits, 8), cs);
        total += clusters * cs + ROUND_UP(clusters * 8, cs);
        dir += ROUND_UP(24 + strlen(fi.bitmaps[i].name), 8);
    }
    total += ROUND_UP(dir, cs);
    blk_free_info(&fi);
    return total;
}

/*
 * The -o list (all of them, joined) against @out_fmt's creation options,
 * as create checks it; the result in @o. False with the message printed.
 */
static bool measure_options(const char *out_fmt, const char *options, BlockCreateOptions *o,
                            bool *has_backing)
{
    ImgOptSet set;
    Error *err = NULL;
    if (!img_create_optset(out_fmt, true, NULL, &set)) {
        return false;
    }
    o->format = out_fmt;
    bool ok = !options || img_optset_parse(&set, options, &err);
    if (!ok) {
        img_report_err(err);
        img_error("Invalid options for file format '%s'\n", out_fmt);
    } else if (!img_optset_to_create(&set, o, &err)) {
        img_report_err(err);
        ok = false;
    }
    img_optset_free(&set);
    *has_backing = o->backing_file != NULL;
    /* Only the numbers count here; the names pointed into the set. */
    o->backing_file = o->backing_fmt = o->data_file = NULL;
    o->luks = (BlockLuksOptions){ 0 };
    return ok;
}

/* What a qcow2 image with @o and @virt bytes could not be: false with the message printed. */
static bool measure_qcow2_possible(const BlockCreateOptions *o, uint64_t virt)
{
    uint64_t cs = o->cluster_size ? o->cluster_size : 65536;
    int rb = o->refcount_bits ? o->refcount_bits : 16;
    const char *why = NULL;
    if (!is_power_of_2(cs) || cs < (1u << QCOW2_MIN_CLUSTER_BITS) ||
        cs > (1u << QCOW2_MAX_CLUSTER_BITS)) {
        why = "Cluster size must be a power of two between 512 and 2048k";
    } else if (rb < 1 || rb > 64 || !is_power_of_2((uint64_t)rb)) {
        why = "Refcount width must be a power of two and may not exceed 64 bits";
    } else if (o->compat == 2 && rb != 16) {
        why = "Different refcount widths than 16 bits require compatibility level 1.1 or "
              "above (use compat=1.1 or greater)";
    } else if (o->extended_l2 && cs < (1u << QCOW2_EXTL2_MIN_CLUSTER_BITS)) {
        why = "Extended L2 entries are only supported with cluster sizes of at least 16384 "
              "bytes";
    } else {
        uint64_t span = cs / (o->extended_l2 ? 16 : 8) * cs;
        if (div_round_up(virt, span) * 8 > QCOW2_MAX_L1_BYTES) {
            why = "The image size is too large (try using a larger cluster size)";
        }
    }
    if (why) {
        img_error("%s\n", why);
    }
    return !why;
}

int img_measure(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 256 },
        { "size", required_argument, NULL, 257 },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *out_fmt = "raw";
    char *options = NULL;
    BlockCreateOptions o = { 0 };
    bool json = false, has_size = false;
    uint64_t size = 0;
    Error *err = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "f:O:o:hU", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f': fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'U': break;
        case 'o':
            if (!img_opts_list_valid(optarg)) {
                free(options);
                return 1;
            }
            img_opts_accumulate(&options, optarg);
            break;
        case 256: json = !strcmp(optarg, "json"); break;
        case 257:
            if (!parse_size(optarg, &size, &err)) {
                img_error("Invalid size specified\n");
                error_free(err);
                free(options);
                return 1;
            }
            has_size = true;
            break;
        default:
            free(options);
            return 1;
        }
    }
    bool has_backing = false;
    bool opts_ok = measure_options(out_fmt, options, &o, &has_backing);
    free(options);
    if (!opts_ok) {
        return 1;
    }
    if (has_size == (optind < argc)) {
        img_error("Either --size N or one filename must be specified.\n");
        return 1;
    }
    BlockImage *img = has_size ? NULL : img_open(argv[optind], fmt, 0);
    if (!has_size && !img) {
        return 1;
    }
    bool qcow2 = !strcmp(out_fmt, "qcow2");
    if (qcow2 && !measure_qcow2_possible(&o, img ? blk_size(img) : size)) {
        blk_close(img, NULL);
        return 1;
    }
    uint64_t cs = o.cluster_size ? o.cluster_size : 65536;
    int order = __builtin_ctz(o.refcount_bits ? (unsigned)o.refcount_bits : 16u);
    uint64_t virt = img ? blk_size(img) : size;
    uint64_t data = 0, bitmaps = 0;
    for (uint64_t off = 0; img && !has_backing && off < virt;) {
        BlockStatusKind kind;
        uint64_t n;
        if (read_status(img, off, virt - off, false, &kind, &n, &err) < 0) {
            img_report_err(err);
            blk_close(img, NULL);
            return 1;
        }
        if (kind == BLK_STATUS_DATA) {
            uint64_t unit = qcow2 ? cs : 1;
            data += ROUND_UP(off + n, unit) - (off / unit * unit);
            n = ROUND_UP(off + n, unit) - off;
        }
        off += n;
    }
    if (!img) {
        data = qcow2 ? 0 : virt;   /* a new image holds no data yet */
    } else if (has_backing) {
        /*
         * The new image's backing file may share nothing with the source:
         * count every cluster as written, as qemu-img does.
         */
        data = ROUND_UP(virt, cs);
    }
    uint64_t full = qcow2 ? qcow2_full_size(virt, cs, order, o.extended_l2 ? 16 : 8) : virt;
    uint64_t required = qcow2 ? full - ROUND_UP(virt, cs) + MIN(data, ROUND_UP(virt, cs))
                              : virt;
    bool has_bitmaps = qcow2 && img && o.compat != 2 && !strcmp(blk_format(img), "qcow2");
    if (has_bitmaps) {
        bitmaps = bitmaps_size(img, cs);
    }
    if (json) {
        json_object *j = json_object_new_object();
        if (has_bitmaps) {
            json_object_object_add(j, "bitmaps", json_object_new_int64((int64_t)bitmaps));
        }
        json_object_object_add(j, "required", json_object_new_int64((int64_t)required));
        json_object_object_add(j, "fully-allocated", json_object_new_int64((int64_t)full));
        img_json_print(j);
        json_object_put(j);
    } else {
        printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n", required, full);
        if (has_bitmaps) {
            printf("bitmaps size: %" PRIu64 "\n", bitmaps);
        }
    }
    blk_close(img, NULL);
    return 0;
}
