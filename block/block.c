/*
 * The block layer's front door: probing, opening backing chains, and the
 * thin dispatch from the public API to the format drivers.
 */
#include "block/block-int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/dirty-bitmap.h"
#include "util/keyval.h"
#include "util/osdep.h"

static const BlockDriver *const drivers[] = {
    &blk_driver_qcow2,
    &blk_driver_parallels,
    &blk_driver_raw,
    &blk_driver_null_co,
    &blk_driver_null_aio,
};

static const BlockDriver *find_driver(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++) {
        if (strcmp(drivers[i]->name, name) == 0) {
            return drivers[i];
        }
    }
    return NULL;
}

bool blk_driver_is_protocol(const char *name)
{
    const BlockDriver *drv = find_driver(name);
    return drv && drv->open_protocol;
}

static const BlockDriver *probe_driver(BlockFile *f, Error **errp)
{
    uint8_t *buf = blk_alloc_aligned(BLK_DIRECT_ALIGN);
    const BlockDriver *best = &blk_driver_raw;
    int best_score = 0;
    if (bfile_pread(f, 0, buf, BLK_DIRECT_ALIGN, errp) < 0) {
        free(buf);
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++) {
        int score = drivers[i]->probe ? drivers[i]->probe(buf, BLK_DIRECT_ALIGN) : 0;
        if (score > best_score) {
            best_score = score;
            best = drivers[i];
        }
    }
    free(buf);
    return best;
}

char *blk_backing_path(const char *image_path, const char *backing)
{
    if (backing[0] == '/' || strncmp(image_path, "/dev/fdset/", 11) == 0 ||
        !strchr(image_path, '/')) {
        return xstrdup(backing);
    }
    char *copy = xstrdup(image_path);
    char *path = xasprintf("%s/%s", dirname(copy), backing);
    free(copy);
    return path;
}

