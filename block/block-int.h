/*
 * Inside the block layer: the format driver interface and the host file
 * helpers every format is built on.  Not for use outside block/ and tools/.
 */
#ifndef VIREO_BLOCK_BLOCK_INT_H
#define VIREO_BLOCK_BLOCK_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block/block.h"
#include "util/byteorder.h"

#define BDRV_SECTOR_SIZE 512
#define BLK_DIRECT_ALIGN 4096          /* O_DIRECT alignment we always honour */
#define BLK_MAX_BACKING_DEPTH 32

/* ---- Host files ---- */

/*
 * A file node that is not one host file (blkdebug, quorum): the bfile_*
 * calls on a BlockFile with ops go to these instead of a descriptor, whose
 * fd is then -1 (so fd-only shortcuts such as fallocate or SEEK_DATA fail
 * and their callers take the generic path).
 */
typedef struct BlockFileOps {
    const char *name;
    int (*pread)(void *s, uint64_t off, void *buf, size_t len, Error **errp);
    int (*pwrite)(void *s, uint64_t off, const void *buf, size_t len, Error **errp);
    int (*flush)(void *s, Error **errp);
    int64_t (*length)(void *s, Error **errp);
    int (*truncate)(void *s, uint64_t len, Error **errp);
    int64_t (*allocated)(void *s);
    /* The host file whose holes are this node's (SEEK_DATA/SEEK_HOLE), or -1. */
    int (*hole_fd)(void *s);
    void (*close)(void *s);
} BlockFileOps;

typedef struct BlockFile {
    int fd;                 /* -1 when closed */
    bool direct;            /* opened O_DIRECT: bounce unaligned requests */
    bool writable;
    bool unsafe;            /* cache=unsafe: flushes are skipped */
    const BlockFileOps *ops;    /* set for a filter node (no fd) */
    void *ops_state;
} BlockFile;

int bfile_open(BlockFile *f, const char *path, bool writable, bool direct, Error **errp);
void bfile_close(BlockFile *f);
/* Reads past the end of the file return zeros. */
/*
 * Ask the filesystem to allocate @hint-byte extents for a new image file,
 * so small scattered writes do not fragment it.  Only XFS has the knob;
 * elsewhere (and for 0) nothing happens, as the hint is advisory.
 */
void bfile_set_extent_size_hint(int fd, uint64_t hint);
/* nocow=on: ask the filesystem (btrfs) not to copy-on-write a new, empty file. */
void bfile_set_nocow(int fd, bool nocow);
int bfile_pread(BlockFile *f, uint64_t off, void *buf, size_t len, Error **errp);
int bfile_pwrite(BlockFile *f, uint64_t off, const void *buf, size_t len, Error **errp);
int bfile_flush(BlockFile *f, Error **errp);
int64_t bfile_length(BlockFile *f, Error **errp);
int bfile_truncate(BlockFile *f, uint64_t len, Error **errp);
/* Make [off, off+len) read as zeros without growing the file. */
int bfile_zero_range(BlockFile *f, uint64_t off, uint64_t len, Error **errp);
int64_t bfile_allocated_bytes(BlockFile *f);
/* The descriptor to ask lseek(SEEK_DATA/SEEK_HOLE) about @f's holes, or -1. */
int bfile_hole_fd(BlockFile *f);
/*
 * Open the file node @opts describe ("driver" = file, blkdebug or quorum,
 * with that driver's options; a plain "filename" means a host file).
 * *@base gets a path whose directory relative names resolve against, or
 * NULL when the node has none (quorum).
 */
int bfile_open_node(BlockFile *f, const KeyValList *opts, bool writable, bool direct,
                    char **base, Error **errp);
int blkdebug_open(BlockFile *f, const KeyValList *opts, bool writable, bool direct,
                  char **base, Error **errp);
int quorum_open(BlockFile *f, const KeyValList *opts, bool writable, bool direct,
                char **base, Error **errp);
/* Whether @name is a file-node driver opened by bfile_open_node (blkdebug, quorum). */
bool bfile_is_filter_driver(const char *name);
/*
 * The "blkdebug:CONFIG:IMAGE" name of a blkdebug node @opts describe, when
 * it has no options beyond config and a plain image file; else NULL.
 */
