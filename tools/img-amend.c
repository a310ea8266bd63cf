/*
 * vireo-img amend: change format options of an existing image in place.
 *
 * The -o lists are parsed with the format's amend table (tools/img-opts.c,
 * the parser and tables create uses too), then checked against the image
 * before anything is written, with qemu-img's wording for each refusal; the
 * format driver applies the rest (block/qcow2-amend.c).
 */
#include "tools/img-opts.h"
#include "tools/img.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* Whether @name was given, and its parsed number (booleans 0 or 1). */
static bool option_value(const ImgOptSet *set, const char *name, uint64_t *num)
{
    for (int i = 0; i < set->n; i++) {
        if (set->str[i] && !strcmp(set->desc[i]->name, name)) {
            *num = set->num[i];
            return true;
        }
    }
    return false;
}

/* Whether any option whose name starts with "encrypt." was given. */
static bool encrypt_option_given(const ImgOptSet *set)
{
    for (int i = 0; i < set->n; i++) {
        if (set->str[i] && !strncmp(set->desc[i]->name, "encrypt.", 8)) {
            return true;
        }
    }
    return false;
}

/* The checks of values against the image, before anything is written. */
static bool check_against_image(BlockImage *img, const ImgOptSet *set)
{
    const char *compat = img_optset_get(set, "compat");
    if (compat && strcmp(compat, "0.10") && strcmp(compat, "v2") && strcmp(compat, "1.1") &&
        strcmp(compat, "v3")) {
        img_error("Unknown compatibility level %s\n", compat);
        return false;
    }
    BlockFormatInfo info = { 0 };
    bool has_data_file = blk_get_info(img, &info, NULL) == 0 && info.data_file;
    bool raw = info.data_file_raw;
    blk_free_info(&info);
    if (img_optset_get(set, "data_file") && !has_data_file) {
        img_error("data-file can only be set for images that use an external data file\n");
        return false;
    }
    /* The raw flag can be cleared, but set only where it already is. */
    uint64_t raw_on;
    if (option_value(set, "data_file_raw", &raw_on) && raw_on && !raw) {
        img_error("data-file-raw cannot be set on existing images\n");
        return false;
    }
    if (encrypt_option_given(set)) {
        /* Images vireo-img opens carry no encryption, so there are no keyslots to change. */
        img_error("Can't amend encryption options - encryption not present\n");
        return false;
    }
    return true;
}

/* The parsed -o values as the changes blk_amend() makes. */
static void to_amend_options(const ImgOptSet *set, BlockCreateOptions *o)
{
    for (int i = 0; i < set->n; i++) {
        const char *name = set->desc[i]->name, *v = set->str[i];
        uint64_t n = set->num[i];
        if (!v) {
            continue;
        }
        if (!strcmp(name, "size")) {
            o->size = n;
            o->given |= BLK_CREATE_GIVEN_SIZE;
        } else if (!strcmp(name, "compat")) {
            o->compat = !strcmp(v, "0.10") || !strcmp(v, "v2") ? 2 : 3;
            o->given |= BLK_CREATE_GIVEN_COMPAT;
        } else if (!strcmp(name, "lazy_refcounts")) {
            o->lazy_refcounts = n;
            o->given |= BLK_CREATE_GIVEN_LAZY;
        } else if (!strcmp(name, "refcount_bits")) {
            o->refcount_bits = n == 0 || n > 64 ? -1 : (int)n;  /* -1: a width it refuses */
            o->given |= BLK_CREATE_GIVEN_REFCOUNT_BITS;
        } else if (!strcmp(name, "data_file")) {
            o->data_file = v;
        } else if (!strcmp(name, "data_file_raw")) {
            o->data_file_raw = n;
            o->given |= BLK_CREATE_GIVEN_DATA_FILE_RAW;
        }
    }
}

/*
 * Progress as qemu-img prints it: at 0 and 100 always, in between only once
 * it has moved by more than one percent since the last line.
 */
typedef struct AmendProgress {
    bool on;
    double last;
} AmendProgress;