/* True when @path names the same file as one already in the chain above. */
static bool chain_has_file(BlockImage *top, const char *path)
{
    struct stat a, b;
    if (stat(path, &a) < 0) {
        return false;
    }
    for (BlockImage *i = top; i; i = i->parent) {
        if (fstat(i->file.fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            return true;
        }
    }
    return false;
}

static BlockImage *open_at_depth(const char *filename, const char *format,
                                 unsigned flags, int depth, BlockImage *top,
                                 BlockFile *file, const KeyValList *format_opts,
                                 Error **errp);

char *blk_image_backing_path(BlockImage *img, const char *backing)
{
    if (!img->file.ops) {
        return blk_backing_path(img->filename, backing);
    }
    if (backing[0] == '/') {
        return xstrdup(backing);
    }
    return img->base_path ? blk_backing_path(img->base_path, backing) : NULL;
}

int blk_open_backing(BlockImage *img, Error **errp)
{
    if (!img->backing_name || (img->flags & BLK_O_NO_BACKING)) {
        return 0;
    }
    if (img->depth + 1 >= BLK_MAX_BACKING_DEPTH) {
        error_setg(errp, "backing chain of '%s' is deeper than %d images",
                   img->filename, BLK_MAX_BACKING_DEPTH);
        return -1;
    }
    char *path = blk_image_backing_path(img, img->backing_name);
    if (!path) {
        error_setg(errp, "Cannot use relative backing file names for '%s'", img->filename);
        return -1;
    }
    BlockImage *top = img;
    if (chain_has_file(top, path)) {
        error_setg(errp, "backing file '%s' of '%s' makes a loop in the backing chain",
                   path, img->filename);
        free(path);
        return -1;
    }
    /* Backing files are only ever read. */
    unsigned flags = img->flags & (BLK_O_NOCACHE | BLK_O_URING);
    img->backing = open_at_depth(path, img->backing_fmt, flags, img->depth + 1, img, NULL,
                                 NULL, errp);
    if (!img->backing) {
        error_prepend(errp, "Could not open backing file: ");
    }
    free(path);
    return img->backing ? 0 : -1;
}

/* Every open option must be one the format driver takes: none is silently dropped. */
static bool format_takes_options(const BlockDriver *drv, const KeyValList *opts, Error **errp)
{
    for (int i = 0; opts && i < opts->n; i++) {
        if (!drv->takes_option || !drv->takes_option(opts->items[i].key)) {
            error_setg(errp, "Block format '%s' does not support the option '%s'", drv->name,
                       opts->items[i].key);
            return false;
        }
    }
    return true;
}

static BlockImage *open_at_depth(const char *filename, const char *format,
                                 unsigned flags, int depth, BlockImage *top,
                                 BlockFile *file, const KeyValList *format_opts,
                                 Error **errp)
{
    BlockImage *img = xzalloc(sizeof(*img));
    img->file.fd = -1;
    img->filename = xstrdup(filename);
    img->flags = flags;
    img->depth = depth;
    img->parent = top;
    if (file) {
        img->file = *file;      /* a file node opened by the caller */
    } else if (bfile_open(&img->file, filename, flags & BLK_O_RDWR, flags & BLK_O_NOCACHE,
                          errp) < 0) {
        goto fail;
    }
    img->file.unsafe = flags & BLK_O_UNSAFE;
    if (format) {
        img->drv = find_driver(format);
        if (!img->drv) {
            error_setg(errp, "Unknown driver '%s'", format);
            goto fail;
        }
    } else {
        img->drv = probe_driver(&img->file, errp);
        if (!img->drv) {
            goto fail;
        }
    }
    if (!format_takes_options(img->drv, format_opts, errp)) {
        goto fail;
    }
    img->open_opts = format_opts;
    int ret = img->drv->open(img, errp);
    img->open_opts = NULL;
    if (ret < 0) {
        goto fail;
    }
    return img;
fail:
    if (img->backing) {
        blk_close(img->backing, NULL);
    }
    bfile_close(&img->file);
    free(img->backing_name);
    free(img->backing_fmt);
    free(img->filename);
    free(img);
    return NULL;
}

BlockImage *blk_open_over_file(BlockFile *file, const char *name, char *base,
                               const char *format, unsigned flags, Error **errp)
{
    file->unsafe = flags & BLK_O_UNSAFE;
    BlockImage *img = open_at_depth(name, format, flags, 0, NULL, file, NULL, errp);
    if (img) {
        img->base_path = base;
    } else {
        free(base);
    }
    return img;
}

/*
 * A name is "protocol:rest" when a colon comes before any slash.  Only the
 * file protocol exists here: "file:" is dropped, and a relative rest that
 * still holds a colon gets "./" so it reads as a plain path from then on
 * (as in the name qemu-img shows for it).
 */
static char *strip_protocol(const char *name, Error **errp)
{
    const char *colon = strchr(name, ':'), *slash = strchr(name, '/');
    if (!colon || (slash && slash < colon)) {
        return xstrdup(name);
    }
    if (strncmp(name, "file:", 5) != 0) {
        error_setg(errp, "Unknown protocol '%.*s'", (int)(colon - name), name);
        return NULL;
    }
    const char *rest = name + 5;
    if (rest[0] != '/' && strchr(rest, ':')) {
        char *dotted = xmalloc(strlen(rest) + 3);
        sprintf(dotted, "./%s", rest);
        return dotted;
    }
    return xstrdup(rest);
}

/*
 * The driver of a protocol with no host file that @format names, or that
 * @filename's "protocol:" prefix names; NULL for a host file.
 */
static const BlockDriver *protocol_driver(const char *filename, const char *format)
{
    const BlockDriver *drv = format ? find_driver(format) : NULL;
    if (drv && drv->open_protocol) {
        return drv;
    }
    const char *colon = filename ? strchr(filename, ':') : NULL;
    const char *slash = filename ? strchr(filename, '/') : NULL;
    if (!colon || (slash && slash < colon)) {
        return NULL;
    }
    char *name = xstrndup_safe(filename, (size_t)(colon - filename));
    drv = find_driver(name);
    free(name);
    return drv && drv->open_protocol ? drv : NULL;
}

static BlockImage *open_protocol(const BlockDriver *drv, const char *filename,
                                 const char *format, const KeyValList *opts,
                                 unsigned flags, Error **errp)
{
    char *canonical = xasprintf("%s://", drv->name);
    /* Raw over a protocol is the protocol's bytes unchanged; nothing else fits. */
    if (format && strcmp(format, "raw") && strcmp(format, drv->name)) {
        error_setg(errp, "format '%s' is not supported over the '%s' protocol",
                   format, drv->name);
    } else if (filename && *filename && strcmp(filename, canonical)) {
        error_setg(errp, "The only allowed filename for this driver is '%s'", canonical);
    } else {
        BlockImage *img = xzalloc(sizeof(*img));
        img->file.fd = -1;
        img->filename = canonical;
        img->flags = flags;
        img->drv = drv;
        if (drv->open_protocol(img, opts, errp) == 0) {
            return img;
        }
        free(img);
    }
    free(canonical);
    return NULL;
}

/* -drive's own keys: never options of the protocol driver. */
static bool is_drive_key(const char *key)
{
    static const char *const keys[] = {
        "file", "format", "driver", "if", "id", "index", "bus", "unit", "media",
        "cache", "aio", "readonly", "read-only", "snapshot", "serial", "werror",
        "rerror", "discard", "detect-zeroes", "auto-read-only", "copy-on-read",
        "node-name", "cyls", "heads", "secs", "trans", "addr", "force-share",
        "cache.direct", "cache.no-flush", "cache.writeback",
    };
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (!strcmp(key, keys[i])) {
            return true;
        }
    }
    return !strncmp(key, "throttling.", 11);
}

