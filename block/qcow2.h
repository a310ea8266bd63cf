/*
 * qcow2 inside the block layer: on-disk constants and the driver state
 * shared by block/qcow2*.c.
 */
#ifndef VIREO_BLOCK_QCOW2_H
#define VIREO_BLOCK_QCOW2_H

#include "block/block-int.h"

#define QCOW2_MAGIC              0x514649fbu   /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN      72
#define QCOW2_V3_HEADER_LEN      104
#define QCOW2_MIN_CLUSTER_BITS   9
#define QCOW2_MAX_CLUSTER_BITS   21
#define QCOW2_MAX_L1_BYTES       (32u << 20)   /* a sane upper bound for the L1 table */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS      65536
#define QCOW2_MAX_BITMAPS        65535
#define QCOW2_MAX_BITMAP_NAME    1023
#define QCOW2_MAX_BACKING_NAME   1023
#define QCOW2_MAX_DATA_FILE_NAME 1023
#define QCOW2_EXTL2_MIN_CLUSTER_BITS 14       /* subclusters of at least 512 bytes */

/* incompatible_features */
#define QCOW2_INCOMPAT_DIRTY       ((uint64_t)1 << 0)
#define QCOW2_INCOMPAT_CORRUPT     ((uint64_t)1 << 1)
#define QCOW2_INCOMPAT_DATA_FILE   ((uint64_t)1 << 2)
#define QCOW2_INCOMPAT_COMPRESSION ((uint64_t)1 << 3)
#define QCOW2_INCOMPAT_EXTL2       ((uint64_t)1 << 4)
#define QCOW2_INCOMPAT_KNOWN       (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | \
                                    QCOW2_INCOMPAT_DATA_FILE | \
                                    QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2)
/* compatible_features */
#define QCOW2_COMPAT_LAZY_REFCOUNTS ((uint64_t)1 << 0)
/* autoclear_features */
#define QCOW2_AUTOCLEAR_BITMAPS    ((uint64_t)1 << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW   ((uint64_t)1 << 1)

/* header extension types */
#define QCOW2_EXT_END              0x00000000u
#define QCOW2_EXT_BACKING_FORMAT   0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE    0x6803f857u
#define QCOW2_EXT_BITMAPS          0x23852875u
#define QCOW2_EXT_DATA_FILE        0x44415441u

/*
 * Extended L2 entries: the 64-bit descriptor is followed by a 64-bit
 * bitmap over the cluster's 32 subclusters, "allocated" in bits 0-31 and
 * "reads as zeros" in bits 32-63.
 */
#define QCOW2_SUBCLUSTERS          32
#define QCOW2_SC_ALLOC_ALL         ((uint64_t)0xffffffff)
#define QCOW2_SC_ZERO_ALL          ((uint64_t)0xffffffff << 32)

/* table entries */
#define QCOW2_OFFSET_MASK   ((uint64_t)0x00fffffffffffe00)   /* bits 9-55 */
#define QCOW2_OFLAG_COPIED  ((uint64_t)1 << 63)
#define QCOW2_OFLAG_COMPRESSED ((uint64_t)1 << 62)
#define QCOW2_OFLAG_ZERO    ((uint64_t)1 << 0)
#define QCOW2_L1E_RESERVED  ((uint64_t)0x7f000000000001ff)   /* bits 0-8 and 56-62 */
#define QCOW2_L2E_RESERVED  ((uint64_t)0x3f000000000001fe)   /* bits 1-8 and 56-61 */
#define QCOW2_REFT_RESERVED ((uint64_t)0x00000000000001ff)

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* A small write-back cache of metadata clusters (L2 tables or refcount blocks). */
typedef struct Qcow2CacheEntry {
    uint64_t offset;        /* host offset of the cluster, 0 when unused */
    uint8_t *data;          /* cluster_size bytes, as on disk (big-endian) */
    bool dirty;
    int pins;               /* >0 while a caller holds the table */
    uint64_t last_use;
} Qcow2CacheEntry;

typedef struct Qcow2Cache {
    Qcow2CacheEntry *entries;
    int nb_entries;
    uint64_t use_counter;
    bool is_l2;             /* L2 tables must wait for refcounts before write-back */
} Qcow2Cache;

