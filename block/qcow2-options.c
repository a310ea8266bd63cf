/*
 * qcow2 open options, given as --image-opts keys or inside a json: name:
 * the metadata cache sizes and an external data file named at open.
 * Option names, value ranges and error texts are QEMU 7.2's.
 *
 * vireo's metadata cache holds whole tables, so l2-cache-entry-size is
 * checked (a power of two from 512 bytes to the cluster size) but entries
 * stay one cluster; the byte sizes become numbers of whole tables.  Lookups
 * are linear, so at most QCOW2_CACHE_MAX_ENTRIES tables are kept whatever
 * size is asked for.  vireo frees no cache memory on a timer, so
 * cache-clean-interval is range-checked and has nothing to drive.
 */
#include "block/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

#define QCOW2_CACHE_MAX_ENTRIES 4096
#define QCOW2_MIN_L2_TABLES 2
#define QCOW2_MIN_RB_BLOCKS 4

bool qcow2_takes_option(const char *key)
{
    static const char *const keys[] = {
        "cache-size", "l2-cache-size", "l2-cache-entry-size", "refcount-cache-size",
        "cache-clean-interval", "data-file", "data-file.filename", "data-file.driver",
    };
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (!strcmp(key, keys[i])) {
            return true;
        }
    }
    return false;
}

/* A size option: *out untouched (and true) when it is not given. */
static bool size_option(const KeyValList *opts, const char *key, uint64_t *out,
                        bool *given, Error **errp)
{
    const char *v = opts ? keyval_get(opts, key) : NULL;
    *given = v != NULL;
    if (!v) {
        return true;
    }
    uint64_t n;
    if (!parse_size(v, &n, NULL)) {
        error_setg(errp, "Parameter '%s' expects a non-negative number below 2^64\n"
                   "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, "
                   "peta-\nand exabytes, respectively.", key);
        return false;
    }
    *out = n;
    return true;
}

static int clamp_entries(uint64_t n, int min)
{
    if (n < (uint64_t)min) {
        return min;
    }
    return n > QCOW2_CACHE_MAX_ENTRIES ? QCOW2_CACHE_MAX_ENTRIES : (int)n;
}

/* The cache sizes, split and checked as QEMU does; tables counted in clusters. */
static int read_cache_sizes(BlockImage *img, const KeyValList *opts, Qcow2OpenOptions *o,
                            Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t combined = 0, l2 = 0, rb = 0, entry = s->cluster_size;
    bool has_combined, has_l2, has_rb, has_entry;
    if (!size_option(opts, "cache-size", &combined, &has_combined, errp) ||
        !size_option(opts, "l2-cache-size", &l2, &has_l2, errp) ||
        !size_option(opts, "refcount-cache-size", &rb, &has_rb, errp) ||
        !size_option(opts, "l2-cache-entry-size", &entry, &has_entry, errp)) {
        return -1;
    }
    if (has_combined && has_l2 && has_rb) {
        error_setg(errp, "cache-size, l2-cache-size and refcount-cache-size may not be set "
                   "at the same time");
        return -1;
    }
    if (has_combined && has_l2 && l2 > combined) {
        error_setg(errp, "l2-cache-size may not exceed cache-size");
        return -1;
    }
    if (has_combined && has_rb && rb > combined) {
        error_setg(errp, "refcount-cache-size may not exceed cache-size");
        return -1;
    }
    if (has_combined) {
        /* Whatever is not given explicitly shares the rest; L2 tables come first. */
        if (has_l2) {
            rb = combined - l2;
        } else if (has_rb) {
            l2 = combined - rb;
        } else {
            rb = combined / 4 > (uint64_t)s->cluster_size * QCOW2_MIN_RB_BLOCKS
                 ? (uint64_t)s->cluster_size * QCOW2_MIN_RB_BLOCKS : combined / 4;
            l2 = combined - rb;
        }
        has_l2 = has_rb = true;
    }
    if (entry < (1u << QCOW2_MIN_CLUSTER_BITS) || entry > s->cluster_size ||
        !is_power_of_2(entry)) {
        error_setg(errp, "L2 cache entry size must be a power of two between %d and the "
                   "cluster size (%u)", 1 << QCOW2_MIN_CLUSTER_BITS, s->cluster_size);
        return -1;
    }
    if (has_l2 && l2 / entry > INT_MAX) {
        error_setg(errp, "L2 cache size too big");
        return -1;
    }
    if (has_rb && rb / s->cluster_size > INT_MAX) {
        error_setg(errp, "Refcount cache size too big");
        return -1;
    }
    if (has_l2) {
        o->l2_tables = clamp_entries(l2 / s->cluster_size, QCOW2_MIN_L2_TABLES);
    }
    if (has_rb) {
        o->rb_blocks = clamp_entries(rb / s->cluster_size, QCOW2_MIN_RB_BLOCKS);
    }
    return 0;
}

static int read_clean_interval(const KeyValList *opts, Error **errp)
{
    const char *v = opts ? keyval_get(opts, "cache-clean-interval") : NULL;
    if (!v) {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || *v == '-' || errno) {
        error_setg(errp, "Parameter 'cache-clean-interval' expects a number");
        return -1;
    }
    if (n > UINT_MAX) {
        error_setg(errp, "Cache clean interval too big");
        return -1;
    }
    return 0;
}

/* data-file=PATH or data-file.filename=PATH (data-file.driver=file). */
static int read_data_file(BlockImage *img, const KeyValList *opts, Qcow2OpenOptions *o,
                          Error **errp)
{
    const char *ref = opts ? keyval_get(opts, "data-file") : NULL;
    const char *name = opts ? keyval_get(opts, "data-file.filename") : NULL;
    const char *driver = opts ? keyval_get(opts, "data-file.driver") : NULL;
    if (ref && (name || driver)) {
        error_setg(errp, "Cannot reference an existing block device with additional "
                   "options or a new filename");
        return -1;
    }
    if (driver && strcmp(driver, "file")) {
        error_setg(errp, "The data file of a qcow2 image can only be a host file here "
                   "(data-file.driver=file)");
        return -1;
    }
    if (driver && !name) {
        error_setg(errp, "Parameter 'filename' is required");
        return -1;
    }
    const char *path = ref ? ref : name;
    if (!path) {
        return 0;
    }
    if (!qcow2_has_data_file(img->opaque)) {
        error_setg(errp, "'data-file' can only be set for images with an external data "
                   "file");
        return -1;
    }
    o->data_file = xstrdup(path);
    return 0;
}

int qcow2_read_open_options(BlockImage *img, Qcow2OpenOptions *o, Error **errp)
{
    const KeyValList *opts = img->open_opts;
    o->l2_tables = o->rb_blocks = 0;
    o->data_file = NULL;
    if (read_cache_sizes(img, opts, o, errp) < 0 || read_clean_interval(opts, errp) < 0 ||
        read_data_file(img, opts, o, errp) < 0) {
        return -1;
    }
    return 0;
}