void blk_drive_protocol_options(const KeyValList *drive, KeyValList *out)
{
    const char *driver = keyval_get(drive, "driver");
    const BlockDriver *drv = driver ? find_driver(driver) : NULL;
    bool top_is_protocol = drv && drv->open_protocol;
    out->n = 0;
    out->items = xzalloc(sizeof(*out->items) * (size_t)(drive->n + 1));
    for (int i = 0; i < drive->n; i++) {
        const KeyVal *kv = &drive->items[i];
        if (!strncmp(kv->key, "file.", 5)) {
            out->items[out->n++] = (KeyVal){ kv->key + 5, kv->value };
        } else if (top_is_protocol && !is_drive_key(kv->key)) {
            out->items[out->n++] = *kv;
        }
    }
}

/* "blkdebug:CONFIG:IMAGE": a blkdebug node with a rules file over a host file. */
static BlockImage *open_blkdebug_name(const char *filename, const char *format,
                                      unsigned flags, Error **errp)
{
    const char *config = filename + 9, *colon = strchr(config, ':');
    if (!colon || !colon[1]) {
        error_setg(errp, "blkdebug requires both config file and image path");
        return NULL;
    }
    char *cfg = xstrndup_safe(config, (size_t)(colon - config));
    KeyValList opts = { 0 };
    KeyVal items[3] = {
        { (char *)"driver", (char *)"blkdebug" },
        { (char *)"image.filename", (char *)colon + 1 },
        { (char *)"config", cfg },
    };
    opts.items = items;
    opts.n = cfg[0] ? 3 : 2;
    BlockFile f = { .fd = -1 };
    char *base = NULL;
    BlockImage *img = NULL;
    if (bfile_open_node(&f, &opts, flags & BLK_O_RDWR, flags & BLK_O_NOCACHE, &base,
                        errp) == 0) {
        img = blk_open_over_file(&f, filename, base, format, flags, errp);
    }
    free(cfg);
    return img;
}

BlockImage *blk_open(const char *filename, const char *format, unsigned flags,
                     Error **errp)
{
    return blk_open_opts(filename, format, NULL, flags, errp);
}

BlockImage *blk_open_opts(const char *filename, const char *format,
                          const KeyValList *proto_opts, unsigned flags, Error **errp)
{
    return blk_open_format_opts(filename, format, proto_opts, NULL, flags, errp);
}

BlockImage *blk_open_format_opts(const char *filename, const char *format,
                                 const KeyValList *proto_opts, const KeyValList *format_opts,
                                 unsigned flags, Error **errp)
{
    bool host_file = filename && !blk_is_json_filename(filename) &&
                     strncmp(filename, "blkdebug:", 9) && !protocol_driver(filename, format);
    if (format_opts && format_opts->n && !host_file) {
        /* Only an image over a host file takes format options this way. */
        error_setg(errp, "Block format '%s' does not support the option '%s'",
                   format ? format : "raw", format_opts->items[0].key);
        return NULL;
    }
    if (blk_is_json_filename(filename)) {
        return blk_open_json(filename, format, proto_opts, flags, errp);
    }
    if (filename && !strncmp(filename, "blkdebug:", 9)) {
        return open_blkdebug_name(filename, format, flags, errp);
    }
    const BlockDriver *proto = protocol_driver(filename, format);
    if (proto) {
        return open_protocol(proto, filename, format, proto_opts, flags, errp);
    }
    if (!filename) {
        error_setg(errp, "A block device needs a file name");
        return NULL;
    }
    char *path = strip_protocol(filename, errp);
    if (!path) {
        return NULL;
    }
    BlockImage *img = open_at_depth(path, format, flags, 0, NULL, NULL, format_opts, errp);
    free(path);
    return img;
}

