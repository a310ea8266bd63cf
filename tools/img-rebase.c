/*
 * vireo-img rebase: give an image a new backing file.
 *
 * Safe mode (the default) keeps what the guest sees: every range the image
 * does not hold itself is compared between the old and the new backing
 * chain, and where they differ the old content is copied into the image
 * before the header names the new backing file.  Unsafe mode (-u) only
 * rewrites the name, for when the caller knows the contents agree (a
 * backing file that was moved or renamed).
 */
#include "tools/img.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

typedef struct Rebase {
    const char *filename, *fmt;     /* the image */
    const char *backing, *backing_fmt;  /* the new backing file, "" for none */
    bool unsafe, progress, image_opts;
} Rebase;

/* Read @len bytes at @off from @img, zeros past its end or when there is no image. */
static int read_or_zero(BlockImage *img, uint64_t off, uint8_t *buf, size_t len, Error **errp)
{
    memset(buf, 0, len);
    if (!img || off >= blk_size(img)) {
        return 0;
    }
    return blk_pread(img, off, buf, MIN((uint64_t)len, blk_size(img) - off), errp);
}

/*
 * Copy into @img every unit it does not allocate itself whose content
 * through the old backing chain differs from the new backing file's.
 */
static int copy_differences(BlockImage *img, BlockImage *old_bk, BlockImage *new_bk,
                            bool progress, Error **errp)
{
    uint64_t size = blk_size(img);
    size_t unit = MAX(blk_cluster_size(img), 65536u);
    uint8_t *a = blk_alloc_aligned(unit), *b = blk_alloc_aligned(unit);
    int ret = 0;
    img_progress(progress, 0, size);
    for (uint64_t off = 0; off < size && ret == 0;) {
        BlockStatus st;
        uint64_t want = MIN((uint64_t)unit - off % unit, size - off);
        ret = blk_block_status(img, off, want, &st, errp);
        uint64_t n = ret < 0 ? 0 : MIN(st.len ? st.len : want, want);
        if (ret == 0 && st.kind == BLK_STATUS_UNALLOCATED) {
            ret = read_or_zero(old_bk, off, a, n, errp);
            if (ret == 0) {
                ret = read_or_zero(new_bk, off, b, n, errp);
            }
            if (ret == 0 && memcmp(a, b, n) != 0) {
                ret = blk_pwrite(img, off, a, n, errp);
            }
        }
        off += n;
        img_progress(progress, off, size);
    }
    free(a);
    free(b);
    return ret;
}

static BlockImage *open_new_backing(BlockImage *img, const Rebase *r)
{
    Error *err = NULL;
    char *path = blk_backing_path(blk_filename(img), r->backing);
    BlockImage *bk = blk_open(path, r->backing_fmt, 0, &err);
    free(path);
    if (!bk) {
        img_error("Could not open new backing file '%s': %s\n", r->backing,
                  error_get_pretty(err));
        error_free(err);
    }
    return bk;
}

static int rebase_image(const Rebase *r)
{
    BlockImage *img = img_open_image(r->filename, r->fmt, r->image_opts,
                                     BLK_O_RDWR | (r->unsafe ? BLK_O_NO_BACKING : 0));
    if (!img) {
        return 1;
    }
    BlockImage *new_bk = NULL;
    Error *err = NULL;
    int ret = 1;
    if (!r->unsafe) {
        if (*r->backing && !(new_bk = open_new_backing(img, r))) {
            goto out;
        }
        if (*r->backing && !r->backing_fmt) {
            /* Checked once the new backing file is known to open, as qemu-img does. */
            img_error("Could not change the backing file to '%s': backing format must be "
                      "specified\n", r->backing);
            goto out;
        }
        if (copy_differences(img, blk_backing(img), new_bk, r->progress, &err) < 0) {
            img_error("Error while rebasing: %s\n", error_get_pretty(err));
            error_free(err);
            goto out;
        }
    }
    if (blk_change_backing_file(img, r->backing, r->backing_fmt, &err) < 0) {
        img_error("Could not change the backing file to '%s': %s\n", r->backing,
                  error_get_pretty(err));
        error_free(err);
        goto out;
    }
    if (r->progress && !r->unsafe) {
        printf("\n");
    }
    ret = 0;
out:
    if (new_bk) {
        blk_close(new_bk, NULL);
    }
    if (blk_close(img, &err) < 0) {
        img_report_err(err);
        ret = 1;
    }
    return ret;
}

static bool check_args(const Rebase *r, int argc)
{
    if (optind != argc - 1) {
        img_error("Expecting one image file name\nTry '%s --help' for more information\n",
                  img_progname);
        return false;
    }
    if (!r->unsafe && !r->backing) {
        img_error("Must specify backing file (-b) or use unsafe mode (-u)\n"
                  "Try '%s --help' for more information\n", img_progname);
        return false;
    }
    if (r->backing_fmt && !img_format_name_known(r->backing_fmt)) {
        img_error("Invalid format name: '%s'\n", r->backing_fmt);
        return false;
    }
    if (r->unsafe && r->backing && *r->backing && !r->backing_fmt) {
        /* Probing a backing file's format on every open is a security hole. */
        img_error("Could not change the backing file to '%s': backing format must be "
                  "specified\n", r->backing);
        return false;
    }
    return true;
}

int img_rebase(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    Rebase r = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': r.fmt = optarg; break;
        case 'F': r.backing_fmt = optarg; break;
        case 'b': r.backing = optarg; break;
        case 'u': r.unsafe = true; break;
        case 'p': r.progress = true; break;
        case 'q': r.progress = false; break;
        case 't': case 'T': case 'U': case OPT_OBJECT: break;   /* cache modes, locking */
        case OPT_IMAGE_OPTS: r.image_opts = true; break;
        default: return img_bad_option(c, argc, argv);
        }
    }
    if (!check_args(&r, argc)) {
        return 1;
    }
    r.filename = argv[optind];
    if (!r.backing) {
        r.backing = "";     /* -u without -b: drop the backing file */
    }
    return rebase_image(&r);
}
