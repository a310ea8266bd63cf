/*
 * vireo-img: create, inspect, check, convert and benchmark disk images,
 * with qemu-img's command line, output and exit statuses.
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

/* ---- check ---- */

static void check_human(const BlockCheckResult *r)
{
    if (!r->corruptions && !r->leaks && !r->check_errors) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            printf("\n%" PRId64 " errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may corrupt it.\n",
                   r->corruptions);
        }
        if (r->leaks) {
            printf("\n%" PRId64 " leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n", r->leaks);
        }
        if (r->check_errors) {
            printf("\n%" PRId64 " internal errors have occurred during the check.\n",
                   r->check_errors);
        }
    }
    if (r->total_clusters && r->allocated_clusters) {
        printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, "
               "%0.2f%% compressed clusters\n", r->allocated_clusters, r->total_clusters,
               r->allocated_clusters * 100.0 / r->total_clusters,
               r->fragmented_clusters * 100.0 / r->allocated_clusters,
               r->compressed_clusters * 100.0 / r->allocated_clusters);
    }
    if (r->image_end_offset) {
        printf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
    }
}

static void add_nonzero(json_object *o, const char *key, int64_t v)
{
    if (v) {
        json_object_object_add(o, key, json_object_new_int64(v));
    }
}

static void check_json(BlockImage *img, const BlockCheckResult *r)
{
    json_object *o = json_object_new_object();
    if (r->image_end_offset) {
        json_object_object_add(o, "image-end-offset",
                               json_object_new_int64((int64_t)r->image_end_offset));
    }
    add_nonzero(o, "corruptions", r->corruptions);
    add_nonzero(o, "leaks", r->leaks);
    add_nonzero(o, "corruptions-fixed", r->corruptions_fixed);
    add_nonzero(o, "leaks-fixed", r->leaks_fixed);
    if (r->total_clusters) {
        json_object_object_add(o, "total-clusters",
                               json_object_new_int64((int64_t)r->total_clusters));
    }
    json_object_object_add(o, "check-errors", json_object_new_int64(r->check_errors));
    add_nonzero(o, "allocated-clusters", (int64_t)r->allocated_clusters);
    add_nonzero(o, "fragmented-clusters", (int64_t)r->fragmented_clusters);
    add_nonzero(o, "compressed-clusters", (int64_t)r->compressed_clusters);
    json_object_object_add(o, "filename", json_object_new_string(blk_filename(img)));
    json_object_object_add(o, "format", json_object_new_string(blk_format(img)));
    img_json_print(o);
    json_object_put(o);
}

static int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    bool json = false, quiet = false;
    int fix = 0, c;
    while ((c = getopt_long(argc, argv, "f:r:hqU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'q': quiet = true; break;
        case 'U': break;
        case 'r':
            if (!strcmp(optarg, "leaks")) {
                fix = BLK_FIX_LEAKS;
            } else if (!strcmp(optarg, "all")) {
                fix = BLK_FIX_LEAKS | BLK_FIX_ERRORS;
            } else {
                img_error("Unknown option value for -r (expecting 'leaks' "
                        "or 'all'): %s\n", optarg);
                return 1;
            }
            break;
        case OPT_OUTPUT:
            if (!img_parse_output(optarg, &json)) {
                return 1;
            }
            break;
        default: return 1;
        }
    }
    if (!img_one_image_name(argc)) {
        return 1;
    }
    BlockImage *img = img_open(argv[optind], fmt,
                               BLK_O_NO_BACKING | BLK_O_CHECK | BLK_O_NO_BITMAPS |
                               (fix ? BLK_O_RDWR : 0));
    if (!img) {
        return 1;
    }
    BlockCheckResult r;
    Error *err = NULL;
    if (blk_check(img, &r, fix, &err) < 0) {
        bool unsupported = strstr(error_get_pretty(err), "does not support checks") != NULL;
        img_error("%s\n", unsupported
                ? "This image format does not support checks" : error_get_pretty(err));
        error_free(err);
        blk_close(img, NULL);
        return unsupported ? 63 : 1;
    }
    if (r.leaks_fixed || r.corruptions_fixed) {
        if (!json && !quiet) {
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %" PRId64 " leaked clusters\n    %" PRId64 " corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   r.leaks_fixed, r.corruptions_fixed);
        }
        BlockCheckResult again;
        if (blk_check(img, &again, 0, &err) < 0) {
            img_report_err(err);
            blk_close(img, NULL);
            return 1;
        }
        again.leaks_fixed = r.leaks_fixed;
        again.corruptions_fixed = r.corruptions_fixed;
        r = again;
    }
    if (json) {
        check_json(img, &r);
    } else if (!quiet) {
        check_human(&r);
    }
    if (blk_close(img, &err) < 0) {
        img_report_err(err);
        return 1;
    }
    if (r.check_errors) {
        return 1;
    }
    return r.corruptions ? 2 : r.leaks ? 3 : 0;
}