typedef struct Qcow2Snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
    char *id;
    char *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint32_t vm_state_size;
    uint64_t vm_state_size_large;
    uint64_t disk_size;
    uint64_t icount;        /* UINT64_MAX when not recorded */
    uint32_t extra_size;    /* extra data bytes as found (we keep unknown tail) */
    uint8_t *extra;
} Qcow2Snapshot;

typedef struct Qcow2Bitmap {
    char *name;
    uint64_t table_offset;  /* bitmap table on disk, 0 when not stored yet */
    uint32_t table_size;    /* entries */
    uint32_t flags;         /* BME_FLAG_* */
    uint8_t type;
    uint8_t granularity_bits;
    uint32_t extra_size;
    uint8_t *extra;
    uint8_t *bits;          /* loaded bitmap, NULL if not loaded */
    uint64_t nbits;
    bool modified;          /* bits differ from what is on disk */
} Qcow2Bitmap;

#define BME_FLAG_IN_USE     (1u << 0)
#define BME_FLAG_AUTO       (1u << 1)
#define BME_FLAG_EXTRA_COMPAT (1u << 2)
#define BME_RESERVED_FLAGS  0xfffffff8u
#define BME_TYPE_DIRTY      1
#define BME_TABLE_RESERVED  ((uint64_t)0xff000000000001fe)

typedef struct Qcow2UnknownExt {
    uint32_t type, len;
    uint8_t *data;
} Qcow2UnknownExt;

/* An allocating write in flight: other writes to the cluster wait for it. */
typedef struct Qcow2InflightAlloc {
    uint64_t guest_cluster;
    uint64_t host_offset;
    BlockAioReq *waiters;
    struct Qcow2InflightAlloc *next;
} Qcow2InflightAlloc;

typedef struct BDRVQcow2 {
    uint32_t cluster_size;
    int cluster_bits;
    int version;
    uint64_t incompat, compat, autoclear;
    int refcount_order;
    uint64_t refcount_max;
    uint32_t header_length;
    int compression_type;

    uint64_t l2_entries;        /* entries per L2 table */
    uint32_t l2_entry_size;     /* 8, or 16 with extended L2 entries */
    int l2_bits;                /* log2(l2_entries) */
    bool ext_l2;                /* extended L2 entries (subclusters) */
    int sc_bits;                /* log2 of the subcluster size */

    /*
     * Where guest data lives: the image file itself, or the external data
     * file, in which guest cluster N always sits at offset N * cluster size
     * and nothing is refcounted.
     */
    BlockFile *data;
    BlockFile data_file;
    char *data_file_name;       /* as recorded in the header extension */
    bool data_raw;              /* autoclear "raw external data" is set */
    uint64_t *l1;               /* active L1, host byte order */
    uint32_t l1_size;
    uint64_t l1_offset;
    bool l1_dirty;

    uint64_t *reftable;         /* host byte order */
    uint64_t reftable_entries;
    uint64_t reftable_offset;
    uint32_t reftable_clusters;
    uint64_t rb_entries;        /* refcounts per refcount block */
    uint64_t reftable_used;     /* one past the last non-zero reftable entry */

    Qcow2Cache l2_cache;
    Qcow2Cache rb_cache;

    Qcow2Snapshot *snapshots;
    int nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t snapshots_size;    /* bytes of the snapshot table on disk */

    Qcow2Bitmap *bitmaps;
    int nb_bitmaps;
    bool bitmaps_ext;           /* the image has a (consistent) bitmaps extension */
    uint64_t bitmap_dir_offset, bitmap_dir_size;
    bool bitmaps_in_use_marked; /* we set in_use on disk at open */
    bool bitmaps_quiet;         /* a shrink drops the tail: not a write to record */

    Qcow2UnknownExt *unknown_exts;
    int nb_unknown_exts;

    uint64_t free_hint;         /* no free cluster below this index */
    uint64_t run_hint;          /* where multi-cluster runs are looked for */
    uint64_t zeroed_from;       /* host bytes at or above read as zeros */
    uint64_t prealloc_end;      /* file length grown ahead of allocation, 0: none */
    uint64_t prealloc_chunk;    /* next growth step (doubles up to a limit) */
    bool prealloc_off;          /* the file system cannot fallocate */
    uint64_t comp_next, comp_end;  /* packing position for compressed data */
    bool header_dirty;
    bool corrupt_marked;
    Qcow2InflightAlloc *inflight;
    uint8_t *zero_cluster;      /* cluster of zeros, aligned */
} BDRVQcow2;

