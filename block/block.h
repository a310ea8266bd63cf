/*
 * The block layer: disk images (raw, qcow2, parallels) behind one API.
 *
 * vireo's virtio-blk device and the vireo-img tool both use it.  An image is
 * opened by file name, format and flags; it then offers synchronous
 * pread/pwrite/flush/discard/write-zeroes and an asynchronous queue whose
 * completions are announced on a file descriptor the caller polls from its
 * event loop.
 *
 * Every number read from an image is treated as hostile: a damaged or
 * malicious image yields an Error naming the problem, never a crash.
 */
#ifndef VIREO_BLOCK_BLOCK_H
#define VIREO_BLOCK_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/error.h"

typedef struct KeyValList KeyValList;   /* util/keyval.h */

typedef struct BlockImage BlockImage;

/* Flags for blk_open(). */
enum {
    BLK_O_RDWR       = 1u << 0,  /* open for writing (default read-only) */
    BLK_O_NOCACHE    = 1u << 1,  /* cache=none: O_DIRECT on every file */
    BLK_O_NO_BACKING = 1u << 2,  /* do not open backing files */
    BLK_O_URING      = 1u << 3,  /* async queue uses io_uring (else threads) */
    BLK_O_CHECK      = 1u << 4,  /* open for check: tolerate corrupt images */
    BLK_O_NO_BITMAPS = 1u << 5,  /* leave persistent bitmaps untouched */
    BLK_O_UNSAFE     = 1u << 6,  /* cache=unsafe: never wait for the disk (convert) */
};

/*
 * Open @filename (a path or /dev/fdset/N).  @format is "raw", "qcow2",
 * "parallels" or NULL to probe the contents.
 */
BlockImage *blk_open(const char *filename, const char *format, unsigned flags,
                     Error **errp);
/*
 * Open as blk_open() does, where @filename may also name a protocol with no
 * host file ("null-co://", "null-aio://"; NULL when @format names the
 * protocol driver itself) and @proto_opts (may be NULL) holds that
 * protocol's options, e.g. size and read-zeroes.  Host files ignore them.
 */
BlockImage *blk_open_opts(const char *filename, const char *format,
                          const KeyValList *proto_opts, unsigned flags, Error **errp);
/*
 * The same with @format_opts (may be NULL): the format driver's open options
 * ("l2-cache-size", "data-file.filename"), for an image over a host file;
 * one the format does not take is refused.
 */
BlockImage *blk_open_format_opts(const char *filename, const char *format,
                                 const KeyValList *proto_opts, const KeyValList *format_opts,
                                 unsigned flags, Error **errp);
/*
 * Open the image a whole set of open options describes, as dotted keys
 * ("driver", "file.filename", "file.driver", format options): the keys of
 * --image-opts and of json: file names.  @format (may be NULL) must agree
 * with "driver"; @name (may be NULL) names the image where no file name does.
 */
BlockImage *blk_open_options(const KeyValList *opts, const char *name, const char *format,
                             unsigned flags, Error **errp);
/* The same options as a "key=value,..." list (",," a literal comma): --image-opts. */
BlockImage *blk_open_option_list(const char *list, unsigned flags, Error **errp);
/*
 * The protocol options of a -drive option list: every "file.KEY", and when
 * driver= names the protocol itself, its other keys that are not -drive's
 * own.  The keys and values in @out point into @drive: release @out with
 * free(out->items), not keyval_free().
 */
void blk_drive_protocol_options(const KeyValList *drive, KeyValList *out);
/* Write back metadata, release everything.  Returns -1 if the final flush failed. */
int blk_close(BlockImage *img, Error **errp);

uint64_t blk_size(BlockImage *img);
const char *blk_format(BlockImage *img);
const char *blk_filename(BlockImage *img);
BlockImage *blk_backing(BlockImage *img);   /* NULL when there is none */
bool blk_is_writable(BlockImage *img);
/* Bytes the host file system has allocated for the image file. */
int64_t blk_allocated_bytes(BlockImage *img);
/* Unit of allocation (cluster size; 512 for raw). */
uint32_t blk_cluster_size(BlockImage *img);

/* Synchronous I/O on guest offsets.  Return 0 or -1 with *errp set. */
int blk_pread(BlockImage *img, uint64_t offset, void *buf, size_t len, Error **errp);
int blk_pwrite(BlockImage *img, uint64_t offset, const void *buf, size_t len,
               Error **errp);
int blk_flush(BlockImage *img, Error **errp);
int blk_discard(BlockImage *img, uint64_t offset, uint64_t len, Error **errp);
int blk_write_zeroes(BlockImage *img, uint64_t offset, uint64_t len, Error **errp);
/*
 * Store @len bytes compressed (qcow2 only, whole clusters, or up to the end of
 * the image).  Several clusters are compressed in parallel; the result is
 * the same as writing them one by one.
 */
int blk_pwrite_compressed(BlockImage *img, uint64_t offset, const void *buf,
                          size_t len, Error **errp);
