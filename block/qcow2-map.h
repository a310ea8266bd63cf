/*
 * Shared by the files that map guest offsets of a qcow2 image to host
 * clusters: qcow2-cluster.c (lookup, reads, allocating writes),
 * qcow2-compress.c (compressed clusters), qcow2-discard.c (discard, zeroes,
 * block status, preallocation) and qcow2-aio.c (the asynchronous fast path).
 * Not for the rest of the block layer: qcow2.h has the driver's interface.
 */
#ifndef BLOCK_QCOW2_MAP_H
#define BLOCK_QCOW2_MAP_H

#include "block/qcow2.h"

typedef enum ClusterKind {
    CLUSTER_UNALLOCATED,
    CLUSTER_ZERO_PLAIN,     /* zero flag, no host cluster */
    CLUSTER_ZERO_ALLOC,     /* zero flag, host cluster kept for later writes */
    CLUSTER_NORMAL,
    CLUSTER_COMPRESSED,
} ClusterKind;

static inline ClusterKind cluster_kind(const BDRVQcow2 *s, uint64_t e)
{
    if (e & QCOW2_OFLAG_COMPRESSED) {
        return CLUSTER_COMPRESSED;
    }
    if (e & QCOW2_OFLAG_ZERO) {
        return qcow2_entry_has_host(s, e) ? CLUSTER_ZERO_ALLOC : CLUSTER_ZERO_PLAIN;
    }
    return qcow2_entry_has_host(s, e) ? CLUSTER_NORMAL : CLUSTER_UNALLOCATED;
}

static inline uint64_t l1_index(BDRVQcow2 *s, uint64_t off)
{
    return off >> (s->cluster_bits + s->l2_bits);
}

static inline uint64_t l2_index(BDRVQcow2 *s, uint64_t off)
{
    return (off >> s->cluster_bits) & (s->l2_entries - 1);
}

/* Bits of subclusters [first, last] in the allocation half of a bitmap. */
static inline uint64_t sc_mask(unsigned first, unsigned last)
{
    return (((uint64_t)2 << last) - 1) & ~(((uint64_t)1 << first) - 1);
}

/*
 * What guest bytes read as, at subcluster granularity: without extended L2
 * entries a subcluster is the whole cluster.
 */
typedef enum SubKind {
    SC_UNALLOC,     /* backing file, or zeros */
    SC_ZERO,
    SC_DATA,        /* at host offset in s->data */
    SC_COMPRESSED,
} SubKind;

typedef struct Mapping {
    uint64_t e, bm;     /* the L2 entry and its subcluster bitmap */
    SubKind kind;
    bool has_host;      /* a host cluster backs it (always for SC_DATA) */
    uint64_t host;      /* host offset of the queried byte, when has_host */
    uint64_t len;       /* bytes from there, within the cluster, of the same kind */
} Mapping;

/* Map guest @off: the run of subclusters of one kind it starts, up to @max bytes. */
int qcow2_lookup(BlockImage *img, uint64_t off, uint64_t max, Mapping *m, Error **errp);
/* Make L2 changes durable before a reference they dropped is released. */
int qcow2_flush_tables_before_free(BlockImage *img, Error **errp);
/* The L2 table for @off, allocated or copied from a snapshot's as needed; pinned. */
uint8_t *qcow2_l2_for_write(BlockImage *img, uint64_t off, Error **errp);
/* Set one L2 entry (and bitmap), releasing what the old entry referenced. */
int qcow2_set_l2_entry(BlockImage *img, uint64_t off, uint64_t entry, uint64_t bm,
                       Error **errp);
/* @n contiguous clusters in the image file; *fresh says whether they read as zeros. */
int64_t qcow2_alloc_data(BlockImage *img, uint64_t n, bool *fresh, Error **errp);
/* Host clusters for @n guest clusters from @guest_off (fixed in an external data file). */
int64_t qcow2_alloc_host(BlockImage *img, uint64_t guest_off, uint64_t n, bool *fresh,
                         Error **errp);
/* Does writing part of a cluster with entry @e need its old contents? */
bool qcow2_needs_cow_data(BlockImage *img, uint64_t e);
/* Point @n consecutive guest clusters at host, host + cs, ... (within one L2 table). */
int qcow2_map_host_run(BlockImage *img, uint64_t off, uint64_t n, uint64_t host,
                       uint64_t bitmap, Error **errp);

#endif
