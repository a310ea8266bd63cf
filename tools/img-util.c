/*
 * vireo-img helpers: JSON printing in qemu-img's layout, human sizes,
 * creation options.
 */
#include "tools/img.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/osdep.h"

const char *img_progname = "vireo-img";

void img_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", img_progname);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void img_report_err(Error *err)
{
    img_error("%s\n", error_get_pretty(err));
    error_free(err);
}

void img_progress(bool on, uint64_t done, uint64_t total)
{
    if (on) {
        printf("    (%.2f/100%%)\r", total ? (double)done * 100.0 / (double)total : 100.0);
        fflush(stdout);
    }
}

int img_bad_option(int c, int argc, char **argv)
{
    /* Like qemu-img, name the word getopt stopped at, even inside a cluster of flags. */
    const char *opt = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    img_error("%s option '%s'\nTry '%s --help' for more information\n",
              c == ':' ? "missing argument for" : "unrecognized", opt, img_progname);
    return 1;
}

bool img_format_name_known(const char *name)
{
    static const char *const names[] = {
        "blkdebug", "blklogwrites", "blkverify", "bochs", "cloop", "compress",
        "copy-before-write", "copy-on-read", "dmg", "file", "ftp", "ftps", "gluster",
        "host_cdrom", "host_device", "http", "https", "iscsi", "iser", "luks", "nbd",
        "nfs", "null-aio", "null-co", "nvme", "parallels", "preallocate", "qcow",
        "qcow2", "qed", "quorum", "raw", "rbd", "replication", "snapshot-access", "ssh",
        "throttle", "vdi", "vhdx", "vmdk", "vpc", "vvfat",
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (!strcmp(name, names[i])) {
            return true;
        }
    }
    return false;
}

BlockImage *img_open_image_opts(const char *spec, unsigned flags)
{
    if (!strchr(spec, '=')) {
        /* A bare name: QEMU looks for a device or node by that name. */
        img_error("Could not open '%s': Cannot find device='%s' nor node-name='%s'\n",
                  spec, spec, spec);
        return NULL;
    }
    Error *err = NULL;
    BlockImage *img = blk_open_option_list(spec, flags, &err);
    if (!img) {
        img_error("Could not open '%s': %s\n", spec, error_get_pretty(err));
        error_free(err);
    }
    return img;
}

BlockImage *img_open_image(const char *name, const char *fmt, bool image_opts,
                           unsigned flags)
{
    return image_opts ? img_open_image_opts(name, flags) : img_open(name, fmt, flags);
}

bool img_chain_has_loop(const char *filename, const char *fmt)
{
    char **seen = NULL;
    size_t n = 0;
    char *name = xstrdup(filename), *next_fmt = fmt ? xstrdup(fmt) : NULL;
    bool loop = false;
    while (name && !loop) {
        for (size_t i = 0; i < n && !loop; i++) {
            loop = !strcmp(seen[i], name);
        }
        if (loop) {
            img_error("Backing file '%s' creates an infinite loop.\n", name);
            break;
        }
        seen = xrealloc(seen, (n + 1) * sizeof(*seen));
        seen[n++] = name;
        /* Errors opening a link are left to the caller's real open. */
        BlockImage *img = blk_open(name, next_fmt, BLK_O_NO_BACKING, NULL);
        free(next_fmt);
        next_fmt = NULL;
        name = NULL;
        if (img && img->backing_name) {
            name = blk_backing_path(img->filename, img->backing_name);
            next_fmt = img->backing_fmt ? xstrdup(img->backing_fmt) : NULL;
        }
        if (img) {
            blk_close(img, NULL);
        }
    }
    if (loop) {
        free(name);
    }
    for (size_t i = 0; i < n; i++) {
        free(seen[i]);
    }
    free(seen);
    free(next_fmt);
    return loop;
}

/* The multiplier of a size suffix, 0 when @c is none. */
static uint64_t size_unit(char c)
{
    const char *units = "bkMGTPE";
    if (c == 'K') {
        c = 'k';
    }
    const char *u = c ? strchr(units, c) : NULL;
    return u ? (uint64_t)1 << (10 * (u - units)) : 0;
}