/* ---- open options (qcow2-options.c) ---- */

typedef struct Qcow2OpenOptions {
    int l2_tables;              /* L2 cache entries, 0: the default */
    int rb_blocks;              /* refcount block cache entries, 0: the default */
    char *data_file;            /* the data file named at open, or NULL */
} Qcow2OpenOptions;

/* Whether qcow2 takes open option @key. */
bool qcow2_takes_option(const char *key);
/* Read and check img->open_opts once the header is parsed. */
int qcow2_read_open_options(BlockImage *img, Qcow2OpenOptions *o, Error **errp);

static inline bool qcow2_has_data_file(const BDRVQcow2 *s)
{
    return s->incompat & QCOW2_INCOMPAT_DATA_FILE;
}

/*
 * Does the (uncompressed) L2 entry @e name a host cluster?  In an external
 * data file offset 0 is a real place, told apart from "unallocated" by the
 * COPIED flag (data file clusters are never shared, so it is always set).
 */
static inline bool qcow2_entry_has_host(const BDRVQcow2 *s, uint64_t e)
{
    return !(e & QCOW2_OFLAG_COMPRESSED) &&
           ((e & QCOW2_OFFSET_MASK) || (qcow2_has_data_file(s) && (e & QCOW2_OFLAG_COPIED)));
}

/* Entry @i of an L2 table as stored on disk; *bm is 0 without extended L2. */
static inline void qcow2_l2_load(const BDRVQcow2 *s, const uint8_t *t, uint64_t i,
                                 uint64_t *e, uint64_t *bm)
{
    *e = ld_be64(t + i * s->l2_entry_size);
    *bm = s->ext_l2 ? ld_be64(t + i * s->l2_entry_size + 8) : 0;
}

static inline void qcow2_l2_store(const BDRVQcow2 *s, uint8_t *t, uint64_t i, uint64_t e,
                                  uint64_t bm)
{
    st_be64(t + i * s->l2_entry_size, e);
    if (s->ext_l2) {
        st_be64(t + i * s->l2_entry_size + 8, bm);
    }
}

