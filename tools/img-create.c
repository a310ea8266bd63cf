/*
 * vireo-img create: options from the format's and the host file's option
 * tables (tools/img-opts.c), checked in qemu-img's order: the option list
 * as it is read, names and types before the Formatting line, the values a
 * format must understand after it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/img-opts.h"
#include "tools/img.h"
#include "util/osdep.h"

/*
 * Open the backing file the new image will name (relative to the image) to
 * take its size when none was given, and its format when none was named.
 */
static bool from_backing(const char *filename, ImgOptSet *set, const char *backing)
{
    if (!*backing) {
        img_error("%s: Expected backing file name, got empty string\n", filename);
        return false;
    }
    Error *err = NULL;
    char *path = blk_backing_path(filename, backing);
    BlockImage *b = blk_open(path, img_optset_get(set, "backing_fmt"), BLK_O_NO_BACKING, &err);
    free(path);
    if (!b) {
        img_error("%s: %s\nCould not open backing image.\n", filename, error_get_pretty(err));
        error_free(err);
        return false;
    }
    bool ok = true;
    if (!img_optset_get(set, "size")) {
        char *size = xasprintf("%" PRIu64, blk_size(b));
        ok = img_optset_set(set, "size", size, NULL);
        free(size);
    }
    if (!img_optset_get(set, "backing_fmt")) {
        ok = ok && img_optset_set(set, "backing_fmt", blk_format(b), NULL);
    }
    blk_close(b, NULL);
    return ok;
}

/* The size operand: 0, or 1 with a message printed. */
static int size_operand(const char *filename, const char *arg, ImgOptSet *set)
{
    uint64_t size;
    int perr = img_parse_size(arg, &size);
    if (perr == -ERANGE) {
        img_error("Invalid image size specified. Must be between 0 and %" PRId64 ".\n",
                  INT64_MAX);
        return 1;
    } else if (perr < 0) {
        img_error("Invalid image size specified. You may use k, M, G, T, "
                  "P or E suffixes for\n%s: kilobytes, megabytes, gigabytes, terabytes, "
                  "petabytes and exabytes.\n", img_progname);
        return 1;
    }
    if (img_optset_get(set, "size")) {
        img_error("%s: The image size must be specified only once\n", filename);
        return 1;
    }
    char *text = xasprintf("%" PRIu64, size);
    img_optset_set(set, "size", text, NULL);
    free(text);
    return 0;
}

/* Everything after the command line is read: 0 or 1. */
static int create_image(const char *filename, const char *fmt, const char *options,
                        const char *size_arg, const char *base, const char *base_fmt,
                        bool quiet, bool unsafe)
{
    ImgOptSet set;
    Error *err = NULL;
    if (!img_create_optset(fmt, true, filename, &set)) {
        return 1;
    }
    int ret = 1;
    if (options && !img_optset_parse(&set, options, &err)) {
        goto fail;
    }
    if (size_arg && size_operand(filename, size_arg, &set)) {
        goto out;
    }
    if ((base && !img_optset_set(&set, "backing_file", base, &err)) ||
        (base_fmt && !img_optset_set(&set, "backing_fmt", base_fmt, &err))) {
        goto fail;
    }
    const char *backing = img_optset_get(&set, "backing_file");
    if (backing && !unsafe) {
        if (!from_backing(filename, &set, backing)) {
            goto out;
        }
    } else if (!img_optset_get(&set, "size")) {
        img_error("%s: Size must be specified\n", filename);
        goto out;
    }
    if (!quiet) {
        printf("Formatting '%s', fmt=%s", filename, fmt);
        img_optset_print(&set);
        printf("\n");
    }
    BlockCreateOptions o = { .format = fmt };
    if (!img_optset_to_create(&set, &o, &err) || blk_create(filename, &o, &err) < 0) {
        goto fail;
    }
    ret = 0;
    goto out;
fail:
    img_error("%s: %s\n", filename, error_get_pretty(err));
    error_free(err);
out:
    img_optset_free(&set);
    return ret;
}

int img_create(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = "raw", *base = NULL, *base_fmt = NULL;
    char *options = NULL;
    bool quiet = false, unsafe = false;
    int c, ret = 1;
    while ((c = getopt_long(argc, argv, ":f:b:F:o:quh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'b': base = optarg; break;
        case 'F': base_fmt = optarg; break;
        case 'q': quiet = true; break;
        case 'u': unsafe = true; break;
        case 'o':
            if (!img_opts_list_valid(optarg)) {
                img_error("Invalid option list: %s\n", optarg);
                goto out;
            }
            img_opts_accumulate(&options, optarg);
            break;
        case OPT_OBJECT:
            if (!img_add_object(optarg)) {
                goto out;
            }
            break;
        default:
            ret = img_bad_option(c, argc, argv);
            goto out;
        }
    }
    const char *filename = optind < argc ? argv[optind] : NULL;
    if (options && img_opts_help_requested(options)) {
        ret = img_print_create_help(filename, fmt);
        goto out;
    }
    if (!filename) {
        img_error("Expecting image file name\n");
        goto out;
    }
    ret = create_image(filename, fmt, options, optind + 1 < argc ? argv[optind + 1] : NULL,
                       base, base_fmt, quiet, unsafe);
out:
    free(options);
    return ret;
}