static void amend_progress(void *opaque, uint64_t done, uint64_t total)
{
    AmendProgress *p = opaque;
    double cur = total ? (double)done * 100.0 / (double)total : 100.0;
    if (cur == 0.0 || cur == 100.0 || cur > p->last + 1.0 || cur < p->last - 1.0) {
        p->last = cur;
        img_progress(p->on, done, total);
    }
}

/* Naming the backing file (and format) the image already has is no change. */
static bool same_backing(BlockImage *img, const char *backing, const char *backing_fmt)
{
    BlockFormatInfo info = { 0 };
    bool same = blk_get_info(img, &info, NULL) == 0 &&
                !strcmp(backing ? backing : "", info.backing_file ? info.backing_file : "") &&
                !strcmp(backing_fmt ? backing_fmt : "", info.backing_fmt ? info.backing_fmt : "");
    blk_free_info(&info);
    return same;
}

static int amend_image(const char *name, const char *fmt, bool image_opts, const char **opts,
                       int nb_opts, bool progress, bool help)
{
    BlockImage *img = img_open_image(name, fmt, image_opts, BLK_O_RDWR);
    if (!img) {
        return 1;
    }
    BlockCreateOptions o = { .format = blk_format(img) };
    ImgOptSet set = { 0 };
    Error *err = NULL;
    int ret = 1;
    if (help) {
        /* The format was probed: its list is printed now. */
        ret = img_print_amend_help(blk_format(img));
        goto out;
    }
    if (!img_amend_optset(blk_format(img), &set)) {
        goto out;
    }
    for (int i = 0; i < nb_opts; i++) {
        if (!img_amend_optset_parse(&set, blk_format(img), opts[i], &err)) {
            img_report_err(err);
            err = NULL;
            goto out;
        }
    }
    if (!check_against_image(img, &set)) {
        goto out;
    }
    to_amend_options(&set, &o);
    const char *backing = img_optset_get(&set, "backing_file");
    const char *backing_fmt = img_optset_get(&set, "backing_fmt");
    if ((backing || backing_fmt) && !same_backing(img, backing, backing_fmt)) {
        img_error("Cannot amend the backing file\nYou can use '%s rebase' instead.\n",
                  img_progname);
        goto out;
    }
    AmendProgress prog = { .on = progress };
    o.amend_progress = amend_progress;
    o.amend_opaque = &prog;
    amend_progress(&prog, 0, 1);
    if (blk_amend(img, &o, &err) < 0) {
        img_report_err(err);
        err = NULL;
        goto out;
    }
    amend_progress(&prog, 1, 1);
    if (progress) {
        printf("\n");
    }
    ret = 0;
out:
    img_optset_free(&set);
    if (blk_close(img, &err) < 0) {
        img_report_err(err);
        ret = 1;
    }
    return ret;
}

int img_amend(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force", no_argument, NULL, OPT_FORCE },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    const char *opts[argc];
    int nb_opts = 0, c;
    bool progress = false, image_opts = false, help = false;
    while ((c = getopt_long(argc, argv, ":ho:f:t:pq", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (!img_opts_list_valid(optarg)) {
                img_error("Invalid option list: %s\n", optarg);
                return 1;
            }
            opts[nb_opts++] = optarg;
            help |= img_opts_help_requested(optarg);
            break;
        case 'f': fmt = optarg; break;
        case 'p': progress = true; break;
        case 'q': progress = false; break;
        case 't': case OPT_OBJECT: case OPT_FORCE: break;   /* cache mode; no secrets here */
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return img_bad_option(c, argc, argv);
        }
    }
    if (!nb_opts) {
        img_error("Must specify options (-o)\nTry '%s --help' for more information\n",
                  img_progname);
        return 1;
    }
    if (fmt && help) {
        return img_print_amend_help(fmt);
    }
    if (optind != argc - 1) {
        img_error("Expecting one image file name\n");
        return 1;
    }
    return amend_image(argv[optind], fmt, image_opts, opts, nb_opts, progress, help);
}
