/*
 * Parallels expandable images: state shared by the core driver
 * (parallels.c) and the format extension with its dirty bitmaps
 * (parallels-ext.c).
 */
#ifndef VIREO_BLOCK_PARALLELS_H
#define VIREO_BLOCK_PARALLELS_H

#include "block/block-int.h"

#define PARALLELS_HEADER_SIZE   64
#define PARALLELS_MAGIC_OLD     "WithoutFreeSpace"   /* BAT in sectors */
#define PARALLELS_MAGIC_EXT     "WithouFreSpacExt"   /* BAT in clusters */
#define PARALLELS_VERSION       2
#define PARALLELS_INUSE_OPEN    0x746F6E59u
#define PARALLELS_INUSE_CLOSED  0x312e3276u
#define PARALLELS_FLAG_EMPTY    1u
#define PARALLELS_EXT_MAGIC     0xAB234CEF23DCEA87ull
#define PARALLELS_FEAT_END      0ull
#define PARALLELS_FEAT_BITMAP   0x20385FAE252CB34Aull
#define PARALLELS_FEAT_NECESSARY 1ull
#define PARALLELS_FEAT_TRANSIT  2ull

/* Header field offsets. */
enum {
    PH_MAGIC = 0, PH_VERSION = 16, PH_HEADS = 20, PH_CYLINDERS = 24, PH_TRACKS = 28,
    PH_BAT_ENTRIES = 32, PH_NB_SECTORS = 36, PH_INUSE = 44, PH_DATA_OFF = 48,
    PH_FLAGS = 52, PH_EXT_OFF = 56,
};

typedef struct ParallelsBitmap {
    uint8_t id[16];
    char name[37];              /* the id as a UUID string: bitmaps have no names */
    uint64_t flags;             /* the feature's NECESSARY/TRANSIT flags */
    uint32_t granularity;       /* sectors per bit */
    uint64_t nbits;
    uint8_t *bits;              /* one bit per granularity, LSB first */
    uint32_t l1_size;
    uint64_t *l1;               /* 0, 1 or a cluster offset in bytes */
} ParallelsBitmap;

/* A feature we do not understand but must carry over unchanged (TRANSIT). */
typedef struct ParallelsOpaqueFeature {
    uint64_t magic, flags;
    uint32_t size;
    uint8_t *data;
} ParallelsOpaqueFeature;

typedef struct BDRVParallels {
    uint8_t header[PARALLELS_HEADER_SIZE];
    bool ext_magic;             /* "WithouFreSpacExt" */
    uint32_t cluster_size;
    uint32_t bat_entries;
    uint32_t *bat;              /* host order, as in the file */
    uint64_t bat_unit;          /* bytes per BAT unit: 512 or the cluster size */
    uint64_t data_off;          /* bytes */
    uint64_t data_end;          /* where the next cluster is allocated */
    uint64_t file_len;
    uint32_t inuse_at_open;
    bool empty_flag;            /* the header said "consider the image clear" */
    /* Format extension */
    uint64_t ext_off;           /* bytes, 0 when there is none */
    bool ext_bad;               /* check mode: the extension did not load */
    char *ext_problem;          /* why, for check */
    bool ext_frozen;            /* a NECESSARY feature we cannot handle: never write */
    bool ext_changed;           /* rewrite the extension cluster on close */
    ParallelsBitmap *bitmaps;
    int nb_bitmaps;
    ParallelsOpaqueFeature *opaque;
    int nb_opaque;
} BDRVParallels;

/* Offset in bytes a BAT entry points to (0 when unallocated). */
static inline uint64_t parallels_bat_host(const BDRVParallels *s, uint32_t idx)
{
    return (uint64_t)s->bat[idx] * s->bat_unit;
}

/* The rules every cluster offset (BAT, ext_off, bitmap L1) must meet. */
bool parallels_cluster_offset_ok(const BDRVParallels *s, uint64_t off);
/* Append a zeroed cluster at the end of the data area; returns its offset or 0. */
uint64_t parallels_alloc_cluster(BlockImage *img, Error **errp);
/* Is @off used by a BAT entry? */
bool parallels_bat_uses(const BDRVParallels *s, uint64_t off);

/* parallels-ext.c */
int parallels_ext_load(BlockImage *img, bool writable, Error **errp);
int parallels_ext_store(BlockImage *img, Error **errp);
void parallels_ext_free(BDRVParallels *s);
void parallels_bitmaps_mark(BDRVParallels *s, uint64_t off, uint64_t len);
/* Highest byte used by the extension and its bitmap clusters. */
uint64_t parallels_ext_end(const BDRVParallels *s);
void parallels_ext_count_clusters(const BDRVParallels *s, uint64_t *n);
void parallels_ext_info(BDRVParallels *s, BlockFormatInfo *info);
int parallels_bitmap_add(BlockImage *img, const char *name, uint32_t granularity,
                         bool disabled, Error **errp);
int parallels_bitmap_remove(BlockImage *img, const char *name, Error **errp);
int parallels_bitmap_clear(BlockImage *img, const char *name, Error **errp);
int parallels_bitmap_or(BlockImage *img, const char *dst, const uint8_t *bits,
                        uint64_t nbits, uint32_t granularity, Error **errp);
int parallels_bitmap_get(BlockImage *img, const char *name, uint8_t **bits,
                         uint64_t *nbits, uint32_t *granularity, Error **errp);

#endif