int blk_resize(BlockImage *img, uint64_t new_size, Error **errp);
/*
 * Record a new backing file name and format in the image (NULL or "" name:
 * none) without touching data: the caller keeps the content consistent.
 */
int blk_change_backing_file(BlockImage *img, const char *name, const char *fmt,
                            Error **errp);

/* Allocation status of a guest range, as `map` and `convert` need it. */
typedef enum BlockStatusKind {
    BLK_STATUS_DATA,        /* stored in this image at host_offset */
    BLK_STATUS_ZERO,        /* reads as zeros, allocated in this image */
    BLK_STATUS_UNALLOCATED, /* not in this image: backing file or zeros */
    BLK_STATUS_COMPRESSED,  /* stored compressed in this image */
} BlockStatusKind;

typedef struct BlockStatus {
    BlockStatusKind kind;
    uint64_t len;           /* bytes from the queried offset with this status */
    uint64_t host_offset;   /* valid for BLK_STATUS_DATA, and when offset_valid */
    /*
     * A host cluster backs the range even though it reads as zeros or is
     * unallocated (qcow2 zero clusters and subclusters that keep their host
     * cluster): `map` shows the offset there, as qemu-img does.
     */
    bool offset_valid;
} BlockStatus;

int blk_block_status(BlockImage *img, uint64_t offset, uint64_t len,
                     BlockStatus *st, Error **errp);

/* ---- Creating images ---- */

/*
 * qcow2 encrypt.format=luks: the passphrase and the encrypt.* choices by
 * their qemu-img names (NULL: the default).  See block/crypto-luks.h.
 */
typedef struct BlockLuksOptions {
    const uint8_t *secret;
    size_t secret_len;
    const char *cipher_alg;       /* aes-128, aes-192, aes-256 */
    const char *cipher_mode;      /* xts, cbc */
    const char *ivgen_alg;        /* plain, plain64, essiv */
    const char *ivgen_hash_alg;   /* essiv's hash */
    const char *hash_alg;         /* PBKDF2 and anti-forensic splitter hash */
    uint64_t iter_time;           /* PBKDF2 time in milliseconds */
    bool has_iter_time;
} BlockLuksOptions;

typedef struct BlockCreateOptions {
    const char *format;
    uint64_t size;
    uint32_t cluster_size;        /* 0: format default */
    const char *backing_file;
    const char *backing_fmt;
    int compat;                   /* qcow2: 2 = 0.10, 3 = 1.1 (default) */
    int refcount_bits;            /* qcow2: 0 = default 16 */
    bool lazy_refcounts;
    int compression_type;         /* qcow2: 0 zlib, 1 zstd */
    int preallocation;            /* BLK_PREALLOC_* */
    bool extended_l2;             /* qcow2: 128-bit L2 entries with subclusters */
    const char *data_file;        /* qcow2: external data file (relative to the image) */
    bool data_file_raw;           /* qcow2: keep the data file a valid raw image */
    uint64_t extent_size_hint;    /* file: XFS extent size hint, 0 = leave the default */
    bool nocow;                   /* file: no copy-on-write for the new file (btrfs) */
    int encrypt_format;           /* qcow2: BLK_ENCRYPT_* */
    BlockLuksOptions luks;        /* qcow2 with BLK_ENCRYPT_LUKS */
    unsigned given;               /* BLK_CREATE_GIVEN_*: named by the user, not defaults */
    /* amend: told how far a long change (qcow2 downgrade) has got; may be NULL */
    void (*amend_progress)(void *opaque, uint64_t done, uint64_t total);
    void *amend_opaque;
} BlockCreateOptions;

/* Options an image tool echoes only when the user named them. */
enum {
    BLK_CREATE_GIVEN_COMPAT = 1u << 0,
    BLK_CREATE_GIVEN_PREALLOC = 1u << 1,
    BLK_CREATE_GIVEN_LAZY = 1u << 2,
    BLK_CREATE_GIVEN_REFCOUNT_BITS = 1u << 3,
    BLK_CREATE_GIVEN_SIZE = 1u << 4,
    BLK_CREATE_GIVEN_DATA_FILE_RAW = 1u << 5,
};

/*
 * Change the options of @img named in @o->given (compat, lazy_refcounts,
 * refcount_bits, size) in place, keeping its content.
 */
int blk_amend(BlockImage *img, const BlockCreateOptions *o, Error **errp);

/* Drop all of @img's own data so it reads as its backing file again. */
int blk_make_empty(BlockImage *img, Error **errp);

/* qcow2 encryption: the header's crypt_method values. */
enum { BLK_ENCRYPT_NONE, BLK_ENCRYPT_AES, BLK_ENCRYPT_LUKS };

enum { BLK_PREALLOC_OFF, BLK_PREALLOC_METADATA, BLK_PREALLOC_FALLOC, BLK_PREALLOC_FULL };

int blk_create(const char *filename, const BlockCreateOptions *opts, Error **errp);

