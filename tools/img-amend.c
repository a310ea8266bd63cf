/*
 * vireo-img amend: change format options of an existing image in place.
 *
 * The -o keys are checked against what an existing image can change before
 * anything is written, with qemu-img's wording for each refusal; the format
 * driver then applies the rest (block/qcow2-amend.c).
 */
#include "tools/img-opts.h"
#include "tools/img.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* Keys fixed when an image is made. */
static const char *const creation_only[] = {
    "cluster_size", "preallocation", "extended_l2", "compression_type", "encryption",
    "encrypt.format",
};

static bool key_is(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(key, list[i])) {
            return true;
        }
    }
    return false;
}

/* Refuse one -o key=value an existing image cannot take; true when it may go on. */
static bool check_key(BlockImage *img, const char *key, const char *val)
{
    if (key_is(key, creation_only, ARRAY_SIZE(creation_only))) {
        img_error("Invalid parameter '%s'\nThis option is only supported for image "
                  "creation\n", key);
        return false;
    }
    if (!strcmp(key, "compat") && strcmp(val, "0.10") && strcmp(val, "v2") &&
        strcmp(val, "1.1") && strcmp(val, "v3")) {
        img_error("Unknown compatibility level %s\n", val);
        return false;
    }
    if (!strcmp(key, "data_file_raw") || !strcmp(key, "data_file")) {
        /* Only an image that has an external data file can change it. */
        BlockFormatInfo info = { 0 };
        bool has = blk_get_info(img, &info, NULL) == 0 && info.data_file;
        bool raw = info.data_file_raw;
        blk_free_info(&info);
        if (!strcmp(key, "data_file") && !has) {
            img_error("data-file can only be set for images that use an external data "
                      "file\n");
            return false;
        }
        /* The raw flag can be cleared, but set only where it already is. */
        if (!strcmp(key, "data_file_raw") && strcmp(val, "off") && !raw) {
            img_error("data-file-raw cannot be set on existing images\n");
            return false;
        }
        return true;
    }
    /* backing_file and backing_fmt are compared with the image's once all are read. */
    static const char *const amendable[] = { "compat", "lazy_refcounts", "refcount_bits",
                                             "size", "backing_file", "backing_fmt" };
    if (!key_is(key, amendable, ARRAY_SIZE(amendable))) {
        img_error("Invalid parameter '%s'\n", key);
        return false;
    }
    return true;
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

/* Does any -o list name @key? */
static bool opts_name(const char **opts, int nb_opts, const char *key)
{
    bool found = false;
    for (int i = 0; i < nb_opts && !found; i++) {
        char *copy = xstrdup(opts[i]), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok && !found;
             tok = strtok_r(NULL, ",", &save)) {
            size_t n = strcspn(tok, "=");
            found = strlen(key) == n && !strncmp(tok, key, n);
        }
        free(copy);
    }
    return found;
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

static bool check_opts(BlockImage *img, const char *opts)
{
    char *copy = xstrdup(opts), *save = NULL;
    bool ok = true;
    for (char *tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq) {
            *eq = '\0';
        }
        ok = check_key(img, tok, eq ? eq + 1 : "");
    }
    free(copy);
    return ok;
}

static int amend_image(const char *name, const char *fmt, const char **opts, int nb_opts,
                       bool progress, bool help)
{
    BlockImage *img = img_open(name, fmt, BLK_O_RDWR);
    if (!img) {
        return 1;
    }
    BlockCreateOptions o = { .format = blk_format(img) };
    char *backing = NULL, *backing_fmt = NULL;
    Error *err = NULL;
    int ret = 1;
    if (help) {
        /* The format was probed: its list is printed now. */
        ret = img_print_amend_help(blk_format(img));
        goto out;
    }
    if (strcmp(blk_format(img), "qcow2")) {
        img_error("Format driver '%s' does not support option amendment\n", blk_format(img));
        goto out;
    }
    for (int i = 0; i < nb_opts; i++) {
        if (!check_opts(img, opts[i]) ||
            !img_parse_create_opts(opts[i], NULL, &o, &backing, &backing_fmt)) {
            goto out;
        }
    }
    if (opts_name(opts, nb_opts, "data_file_raw")) {
        o.given |= BLK_CREATE_GIVEN_DATA_FILE_RAW;
    }
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
    free(backing);
    free(backing_fmt);
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
    if (!image_opts) {
        return amend_image(argv[optind], fmt, opts, nb_opts, progress, help);
    }
    char *path, *opt_fmt;
    if (!img_parse_image_opts(argv[optind], &path, &opt_fmt)) {
        return 1;
    }
    int ret = amend_image(path, opt_fmt, opts, nb_opts, progress, help);
    free(path);
    free(opt_fmt);
    return ret;
}