/* ---- map ---- */

typedef struct MapEntry {
    uint64_t start, length;
    int depth;
    bool present, zero, data;
    uint64_t offset;
    bool has_offset;
    const char *filename;
} MapEntry;

/* Status at @off looking down the chain: which image holds it and how. */
static int chain_status(BlockImage *top, uint64_t off, uint64_t len, MapEntry *e)
{
    Error *err = NULL;
    int depth = 0;
    BlockImage *img = top;
    for (;;) {
        BlockStatus st;
        if (off >= blk_size(img)) {
            *e = (MapEntry) { .start = off, .length = len, .depth = depth, .zero = true,
                              .present = depth > 0 ? false : false };
            return 0;
        }
        uint64_t l = MIN(len, blk_size(img) - off);
        if (blk_block_status(img, off, l, &st, &err) < 0) {
            img_report_err(err);
            return -1;
        }
        len = st.len;
        *e = (MapEntry) { .start = off, .length = len, .depth = depth,
                          .filename = blk_filename(img) };
        switch (st.kind) {
        case BLK_STATUS_DATA:
            e->present = e->data = e->has_offset = true;
            e->offset = st.host_offset;
            return 0;
        case BLK_STATUS_COMPRESSED:
            e->present = e->data = true;
            return 0;
        case BLK_STATUS_ZERO:
            e->present = e->zero = true;
            if (!strcmp(blk_format(img), "raw") || st.offset_valid) {
                e->has_offset = true;
                e->offset = st.host_offset;
            }
            return 0;
        case BLK_STATUS_UNALLOCATED:
            if (!blk_backing(img)) {
                e->zero = true;
                /* Subclusters not yet written in a host cluster: qemu-img shows where. */
                e->has_offset = st.offset_valid;
                e->offset = st.host_offset;
                return 0;
            }
            img = blk_backing(img);
            depth++;
        }
    }
}

static bool mergeable(const MapEntry *a, const MapEntry *b)
{
    return a->depth == b->depth && a->present == b->present && a->zero == b->zero &&
           a->data == b->data && a->has_offset == b->has_offset &&
           (!a->has_offset || a->offset + a->length == b->offset) &&
           a->filename == b->filename;
}

static void print_map_entry(const MapEntry *e, bool json, bool first)
{
    if (json) {
        printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d, "
               "\"present\": %s, \"zero\": %s, \"data\": %s", first ? "[" : ",\n",
               e->start, e->length, e->depth, e->present ? "true" : "false",
               e->zero ? "true" : "false", e->data ? "true" : "false");
        if (e->has_offset) {
            printf(", \"offset\": %" PRIu64, e->offset);
        }
        printf("}");
    } else if (e->data && e->has_offset) {
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start, e->length,
               e->offset, e->filename);
    }
}