/* qcow2.c */
int qcow2_write_header(BlockImage *img, Error **errp);
/* qcow2-crypt.c: record BLK_ENCRYPT_* in a newly created, still empty image. */
int qcow2_crypt_mark_created(const char *filename, int encrypt_format, Error **errp);
/* qcow2-crypt.c: put a new LUKS header area into a new image being created. */
int qcow2_luks_create_header(BlockImage *img, const BlockCreateOptions *o, Error **errp);
int qcow2_flush_metadata(BlockImage *img, bool sync, Error **errp);
void qcow2_signal_corruption(BlockImage *img, Error **errp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool qcow2_offset_ok(BlockImage *img, uint64_t off, uint64_t len);

/* qcow2-overlap.c: kinds of metadata a write must not land on */
#define QCOW2_OL_HEADER           (1 << 0)
#define QCOW2_OL_ACTIVE_L1        (1 << 1)
#define QCOW2_OL_ACTIVE_L2        (1 << 2)
#define QCOW2_OL_REFCOUNT_TABLE   (1 << 3)
#define QCOW2_OL_REFCOUNT_BLOCK   (1 << 4)
#define QCOW2_OL_SNAPSHOT_TABLE   (1 << 5)
#define QCOW2_OL_INACTIVE_L1      (1 << 6)
#define QCOW2_OL_BITMAP_DIRECTORY (1 << 7)
#define QCOW2_OL_BITMAP_TABLE     (1 << 8)
int qcow2_overlap_kind(BlockImage *img, int ignore, uint64_t off, uint64_t len);
/* Fail (and mark the image corrupt) if [off, off + len) overlaps metadata not in @ignore. */
int qcow2_overlap_check(BlockImage *img, int ignore, uint64_t off, uint64_t len,
                        Error **errp);
/* bfile_pwrite to the image file after qcow2_overlap_check. */
int qcow2_pwrite_checked(BlockImage *img, int ignore, uint64_t off, const void *buf,
                         size_t len, Error **errp);
/*
 * Does [off, off + len) reach past everything the file holds or this
 * session allocated?  Entries read from the image that do are corrupt.
 */
bool qcow2_beyond_end(const BDRVQcow2 *s, uint64_t off, uint64_t len);
/* A guest data write to s->data at @off: inside the file and off metadata. */
int qcow2_data_write_check(BlockImage *img, uint64_t off, uint64_t len, Error **errp);
/* Guest data write to s->data, checked against metadata when that is the image file. */
int qcow2_data_pwrite(BlockImage *img, uint64_t off, const void *buf, size_t len,
                      Error **errp);
/* Host range a compressed L2 entry refers to, as refcounts account for it. */
void qcow2_compressed_range(BDRVQcow2 *s, uint64_t l2e, uint64_t *off, uint64_t *len);
/* qcow2-rebuild.c: a new refcount structure from @refs (per cluster; may grow). */
int qcow2_rebuild_refcounts(BlockImage *img, uint32_t **refs, uint64_t *nb, Error **errp);
/* Recompute s->reftable_used after the refcount table changed. */
void qcow2_reftable_note_used(BDRVQcow2 *s);

/* qcow2-cache.c */
void qcow2_cache_init(Qcow2Cache *c, int nb_entries, uint32_t cluster_size, bool is_l2);
void qcow2_cache_destroy(Qcow2Cache *c);
/* Get the table at @offset (read from disk unless @fresh: zero-filled). Pinned. */
uint8_t *qcow2_cache_get(BlockImage *img, Qcow2Cache *c, uint64_t offset, bool fresh,
                         Error **errp);
void qcow2_cache_put(Qcow2Cache *c, uint8_t *table);
void qcow2_cache_mark_dirty(Qcow2Cache *c, uint8_t *table);
int qcow2_cache_flush(BlockImage *img, Qcow2Cache *c, Error **errp);
bool qcow2_cache_has_dirty(Qcow2Cache *c);
void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset);
void qcow2_cache_forget_all(Qcow2Cache *c);

/* qcow2-refcount.c */
int qcow2_refcount_init(BlockImage *img, Error **errp);
int qcow2_get_refcount(BlockImage *img, uint64_t cluster_index, uint64_t *refcount,
                       Error **errp);
int qcow2_update_refcount(BlockImage *img, uint64_t offset, uint64_t len, int64_t delta,
                          Error **errp);
int64_t qcow2_alloc_clusters(BlockImage *img, uint64_t n, Error **errp);
int qcow2_free_clusters(BlockImage *img, uint64_t offset, uint64_t len, Error **errp);
/* Drop one reference held by an L2 entry (data, compressed or zero-allocated). */
int qcow2_free_l2_entry(BlockImage *img, uint64_t l2e, Error **errp);
int qcow2_check(BlockImage *img, BlockCheckResult *res, int fix, Error **errp);
uint64_t qcow2_refcount_get_entry(BDRVQcow2 *s, const uint8_t *block, uint64_t i);
void qcow2_refcount_set_entry(BDRVQcow2 *s, uint8_t *block, uint64_t i, uint64_t v);
/* Increase or decrease every cluster referenced through an L1 table (snapshots). */
int qcow2_update_l1_refcounts(BlockImage *img, uint64_t l1_offset, uint32_t l1_size,
                              int delta, Error **errp);

/* Guest-to-host mapping: qcow2-cluster.c, qcow2-compress.c, qcow2-discard.c, qcow2-aio.c */
int qcow2_read(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp);
int qcow2_make_empty(BlockImage *img, Error **errp);
int qcow2_amend(BlockImage *img, const BlockCreateOptions *o, Error **errp);