int blk_close(BlockImage *img, Error **errp)
{
    if (!img) {
        return 0;
    }
    int ret = 0;
    if (img->queue) {
        blk_queue_free(img->queue);
    }
    /* Live persistent bitmaps go back to the format, which writes them now. */
    if (blk_dirty_bitmaps_store(img, errp) < 0) {
        ret = -1;
        errp = NULL;
    }
    blk_dirty_bitmaps_free_all(img);
    if (img->drv->close) {
        ret = img->drv->close(img, errp) < 0 ? -1 : ret;
    }
    if (img->backing) {
        blk_close(img->backing, NULL);
    }
    bfile_close(&img->file);
    free(img->backing_name);
    free(img->backing_fmt);
    free(img->filename);
    free(img->base_path);
    free(img);
    return ret;
}

uint64_t blk_size(BlockImage *img) { return img->size; }
const char *blk_format(BlockImage *img) { return img->drv->name; }
const char *blk_filename(BlockImage *img) { return img->filename; }
BlockImage *blk_backing(BlockImage *img) { return img->backing; }
bool blk_is_writable(BlockImage *img) { return img->flags & BLK_O_RDWR; }

int64_t blk_allocated_bytes(BlockImage *img) { return bfile_allocated_bytes(&img->file); }
uint32_t blk_cluster_size(BlockImage *img) { return img->cluster_size; }

static int check_request(BlockImage *img, uint64_t off, uint64_t len, bool write,
                         Error **errp)
{
    if (!range_within(off, len, img->size)) {
        error_setg(errp, "request [%llu, +%llu) is beyond the end of the %llu-byte image",
                   (unsigned long long)off, (unsigned long long)len,
                   (unsigned long long)img->size);
        return -1;
    }
    if (write && !(img->flags & BLK_O_RDWR)) {
        error_setg(errp, "image '%s' is read-only", img->filename);
        return -1;
    }
    if (write) {
        blk_aio_quiesce(img);
    }
    return 0;
}

int blk_pread(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp)
{
    if (check_request(img, off, len, false, errp) < 0) {
        return -1;
    }
    return len ? img->drv->read(img, off, buf, len, errp) : 0;
}

int blk_pwrite(BlockImage *img, uint64_t off, const void *buf, size_t len, Error **errp)
{
    if (check_request(img, off, len, true, errp) < 0) {
        return -1;
    }
    blk_dirty_bitmaps_mark(img, off, len);
    return len ? img->drv->write(img, off, buf, len, errp) : 0;
}

int blk_pwrite_compressed(BlockImage *img, uint64_t off, const void *buf, size_t len,
                          Error **errp)
{
    if (check_request(img, off, len, true, errp) < 0) {
        return -1;
    }
    if (!img->drv->write_compressed) {
        error_setg(errp, "format '%s' does not support compression", img->drv->name);
        return -1;
    }
    blk_dirty_bitmaps_mark(img, off, len);
    return img->drv->write_compressed(img, off, buf, len, errp);
}

int blk_flush(BlockImage *img, Error **errp)
{
    blk_aio_quiesce(img);
    if (!(img->flags & BLK_O_RDWR)) {
        return 0;
    }
    return img->drv->flush ? img->drv->flush(img, errp) : bfile_flush(&img->file, errp);
}

int blk_discard(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    if (check_request(img, off, len, true, errp) < 0) {
        return -1;
    }
    blk_dirty_bitmaps_mark(img, off, len);
    return img->drv->discard ? img->drv->discard(img, off, len, errp) : 0;
}

int blk_write_zeroes(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    if (check_request(img, off, len, true, errp) < 0) {
        return -1;
    }
    blk_dirty_bitmaps_mark(img, off, len);
    if (img->drv->write_zeroes) {
        return img->drv->write_zeroes(img, off, len, errp);
    }
    return blk_write_zeroes_fallback(img, off, len, errp);
}

int blk_write_zeroes_fallback(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    size_t chunk = MIN(len, (uint64_t)1 << 20);
    void *zeros = blk_alloc_aligned(chunk);
    int ret = 0;
    while (len && ret == 0) {
        size_t n = MIN(len, (uint64_t)chunk);
        ret = img->drv->write(img, off, zeros, n, errp);
        off += n;
        len -= n;
    }
    free(zeros);
    return ret;
}