static int cmd_map(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "f:hU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'U': break;
        case OPT_OUTPUT:
            if (!img_parse_output(optarg, &json)) {
                return 1;
            }
            break;
        default: return 1;
        }
    }
    if (!img_one_image_name(argc)) {
        return 1;
    }
    BlockImage *img = img_open(argv[optind], fmt, 0);
    if (!img) {
        return 1;
    }
    if (!json) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    }
    MapEntry cur = { 0 };
    bool have = false, first = true;
    int ret = 0;
    for (uint64_t off = 0; off < blk_size(img);) {
        MapEntry e;
        if (chain_status(img, off, MIN(blk_size(img) - off, (uint64_t)1 << 30), &e) < 0) {
            ret = 1;
            break;
        }
        if (have && mergeable(&cur, &e)) {
            cur.length += e.length;
        } else {
            if (have) {
                print_map_entry(&cur, json, first);
                first = false;
            }
            cur = e;
            have = true;
        }
        off += e.length;
    }
    if (have) {
        print_map_entry(&cur, json, first);
        first = false;
    }
    if (json) {
        printf(first ? "[]\n" : "]\n");
    }
    blk_close(img, NULL);
    return ret;
}

/* ---- compare ---- */

static int compare_tail(BlockImage *img, uint64_t from, uint8_t *buf, size_t chunk,
                        uint64_t *mismatch)
{
    Error *err = NULL;
    for (uint64_t off = from; off < blk_size(img); off += chunk) {
        size_t n = (size_t)MIN((uint64_t)chunk, blk_size(img) - off);
        if (blk_pread(img, off, buf, n, &err) < 0) {
            img_report_err(err);
            return -1;
        }
        if (!buffer_is_zero(buf, n)) {
            for (size_t i = 0; i < n; i++) {
                if (buf[i]) {
                    *mismatch = off + (i & ~(size_t)511);
                    return 1;
                }
            }
        }
    }
    return 0;
}

static int cmd_compare(int argc, char **argv)
{
    const char *fmt1 = NULL, *fmt2 = NULL;
    bool strict = false, quiet = false;
    int c;
    while ((c = getopt(argc, argv, "f:F:sqhpU")) != -1) {
        switch (c) {
        case 'f': fmt1 = optarg; break;
        case 'F': fmt2 = optarg; break;
        case 's': strict = true; break;
        case 'q': quiet = true; break;
        case 'p': case 'U': break;
        default: return 2;
        }
    }
    if (optind != argc - 2) {
        img_error("Expecting two image file names\n");
        return 2;
    }
    BlockImage *a = img_open(argv[optind], fmt1, 0);
    BlockImage *b = a ? img_open(argv[optind + 1], fmt2, 0) : NULL;
    if (!a || !b) {
        blk_close(a, NULL);
        return 2;
    }
    size_t chunk = 1 << 20;
    uint8_t *ba = blk_alloc_aligned(chunk), *bb = blk_alloc_aligned(chunk);
    uint64_t common = MIN(blk_size(a), blk_size(b)), mismatch = 0;
    int ret = 0;
    Error *err = NULL;
    if (strict && blk_size(a) != blk_size(b)) {
        if (!quiet) {
            printf("Strict mode: Image size mismatch!\n");
        }
        ret = 1;
        goto out;
    }
    for (uint64_t off = 0; off < common && ret == 0; off += chunk) {
        size_t n = (size_t)MIN((uint64_t)chunk, common - off);
        if (blk_pread(a, off, ba, n, &err) < 0 || blk_pread(b, off, bb, n, &err) < 0) {
            img_report_err(err);
            ret = 2;
            goto out;
        }
        if (memcmp(ba, bb, n)) {
            size_t i = 0;
            while (ba[i] == bb[i]) {
                i++;
            }
            mismatch = off + (i & ~(size_t)511);
            ret = 1;
        }
    }
    if (ret == 0 && blk_size(a) != blk_size(b)) {
        if (!quiet) {
            printf("Warning: Image size mismatch!\n");
        }
        BlockImage *longer = blk_size(a) > blk_size(b) ? a : b;
        int r = compare_tail(longer, common, ba, chunk, &mismatch);
        ret = r < 0 ? 2 : r;
    }
    if (ret == 1 && !quiet) {
        printf("Content mismatch at offset %" PRIu64 "!\n", mismatch);
    }
    if (ret == 0 && !quiet) {
        printf("Images are identical.\n");
    }
out:
    free(ba);
    free(bb);
    blk_close(a, NULL);
    blk_close(b, NULL);
    return ret;
}