/* Make a new qcow2 image at @filename (qcow2-create.c). */
int qcow2_create(const char *filename, const BlockCreateOptions *o, Error **errp);
int qcow2_write(BlockImage *img, uint64_t off, const void *buf, size_t len, Error **errp);
int qcow2_write_compressed(BlockImage *img, uint64_t off, const void *buf, size_t len,
                           Error **errp);
int qcow2_discard(BlockImage *img, uint64_t off, uint64_t len, Error **errp);
int qcow2_write_zeroes(BlockImage *img, uint64_t off, uint64_t len, Error **errp);
int qcow2_block_status(BlockImage *img, uint64_t off, uint64_t len, BlockStatus *st,
                       Error **errp);
BlockAioPlan qcow2_aio_plan(BlockImage *img, BlockAioReq *req);
int qcow2_get_l2_entry(BlockImage *img, uint64_t guest_off, uint64_t *l2e, uint64_t *bm,
                       Error **errp);
int qcow2_grow_l1(BlockImage *img, uint64_t min_size, Error **errp);
int qcow2_prealloc_map(BlockImage *img, uint64_t bm, Error **errp);
int qcow2_write_l1(BlockImage *img, Error **errp);
int qcow2_decompress(BlockImage *img, uint64_t l2e, uint8_t *out, Error **errp);

/* qcow2-snapshot.c */
int qcow2_read_snapshots(BlockImage *img, Error **errp);
void qcow2_free_snapshots(BDRVQcow2 *s);
int qcow2_snapshot_create(BlockImage *img, const char *name, Error **errp);
int qcow2_snapshot_apply(BlockImage *img, const char *name, Error **errp);
int qcow2_snapshot_delete(BlockImage *img, const char *name, Error **errp);

/* qcow2-bitmap.c */
int qcow2_read_bitmaps(BlockImage *img, const uint8_t *ext, uint32_t len, Error **errp);
int qcow2_bitmaps_open_rw(BlockImage *img, Error **errp);
int qcow2_store_bitmaps(BlockImage *img, Error **errp);
void qcow2_free_bitmaps(BDRVQcow2 *s);
void qcow2_bitmaps_mark_write(BlockImage *img, uint64_t off, uint64_t len);
/* Resize: check, load and flag every bitmap, then (once nothing can fail) resize them. */
int qcow2_bitmaps_resize_prepare(BlockImage *img, Error **errp);
void qcow2_bitmaps_resize(BlockImage *img, uint64_t new_size);
int qcow2_bitmap_add(BlockImage *img, const char *name, uint32_t granularity,
                     bool disabled, Error **errp);
int qcow2_bitmap_remove(BlockImage *img, const char *name, Error **errp);
int qcow2_bitmap_clear(BlockImage *img, const char *name, Error **errp);
int qcow2_bitmap_enable(BlockImage *img, const char *name, bool enable, Error **errp);
int qcow2_bitmap_or(BlockImage *img, const char *dst, const uint8_t *bits,
                    uint64_t nbits, uint32_t granularity, Error **errp);
int qcow2_bitmap_get(BlockImage *img, const char *name, uint8_t **bits,
                     uint64_t *nbits, uint32_t *granularity, Error **errp);
/* qcow2-cluster.c: grow the file ahead of allocation; close trims the tail. */
void qcow2_prealloc_ahead(BlockImage *img, uint64_t end);
int qcow2_prealloc_trim(BlockImage *img, Error **errp);
/* Live bitmaps (block/dirty-bitmap.h) */
int qcow2_bitmaps_load_live(BlockImage *img, Error **errp);
int qcow2_bitmaps_store_live(BlockImage *img, Error **errp);
int qcow2_bitmap_can_store(BlockImage *img, const char *name, uint32_t granularity,
                           Error **errp);
bool qcow2_bitmap_is_stored(BlockImage *img, const char *name);
/* For check: add references of bitmap metadata and data. */
typedef int Qcow2RefFn(void *opaque, uint64_t off, uint64_t len);
int qcow2_bitmaps_for_each_ref(BlockImage *img, Qcow2RefFn *fn, void *opaque);

#endif