char *blkdebug_plain_name(const KeyValList *opts);
/* "json:{...}" naming a filter node by its flat options. */
char *bfile_node_json_name(const KeyValList *opts);
/* Open @format (NULL: probe; "raw" for the node's bytes) over the filter node @opts describe. */
BlockImage *blk_open_filter_node(const KeyValList *opts, const char *name, const char *format,
                                 unsigned flags, Error **errp);
void *blk_alloc_aligned(size_t len);     /* zeroed, BLK_DIRECT_ALIGN-aligned */

/* ---- Async plumbing between the queue and the formats ---- */

typedef struct BlockAioReq BlockAioReq;

typedef enum BlockAioPlan {
    BLK_PLAN_DIRECT,   /* one host I/O at req->host_offset covers everything */
    BLK_PLAN_DONE,     /* the driver finished it synchronously, req->ret set */
    BLK_PLAN_WAIT,     /* parked by the driver; it calls blk_aio_replan() later */
    BLK_PLAN_SYNC,     /* needs the generic synchronous path (after a quiesce) */
} BlockAioPlan;

enum { BLK_AIO_READ, BLK_AIO_WRITE, BLK_AIO_FLUSH };

struct BlockAioReq {
    BlockQueue *queue;
    int type;                      /* BLK_AIO_* */
    uint64_t offset, len;          /* guest range */
    struct iovec *iov;
    int iovcnt;
    BlockCompletionFn *cb;
    void *opaque;
    int ret;
    uint64_t host_offset;          /* for BLK_PLAN_DIRECT */
    BlockFile *host_file;          /* for BLK_PLAN_DIRECT: NULL means the image file */
    /* Called after the host I/O completed, before the caller's callback. */
    void (*commit)(BlockImage *img, BlockAioReq *req);
    void *commit_data;
    BlockAioReq *next;             /* list link: waiters, completions */
};

/* Re-plan a request the driver parked with BLK_PLAN_WAIT. */
void blk_aio_replan(BlockAioReq *req);
/* Wait for every host I/O of the image's queue (commits run, callbacks deferred). */
void blk_aio_quiesce(BlockImage *img);

/* ---- Format drivers ---- */

typedef struct BlockDriver {
    const char *name;
    /* How sure the driver is that @buf (the file's first bytes) is its format. */
    int (*probe)(const uint8_t *buf, size_t len);
    int (*open)(BlockImage *img, Error **errp);
    /*
     * Set for protocol drivers with no host file behind them (null-co):
     * they open from their own options instead of a file.
     */
    int (*open_protocol)(BlockImage *img, const KeyValList *opts, Error **errp);
    /*
     * Whether the format takes open option @key ("l2-cache-size"); the
     * driver's open reads them from img->open_opts.  NULL: it takes none.
     */
    bool (*takes_option)(const char *key);
    int (*close)(BlockImage *img, Error **errp);
    int (*create)(const char *filename, const BlockCreateOptions *opts, Error **errp);
    int (*read)(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp);
    int (*write)(BlockImage *img, uint64_t off, const void *buf, size_t len, Error **errp);
    int (*write_compressed)(BlockImage *img, uint64_t off, const void *buf, size_t len,
                            Error **errp);
    int (*flush)(BlockImage *img, Error **errp);
    int (*discard)(BlockImage *img, uint64_t off, uint64_t len, Error **errp);
    int (*write_zeroes)(BlockImage *img, uint64_t off, uint64_t len, Error **errp);
    int (*block_status)(BlockImage *img, uint64_t off, uint64_t len, BlockStatus *st,
                        Error **errp);
    int (*check)(BlockImage *img, BlockCheckResult *res, int fix, Error **errp);
    int (*resize)(BlockImage *img, uint64_t size, Error **errp);
    /* Make every cluster unallocated, showing the backing file (after a commit). */
    int (*make_empty)(BlockImage *img, Error **errp);
    /* Change the options named in o->given in place (qemu-img amend). */
    int (*amend)(BlockImage *img, const BlockCreateOptions *o, Error **errp);
    /* Record img->backing_name/backing_fmt (already set) in the image's header. */
    int (*change_backing_file)(BlockImage *img, Error **errp);
    int (*get_info)(BlockImage *img, BlockFormatInfo *info, Error **errp);
    BlockAioPlan (*aio_plan)(BlockImage *img, BlockAioReq *req);
    /* snapshots */
    int (*snapshot_create)(BlockImage *img, const char *name, Error **errp);
    int (*snapshot_apply)(BlockImage *img, const char *name, Error **errp);
    int (*snapshot_delete)(BlockImage *img, const char *name, Error **errp);
    /* persistent bitmaps */
    int (*bitmap_add)(BlockImage *img, const char *name, uint32_t granularity,
                      bool disabled, Error **errp);
    int (*bitmap_remove)(BlockImage *img, const char *name, Error **errp);
    int (*bitmap_clear)(BlockImage *img, const char *name, Error **errp);
    int (*bitmap_enable)(BlockImage *img, const char *name, bool enable, Error **errp);
    int (*bitmap_or)(BlockImage *img, const char *dst, const uint8_t *bits,
                     uint64_t nbits, uint32_t granularity, Error **errp);
    int (*bitmap_get)(BlockImage *img, const char *name, uint8_t **bits,
                      uint64_t *nbits, uint32_t *granularity, Error **errp);
    /* live bitmaps (dirty-bitmap.h): adopt the stored ones, hand them back */
    int (*bitmaps_load_live)(BlockImage *img, Error **errp);
    int (*bitmaps_store_live)(BlockImage *img, Error **errp);
    int (*bitmap_can_store)(BlockImage *img, const char *name, uint32_t granularity,
                            Error **errp);
    bool (*bitmap_is_stored)(BlockImage *img, const char *name);
} BlockDriver;