/* ---- resize ---- */

static int cmd_resize(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "shrink", no_argument, NULL, OPT_SHRINK },
        { "preallocation", required_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    bool shrink = false, quiet = false;
    int c;
    /* A leading '-' in the size ("-1G") must not be taken for an option. */
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9') {
            argv[i][0] = '~';
        }
    }
    while ((c = getopt_long(argc, argv, "f:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'q': quiet = true; break;
        case OPT_SHRINK: shrink = true; break;
        case 'P': break;
        default: return 1;
        }
    }
    if (optind != argc - 2) {
        img_error("Expecting image file name and size\n");
        return 1;
    }
    BlockImage *img = img_open(argv[optind], fmt, BLK_O_RDWR | BLK_O_NO_BACKING);
    if (!img) {
        return 1;
    }
    const char *arg = argv[optind + 1];
    int sign = arg[0] == '+' ? 1 : arg[0] == '~' ? -1 : 0;
    uint64_t n, size;
    Error *err = NULL;
    if (!parse_size(arg + (sign != 0), &n, &err)) {
        img_error("Invalid size specified.\n");
        error_free(err);
        blk_close(img, NULL);
        return 1;
    }
    size = sign > 0 ? blk_size(img) + n : sign < 0 ? blk_size(img) - n : n;
    if ((sign < 0 && n >= blk_size(img)) || (sign >= 0 && size == 0)) {
        img_error("New image size must be positive\n");
        blk_close(img, NULL);
        return 1;
    }
    if (size < blk_size(img) && !shrink) {
        img_error("Use the --shrink option to perform a shrink operation.\n");
        blk_close(img, NULL);
        return 1;
    }
    int ret = blk_resize(img, size, &err);
    /* qemu-img follows this refusal with a hint line; so do we. */
    bool inconsistent = ret < 0 && err &&
                        strstr(error_get_pretty(err), "is inconsistent and cannot be used");
    ret = img_finish_modification(img, ret, err);
    if (inconsistent) {
        fprintf(stderr, "Try block-dirty-bitmap-remove to delete this bitmap from disk\n");
    }
    if (ret == 0 && !quiet) {
        printf("Image resized.\n");
    }
    return ret < 0 ? 1 : 0;
}

/* ---- main ---- */

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    { "create", img_create },
    { "info", img_info },
    { "check", cmd_check },
    { "convert", img_convert },
    { "rebase", img_rebase },
    { "amend", img_amend },
    { "dd", img_dd },
    { "commit", img_commit },
    { "compare", cmd_compare },
    { "map", cmd_map },
    { "resize", cmd_resize },
    { "snapshot", img_snapshot },
    { "bitmap", img_bitmap },
    { "measure", img_measure },
    { "bench", img_bench },
};

static void usage(void)
{
    printf("usage: vireo-img [standard options] command [command options]\n"
           "Disk image utility (qemu-img compatible)\n\ncommands:");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        printf(" %s", commands[i].name);
    }
    printf("\n\nFormats: raw qcow2 parallels\n");
}

int main(int argc, char **argv)
{
    const char *slash = strrchr(argv[0], '/');
    img_progname = slash ? slash + 1 : argv[0];
    /* Lines reach a shared pipe in the order they were printed, between stderr's. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        img_error("Not enough arguments\nTry '%s --help' for more information\n",
                  img_progname);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
        return 0;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        printf("vireo-img version 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            optind = 1;
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    img_error("Command not found: %s\n", argv[1]);
    return 1;
}