int img_parse_size(const char *str, uint64_t *out)
{
    while (*str == ' ' || *str == '\t') {
        str++;
    }
    if (*str < '0' || *str > '9') {
        return -EINVAL;
    }
    char *end;
    errno = 0;
    uint64_t whole = strtoull(str, &end, 0);
    if (errno) {
        return -ERANGE;
    }
    /* A fraction (decimal only) is allowed when the suffix makes it whole bytes. */
    double frac = 0;
    bool has_frac = *end == '.' && strncasecmp(str, "0x", 2) != 0;
    if (has_frac) {
        char *fend;
        frac = strtod(end, &fend);      /* ".", ".5" */
        end = fend > end ? fend : end + 1;
    }
    uint64_t unit = *end ? size_unit(*end) : 1;
    if (!unit || (*end && end[1])) {
        return -EINVAL;
    }
    if (has_frac && unit == 1 && frac != 0) {
        return -EINVAL;
    }
    if (whole > (uint64_t)INT64_MAX / unit) {
        return -ERANGE;
    }
    uint64_t v = whole * unit + (uint64_t)(frac * (double)unit);
    if (v > (uint64_t)INT64_MAX) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

/* After the options: exactly one operand, the image (info, check, map). */
bool img_one_image_name(int argc)
{
    if (optind != argc - 1) {
        img_error("Expecting one image file name\n");
        return false;
    }
    return true;
}

bool img_parse_output(const char *arg, bool *json)
{
    if (!strcmp(arg, "json")) {
        *json = true;
    } else if (!strcmp(arg, "human")) {
        *json = false;
    } else {
        img_error("--output must be used with human or json as argument.\n");
        return false;
    }
    return true;
}

/*
 * End a command that modified img: report its error, then close the image.
 * Closing writes metadata back, so a failed close fails a command that had
 * succeeded. Returns 0 or -1.
 */
int img_finish_modification(BlockImage *img, int ret, Error *err)
{
    if (ret < 0 && err) {
        img_error("%s\n", error_get_pretty(err));
    }
    error_free(err);
    Error *close_err = NULL;
    if (blk_close(img, ret < 0 ? NULL : &close_err) < 0 && ret == 0) {
        img_report_err(close_err);
        ret = -1;
    }
    return ret;
}

static void indent(int level)
{
    for (int i = 0; i < level; i++) {
        fputs("    ", stdout);
    }
}

static void print_value(json_object *v, int level)
{
    switch (json_object_get_type(v)) {
    case json_type_object: {
        bool first = true;
        fputs("{\n", stdout);
        json_object_object_foreach(v, key, val) {
            if (!first) {
                fputs(",\n", stdout);
            }
            first = false;
            indent(level + 1);
            json_object *k = json_object_new_string(key);
            printf("%s: ", json_object_to_json_string_ext(k, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
            json_object_put(k);
            print_value(val, level + 1);
        }
        fputs("\n", stdout);
        indent(level);
        fputs("}", stdout);
        break;
    }
    case json_type_array: {
        size_t n = json_object_array_length(v);
        fputs("[\n", stdout);
        for (size_t i = 0; i < n; i++) {
            indent(level + 1);
            print_value(json_object_array_get_idx(v, i), level + 1);
            fputs(i + 1 < n ? ",\n" : "\n", stdout);
        }
        indent(level);
        fputs("]", stdout);
        break;
    }
    default:
        fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), stdout);
        break;
    }
}

void img_json_print(json_object *obj)
{
    print_value(obj, 0);
    fputs("\n", stdout);
}

char *img_size_str(uint64_t bytes)
{
    static const char *const units[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
    int exp = 0;
    /* Switch unit once the value reaches 1000 of the smaller one. */
    frexp((double)bytes / (1000.0 / 1024.0), &exp);
    int i = exp > 0 ? (exp - 1) / 10 : 0;
    if (i >= (int)ARRAY_SIZE(units)) {
        i = ARRAY_SIZE(units) - 1;
    }
    return xasprintf("%0.3g %sB", (double)bytes / (double)(1ull << (i * 10)), units[i]);
}

BlockImage *img_open(const char *filename, const char *fmt, unsigned flags)
{
    Error *err = NULL;
    BlockImage *img = blk_open(filename, fmt, flags, &err);
    if (!img) {
        img_error("Could not open '%s': %s\n", filename,
                error_get_pretty(err));
        error_free(err);
    }
    return img;
}