int blk_block_status(BlockImage *img, uint64_t off, uint64_t len, BlockStatus *st,
                     Error **errp)
{
    if (check_request(img, off, len, false, errp) < 0) {
        return -1;
    }
    memset(st, 0, sizeof(*st));
    if (!img->drv->block_status) {
        st->kind = BLK_STATUS_DATA;
        st->len = len;
        st->host_offset = off;
        return 0;
    }
    return img->drv->block_status(img, off, len, st, errp);
}

int blk_read_backing(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp)
{
    BlockImage *b = img->backing;
    if (!b || off >= b->size) {
        memset(buf, 0, len);
        return 0;
    }
    size_t n = MIN((uint64_t)len, b->size - off);
    if (b->drv->read(b, off, buf, n, errp) < 0) {
        return -1;
    }
    memset((uint8_t *)buf + n, 0, len - n);
    return 0;
}

int blk_resize(BlockImage *img, uint64_t size, Error **errp)
{
    if (!(img->flags & BLK_O_RDWR)) {
        error_setg(errp, "image '%s' is read-only", img->filename);
        return -1;
    }
    if (!img->drv->resize) {
        error_setg(errp, "Image format driver does not support resize");
        return -1;
    }
    blk_aio_quiesce(img);
    if (img->drv->resize(img, size, errp) < 0) {
        return -1;
    }
    blk_dirty_bitmaps_truncate(img, img->size);
    return 0;
}

int blk_make_empty(BlockImage *img, Error **errp)
{
    if (!img->drv->make_empty) {
        error_setg(errp, "Format driver '%s' cannot empty an image", img->drv->name);
        return -1;
    }
    blk_aio_quiesce(img);
    return img->drv->make_empty(img, errp);
}

int blk_amend(BlockImage *img, const BlockCreateOptions *o, Error **errp)
{
    if (!img->drv->amend) {
        error_setg(errp, "Format driver '%s' does not support option amendment",
                   img->drv->name);
        return -1;
    }
    if (!(img->flags & BLK_O_RDWR)) {
        error_setg(errp, "image '%s' is read-only", img->filename);
        return -1;
    }
    blk_aio_quiesce(img);
    return img->drv->amend(img, o, errp);
}

int blk_change_backing_file(BlockImage *img, const char *name, const char *fmt,
                            Error **errp)
{
    if (!img->drv->change_backing_file) {
        error_setg(errp, "Operation not supported");
        return -1;
    }
    if (!(img->flags & BLK_O_RDWR)) {
        error_setg(errp, "image '%s' is read-only", img->filename);
        return -1;
    }
    blk_aio_quiesce(img);
    char *old_name = img->backing_name, *old_fmt = img->backing_fmt;
    bool none = !name || !*name;
    img->backing_name = none ? NULL : strdup(name);
    img->backing_fmt = none || !fmt ? NULL : strdup(fmt);
    if (img->drv->change_backing_file(img, errp) < 0) {
        free(img->backing_name);
        free(img->backing_fmt);
        img->backing_name = old_name;
        img->backing_fmt = old_fmt;
        return -1;
    }
    free(old_name);
    free(old_fmt);
    return 0;
}

int blk_check(BlockImage *img, BlockCheckResult *res, int fix, Error **errp)
{
    memset(res, 0, sizeof(*res));
    if (!img->drv->check) {
        error_setg(errp, "This image format does not support checks");
        return -1;
    }
    if (fix && !(img->flags & BLK_O_RDWR)) {
        error_setg(errp, "image '%s' must be writable to repair it", img->filename);
        return -1;
    }
    return img->drv->check(img, res, fix, errp);
}

int blk_create(const char *filename, const BlockCreateOptions *opts, Error **errp)
{
    const BlockDriver *drv = find_driver(opts->format ? opts->format : "raw");
    if (!drv || !drv->create) {
        error_setg(errp, "Unknown file format '%s'", opts->format);
        return -1;
    }
    /*
     * Guest disks are made of 512-byte sectors: like qemu-img, every format
     * gets its size rounded up to the next sector, so a 1,860,000-byte
     * source converts to a 1,860,096-byte image in both tools.
     */
    BlockCreateOptions o = *opts;
    if (o.size > UINT64_MAX - (BDRV_SECTOR_SIZE - 1)) {
        error_setg(errp, "Image size %llu is too large", (unsigned long long)o.size);
        return -1;
    }
    o.size = ROUND_UP(o.size, BDRV_SECTOR_SIZE);
    char *path = strip_protocol(filename, errp);
    if (!path) {
        return -1;
    }
    int ret = drv->create(path, &o, errp);
    free(path);
    return ret;
}