/* ---- Consistency check ---- */

typedef struct BlockCheckResult {
    int64_t corruptions;
    int64_t leaks;
    int64_t check_errors;
    int64_t corruptions_fixed;
    int64_t leaks_fixed;
    uint64_t image_end_offset;
    uint64_t total_clusters;
    uint64_t allocated_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
} BlockCheckResult;

enum { BLK_FIX_LEAKS = 1, BLK_FIX_ERRORS = 2 };

int blk_check(BlockImage *img, BlockCheckResult *res, int fix, Error **errp);

/* ---- Format-specific facts for `info` ---- */

typedef struct BlockSnapshotInfo {
    char *id;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;           /* UINT64_MAX when the image does not record it */
} BlockSnapshotInfo;

typedef struct BlockBitmapInfo {
    char *name;
    uint32_t granularity;
    bool in_use, autoflag;     /* "in-use" and "auto" flags */
} BlockBitmapInfo;

typedef struct BlockFormatInfo {
    const char *type;          /* "qcow2", "parallels" or NULL */
    int compat;                /* qcow2: 2 or 3 */
    bool lazy_refcounts, corrupt, extended_l2, dirty;
    bool has_data_file;        /* qcow2: the external data file feature is set */
    char *data_file;           /* qcow2 external data file name, or NULL */
    bool data_file_raw;
    int refcount_bits;
    int compression_type;
    char *backing_file;
    char *backing_fmt;
    BlockSnapshotInfo *snapshots;
    int nb_snapshots;
    BlockBitmapInfo *bitmaps;
    int nb_bitmaps;
    bool has_bitmaps;          /* the bitmaps extension is present */
} BlockFormatInfo;

int blk_get_info(BlockImage *img, BlockFormatInfo *info, Error **errp);
void blk_free_info(BlockFormatInfo *info);

/* ---- Internal snapshots (qcow2) ---- */

int blk_snapshot_create(BlockImage *img, const char *name, Error **errp);
int blk_snapshot_apply(BlockImage *img, const char *name, Error **errp);
int blk_snapshot_delete(BlockImage *img, const char *name, Error **errp);

/* ---- Persistent dirty bitmaps (qcow2, parallels read) ---- */

int blk_bitmap_add(BlockImage *img, const char *name, uint32_t granularity,
                   bool disabled, Error **errp);
int blk_bitmap_remove(BlockImage *img, const char *name, Error **errp);
int blk_bitmap_clear(BlockImage *img, const char *name, Error **errp);
int blk_bitmap_enable(BlockImage *img, const char *name, bool enable, Error **errp);
/* dst |= src, where src may come from another image (@src_img). */
int blk_bitmap_merge(BlockImage *img, const char *dst, BlockImage *src_img,
                     const char *src, Error **errp);
/*
 * Copy the bitmap's bits out: one bit per granularity bytes of guest disk,
 * LSB first.  *bits is malloc'ed; caller frees.
 */
int blk_bitmap_get(BlockImage *img, const char *name, uint8_t **bits,
                   uint64_t *nbits, uint32_t *granularity, Error **errp);

/* ---- Asynchronous I/O ---- */

typedef struct BlockQueue BlockQueue;
typedef void BlockCompletionFn(void *opaque, int ret);   /* ret: 0 or -errno */

/*
 * A queue of up to @depth requests in flight on @img.  Completions are
 * reported by blk_queue_process(); blk_queue_fd() becomes readable when there
 * is something to process.  io_uring if the image was opened with
 * BLK_O_URING, else a pool of threads.
 */
BlockQueue *blk_queue_new(BlockImage *img, unsigned depth, Error **errp);
/*
 * The same with the pool of threads whatever the image's aio mode: for a
 * server whose reads mostly come from the page cache, which io_uring
 * copies inline on the submitting thread; the pool copies on its threads.
 */
BlockQueue *blk_queue_new_pool(BlockImage *img, unsigned depth, Error **errp);
void blk_queue_free(BlockQueue *q);
int blk_queue_fd(BlockQueue *q);
unsigned blk_queue_in_flight(BlockQueue *q);
int blk_aio_preadv(BlockQueue *q, uint64_t offset, struct iovec *iov, int iovcnt,
                   BlockCompletionFn *cb, void *opaque);
int blk_aio_pwritev(BlockQueue *q, uint64_t offset, struct iovec *iov, int iovcnt,
                    BlockCompletionFn *cb, void *opaque);
int blk_aio_flush(BlockQueue *q, BlockCompletionFn *cb, void *opaque);
/*
 * Hand requests queued so far to the host now. Submissions may be held
 * back to share a system call until blk_queue_process() runs; a submitter
 * that does not run the queue itself calls this after its batch.
 */
void blk_queue_submit(BlockQueue *q);
/* Run the callbacks of finished requests; with @wait, block for at least one. */
int blk_queue_process(BlockQueue *q, bool wait);
/* Wait until nothing is in flight. */
void blk_queue_drain(BlockQueue *q);

#endif