extern const BlockDriver blk_driver_raw;
extern const BlockDriver blk_driver_qcow2;
extern const BlockDriver blk_driver_parallels;
extern const BlockDriver blk_driver_null_co;
extern const BlockDriver blk_driver_null_aio;

struct BlockImage {
    const BlockDriver *drv;
    void *opaque;                  /* the format's state */
    BlockFile file;
    char *filename;
    unsigned flags;                /* BLK_O_* */
    uint64_t size;                 /* guest-visible size in bytes */
    uint32_t cluster_size;         /* allocation unit, set by the driver */
    BlockImage *backing;
    char *backing_name;            /* as recorded in the image */
    char *backing_fmt;
    int depth;                     /* position in a backing chain, 0 = top */
    BlockImage *parent;            /* the image this one backs, while opening */
    BlockQueue *queue;             /* the async queue attached, if any */
    struct BdrvDirtyBitmap *dirty_bitmaps;  /* live bitmaps, newest first */
    bool bitmaps_live;             /* live bitmaps record writes, not the format */
    /*
     * For an image whose file is a filter node (filename then json:{...}):
     * a path in the directory relative backing names resolve against, NULL
     * when none can be determined.
     */
    char *base_path;
    /* The format's open options (checked by takes_option), during open only. */
    const KeyValList *open_opts;
};

/* Open the backing file recorded in img->backing_name, if any. */
int blk_open_backing(BlockImage *img, Error **errp);
/* Read from the backing file, zero-filling beyond its end or when there is none. */
int blk_read_backing(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp);
/* Write zeros through the driver's write function. */
int blk_write_zeroes_fallback(BlockImage *img, uint64_t off, uint64_t len, Error **errp);
/* Resolve a backing path relative to the directory of @image_path. */
char *blk_backing_path(const char *image_path, const char *backing);
/* The same for an opened image; NULL when its file node has no directory. */
char *blk_image_backing_path(BlockImage *img, const char *backing);
/*
 * Open @format (NULL: probe) over an already opened file node, named @name,
 * relative names resolving next to @base (may be NULL).  Takes @file and @base.
 */
BlockImage *blk_open_over_file(BlockFile *file, const char *name, char *base,
                               const char *format, unsigned flags, Error **errp);

static inline bool is_power_of_2(uint64_t v)
{
    return v && !(v & (v - 1));
}

bool buffer_is_zero(const void *buf, size_t len);

/* ---- json: file names (block/json-filename.c) ---- */

/* Whether a driver of that name exists and is a protocol with no host file. */
bool blk_driver_is_protocol(const char *name);
/* Whether @filename is a "json:{...}" pseudo-protocol name. */
bool blk_is_json_filename(const char *filename);
/*
 * Open the image a json: name describes; @format (may be NULL) must agree
 * with its "driver", @extra_opts (may be NULL) are options given beside it.
 */
BlockImage *blk_open_json(const char *filename, const char *format,
                          const KeyValList *extra_opts, unsigned flags, Error **errp);

#endif