int blk_get_info(BlockImage *img, BlockFormatInfo *info, Error **errp)
{
    memset(info, 0, sizeof(*info));
    return img->drv->get_info ? img->drv->get_info(img, info, errp) : 0;
}

void blk_free_info(BlockFormatInfo *info)
{
    for (int i = 0; i < info->nb_snapshots; i++) {
        free(info->snapshots[i].id);
        free(info->snapshots[i].name);
    }
    for (int i = 0; i < info->nb_bitmaps; i++) {
        free(info->bitmaps[i].name);
    }
    free(info->snapshots);
    free(info->bitmaps);
    free(info->backing_file);
    free(info->backing_fmt);
    free(info->data_file);
    memset(info, 0, sizeof(*info));
}

/* Snapshot and bitmap calls: writable image, driver support, then dispatch. */
static int can_modify(BlockImage *img, const void *op, const char *what, Error **errp)
{
    if (!op) {
        error_setg(errp, "format '%s' does not support %s", img->drv->name, what);
        return -1;
    }
    if (!(img->flags & BLK_O_RDWR)) {
        error_setg(errp, "image '%s' is read-only", img->filename);
        return -1;
    }
    blk_aio_quiesce(img);
    return 0;
}

int blk_snapshot_create(BlockImage *img, const char *name, Error **errp)
{
    if (can_modify(img, img->drv->snapshot_create, "internal snapshots", errp) < 0) {
        return -1;
    }
    return img->drv->snapshot_create(img, name, errp);
}

int blk_snapshot_apply(BlockImage *img, const char *name, Error **errp)
{
    if (can_modify(img, img->drv->snapshot_apply, "internal snapshots", errp) < 0) {
        return -1;
    }
    return img->drv->snapshot_apply(img, name, errp);
}

int blk_snapshot_delete(BlockImage *img, const char *name, Error **errp)
{
    if (can_modify(img, img->drv->snapshot_delete, "internal snapshots", errp) < 0) {
        return -1;
    }
    return img->drv->snapshot_delete(img, name, errp);
}

int blk_bitmap_add(BlockImage *img, const char *name, uint32_t granularity,
                   bool disabled, Error **errp)
{
    if (can_modify(img, img->drv->bitmap_add, "persistent bitmaps", errp) < 0) {
        return -1;
    }
    return img->drv->bitmap_add(img, name, granularity, disabled, errp);
}

int blk_bitmap_remove(BlockImage *img, const char *name, Error **errp)
{
    if (can_modify(img, img->drv->bitmap_remove, "persistent bitmaps", errp) < 0) {
        return -1;
    }
    return img->drv->bitmap_remove(img, name, errp);
}

int blk_bitmap_clear(BlockImage *img, const char *name, Error **errp)
{
    if (can_modify(img, img->drv->bitmap_clear, "persistent bitmaps", errp) < 0) {
        return -1;
    }
    return img->drv->bitmap_clear(img, name, errp);
}

int blk_bitmap_enable(BlockImage *img, const char *name, bool enable, Error **errp)
{
    if (can_modify(img, img->drv->bitmap_enable, "persistent bitmaps", errp) < 0) {
        return -1;
    }
    return img->drv->bitmap_enable(img, name, enable, errp);
}

int blk_bitmap_get(BlockImage *img, const char *name, uint8_t **bits,
                   uint64_t *nbits, uint32_t *granularity, Error **errp)
{
    if (!img->drv->bitmap_get) {
        error_setg(errp, "format '%s' does not support persistent bitmaps",
                   img->drv->name);
        return -1;
    }
    return img->drv->bitmap_get(img, name, bits, nbits, granularity, errp);
}

int blk_bitmap_merge(BlockImage *img, const char *dst, BlockImage *src_img,
                     const char *src, Error **errp)
{
    if (can_modify(img, img->drv->bitmap_or, "persistent bitmaps", errp) < 0) {
        return -1;
    }
    uint8_t *bits;
    uint64_t nbits;
    uint32_t gran;
    if (blk_bitmap_get(src_img ? src_img : img, src, &bits, &nbits, &gran, errp) < 0) {
        return -1;
    }
    int ret = img->drv->bitmap_or(img, dst, bits, nbits, gran, errp);
    free(bits);
    return ret;
}
