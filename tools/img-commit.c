/*
 * vireo-img commit: write what an image (and the images between it and
 * the base) holds into a file further down its backing chain.
 *
 * The base is the image's own backing file, or the one named with -b.
 * Ranges allocated above the base are read through the top image (so the
 * newest layer wins) and written into the base, opened for writing on its
 * own; the chain's read-only view of the base is never read for them.
 * Then the top image is emptied so it shows the base again, unless -d
 * asks to keep it or -b names a base (as with qemu-img, -b implies -d).
 */
#include "tools/img.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

typedef struct Commit {
    const char *filename, *fmt, *base;
    bool image_opts;                /* filename is an --image-opts list */
    bool keep, progress, quiet;
} Commit;

static bool same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

/* The image in @top's chain that is the commit's base, or NULL with a message. */
static BlockImage *find_base(BlockImage *top, const Commit *c)
{
    if (!blk_backing(top)) {
        img_error("Image does not have a backing file\n");
        return NULL;
    }
    if (!c->base) {
        return blk_backing(top);
    }
    for (BlockImage *b = blk_backing(top); b; b = blk_backing(b)) {
        if (same_file(blk_filename(b), c->base)) {
            return b;
        }
    }
    img_error("Did not find '%s' in the backing chain of '%s'\n", c->base, c->filename);
    return NULL;
}

/* Whether any image from @top down to (not including) @base holds [off, off + *n). */
static int allocated_above(BlockImage *top, BlockImage *base, uint64_t off, uint64_t *n,
                           bool *alloc, Error **errp)
{
    *alloc = false;
    for (BlockImage *img = top; img && img != base; img = blk_backing(img)) {
        BlockStatus st;
        if (off >= blk_size(img)) {
            continue;
        }
        if (blk_block_status(img, off, MIN(*n, blk_size(img) - off), &st, errp) < 0) {
            return -1;
        }
        *n = MIN(*n, st.len);
        if (st.kind != BLK_STATUS_UNALLOCATED) {
            *alloc = true;
            return 0;
        }
    }
    return 0;
}

static int copy_down(BlockImage *top, BlockImage *base, BlockImage *dst, bool progress,
                     Error **errp)
{
    uint64_t size = MIN(blk_size(top), blk_size(dst));
    size_t chunk = 1u << 20;
    uint8_t *buf = blk_alloc_aligned(chunk);
    int ret = 0;
    img_progress(progress, 0, size);
    for (uint64_t off = 0; off < size && ret == 0;) {
        uint64_t n = MIN((uint64_t)chunk, size - off);
        bool alloc;
        ret = allocated_above(top, base, off, &n, &alloc, errp);
        if (ret == 0 && alloc) {
            ret = blk_pread(top, off, buf, n, errp);
            if (ret == 0) {
                ret = blk_pwrite(dst, off, buf, n, errp);
            }
        }
        off += n;
        img_progress(progress, off, size);
    }
    free(buf);
    return ret;
}

static int commit_image(const Commit *c)
{
    BlockImage *top = img_open_image(c->filename, c->fmt, c->image_opts, BLK_O_RDWR);
    if (!top) {
        return 1;
    }
    BlockImage *base = find_base(top, c), *dst = NULL;
    Error *err = NULL;
    int ret = -1;
    if (!base) {
        goto out;
    }
    dst = blk_open(blk_filename(base), blk_format(base), BLK_O_RDWR | BLK_O_NO_BACKING, &err);
    if (!dst || copy_down(top, base, dst, c->progress, &err) < 0 ||
        (!c->keep && !c->base && blk_make_empty(top, &err) < 0)) {
        img_error("%s\n", error_get_pretty(err));
        error_free(err);
        err = NULL;
        goto out;
    }
    ret = 0;
out:
    if (dst && img_finish_modification(dst, ret, NULL) < 0) {
        ret = -1;
    }
    if (img_finish_modification(top, ret, NULL) < 0) {
        ret = -1;
    }
    if (ret == 0 && c->progress) {
        printf("\n");
    }
    if (ret == 0 && !c->quiet) {
        printf("Image committed.\n");
    }
    return ret < 0 ? 1 : 0;
}

int img_commit(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { NULL, 0, NULL, 0 },
    };
    Commit c = { 0 };
    bool image_opts = false;
    int opt;
    while ((opt = getopt_long(argc, argv, ":hf:t:b:dpqr:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': c.fmt = optarg; break;
        case 'b': c.base = optarg; break;
        case 'd': c.keep = true; break;
        case 'p': c.progress = true; break;
        case 'q': c.quiet = true; break;
        case 't': case 'r': case OPT_OBJECT: break;   /* cache mode, rate limit */
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return img_bad_option(opt, argc, argv);
        }
    }
    if (c.quiet) {
        c.progress = false;
    }
    if (!img_one_image_name(argc)) {
        return 1;
    }
    c.filename = argv[optind];
    c.image_opts = image_opts;
    return commit_image(&c);
}
