/*
 * vireo-img dd: copy a run of blocks from one image into a new image,
 * with dd's operands (if=, of=, bs=, count=, skip=), as qemu-img dd does.
 *
 * As in qemu-img 7.2, the new image's size is count*bs (or the whole input)
 * less the skipped bytes, and it is always created afresh.
 */
#include "tools/img.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

typedef struct DdArgs {
    const char *in, *out;
    uint64_t bs, count, skip;
    bool has_count;
} DdArgs;

/* A byte count as qemu-img dd takes it: a size with an optional suffix. */
static bool parse_blocks(const char *name, const char *val, uint64_t *out)
{
    if (img_parse_size(val, out) < 0) {
        img_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for\n"
                  "%s: kilobytes, megabytes, gigabytes, terabytes, petabytes and "
                  "exabytes.\n", name, img_progname);
        return false;
    }
    return true;
}

static bool parse_operand(const char *arg, DdArgs *d)
{
    const char *eq = strchr(arg, '=');
    size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
    const char *val = eq ? eq + 1 : "";
    if (eq && klen == 2 && !strncmp(arg, "if", 2)) {
        d->in = val;
    } else if (eq && klen == 2 && !strncmp(arg, "of", 2)) {
        d->out = val;
    } else if (eq && klen == 2 && !strncmp(arg, "bs", 2)) {
        if (!parse_blocks("bs", val, &d->bs)) {
            return false;
        }
        if (d->bs == 0 || d->bs > INT32_MAX) {
            img_error("Invalid bs specified. Must be between 1 and %d.\n", INT32_MAX);
            return false;
        }
    } else if (eq && klen == 5 && !strncmp(arg, "count", 5)) {
        d->has_count = true;
        return parse_blocks("count", val, &d->count);
    } else if (eq && klen == 4 && !strncmp(arg, "skip", 4)) {
        return parse_blocks("skip", val, &d->skip);
    } else {
        img_error("unrecognized operand %.*s\n", (int)klen, arg);
        return false;
    }
    return true;
}

static int copy_blocks(BlockImage *src, BlockImage *dst, uint64_t from, uint64_t len,
                       size_t bs, Error **errp)
{
    uint8_t *buf = blk_alloc_aligned(bs);
    int ret = 0;
    for (uint64_t done = 0; done < len && ret == 0;) {
        size_t n = (size_t)MIN((uint64_t)bs, len - done);
        ret = blk_pread(src, from + done, buf, n, errp);
        if (ret == 0) {
            ret = blk_pwrite(dst, done, buf, n, errp);
        }
        done += n;
    }
    free(buf);
    return ret;
}

static int run_dd(const DdArgs *d, const char *fmt, bool image_opts, const char *out_fmt)
{
    BlockImage *src = img_open_image(d->in, fmt, image_opts, 0);
    if (!src) {
        return 1;
    }
    uint64_t size = blk_size(src);
    if (d->has_count && d->count <= size / d->bs) {
        size = d->count * d->bs;
    }
    uint64_t from = d->skip <= UINT64_MAX / d->bs ? d->skip * d->bs : UINT64_MAX;
    uint64_t len = from < size ? size - from : 0;
    BlockCreateOptions o = { .format = out_fmt, .size = len };
    Error *err = NULL;
    BlockImage *dst = NULL;
    int ret = 1;
    if (blk_create(d->out, &o, &err) < 0) {
        img_error("%s: %s\n", d->out, error_get_pretty(err));
        error_free(err);
        goto out;
    }
    dst = img_open(d->out, out_fmt, BLK_O_RDWR | BLK_O_UNSAFE);
    if (!dst) {
        goto out;
    }
    if (copy_blocks(src, dst, from, len, (size_t)d->bs, &err) < 0) {
        img_error("error while copying: %s\n", error_get_pretty(err));
        error_free(err);
        goto out;
    }
    ret = 0;
out:
    if (dst && img_finish_modification(dst, ret ? -1 : 0, NULL) < 0) {
        ret = 1;
    }
    blk_close(src, NULL);
    return ret;
}

int img_dd(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *out_fmt = "raw";
    bool image_opts = false;
    int c;
    while ((c = getopt_long(argc, argv, ":hf:O:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'U': case OPT_OBJECT: break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return img_bad_option(c, argc, argv);
        }
    }
    DdArgs d = { .bs = 512 };
    for (int i = optind; i < argc; i++) {
        if (!parse_operand(argv[i], &d)) {
            return 1;
        }
    }
    if (!d.in || !d.out) {
        img_error("Must specify both input and output files\n");
        return 1;
    }
    return run_dd(&d, fmt, image_opts, out_fmt);
}
