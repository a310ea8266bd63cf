/*
 * qcow2 consistency check (qemu-img check): count every reference the
 * metadata makes per host cluster, compare with the refcounts, repair leaks
 * and errors in place, or rebuild the refcount structure (qcow2-rebuild.c)
 * when a referenced cluster has none; then the COPIED flags.
 */
#include "block/qcow2.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

typedef struct CheckState {
    BlockImage *img;
    BDRVQcow2 *s;
    BlockCheckResult *res;
    int fix;
    /*
     * References found, per host cluster.  The file may be sparse and far
     * larger than what it stores, so counters come in chunks allocated when
     * a reference first lands in them: memory follows the metadata read,
     * not the file's apparent length.
     */
    uint32_t **refs;
    int chunk_bits;            /* log2 of the clusters one chunk counts */
    uint64_t nb_chunks;
    uint64_t nb_clusters;      /* clusters the file holds */
} CheckState;

#define CHECK_CHUNK_BITS   16
#define CHECK_MAX_CHUNKS   ((uint64_t)1 << 24)

static void refs_init(CheckState *cs)
{
    cs->chunk_bits = CHECK_CHUNK_BITS;
    while ((cs->nb_clusters >> cs->chunk_bits) >= CHECK_MAX_CHUNKS) {
        cs->chunk_bits++;
    }
    cs->nb_chunks = (cs->nb_clusters >> cs->chunk_bits) + 1;
    cs->refs = xzalloc(cs->nb_chunks * sizeof(*cs->refs));
}

static void refs_free(CheckState *cs)
{
    for (uint64_t c = 0; c < cs->nb_chunks; c++) {
        free(cs->refs[c]);
    }
    free(cs->refs);
}

static uint32_t refs_get(const CheckState *cs, uint64_t i)
{
    const uint32_t *chunk = cs->refs[i >> cs->chunk_bits];
    return chunk ? chunk[i & (((uint64_t)1 << cs->chunk_bits) - 1)] : 0;
}

static void refs_inc(CheckState *cs, uint64_t i)
{
    uint32_t **chunk = &cs->refs[i >> cs->chunk_bits];
    if (!*chunk) {
        *chunk = xzalloc(sizeof(uint32_t) << cs->chunk_bits);
    }
    uint32_t *r = &(*chunk)[i & (((uint64_t)1 << cs->chunk_bits) - 1)];
    if (*r < UINT32_MAX) {
        (*r)++;
    }
}

static int add_ref(void *opaque, uint64_t off, uint64_t len)
{
    CheckState *cs = opaque;
    BDRVQcow2 *s = cs->s;
    if (len == 0) {
        return 0;
    }
    uint64_t first = off >> s->cluster_bits;
    uint64_t last = (off + len - 1) >> s->cluster_bits;
    if (off + len < off) {
        last = UINT64_MAX >> s->cluster_bits;
    }
    for (uint64_t i = first; i <= last; i++) {
        if (i >= cs->nb_clusters) {
            fprintf(stderr, "ERROR cluster %" PRIu64 " is beyond the end of the image file\n",
                    i);
            cs->res->corruptions++;
            return 0;
        }
        refs_inc(cs, i);
    }
    return 0;
}

static void walk_l2(CheckState *cs, uint64_t *l2, bool active, uint64_t *next_contig)
{
    BDRVQcow2 *s = cs->s;
    for (uint64_t j = 0; j < s->l2_entries; j++) {
        uint64_t e, bm;
        qcow2_l2_load(s, (const uint8_t *)l2, j, &e, &bm);
        if (s->ext_l2 && (e & QCOW2_OFLAG_COMPRESSED) && bm) {
            fprintf(stderr, "ERROR compressed cluster %" PRIu64 " with non-zero subcluster "
                    "allocation bitmap, entry=0x%" PRIx64 "\n", j, e);
            cs->res->corruptions++;
        } else if (s->ext_l2 && !(e & QCOW2_OFLAG_COMPRESSED) &&
                   ((bm & (bm >> 32) & QCOW2_SC_ALLOC_ALL) ||
                    (!qcow2_entry_has_host(s, e) && (bm & QCOW2_SC_ALLOC_ALL)))) {
            fprintf(stderr, "ERROR invalid subcluster bitmap 0x%" PRIx64 " in L2 entry "
                    "0x%" PRIx64 "\n", bm, e);
            cs->res->corruptions++;
        }
        if ((e & QCOW2_OFLAG_COMPRESSED) && qcow2_has_data_file(s)) {
            fprintf(stderr, "ERROR compressed cluster in an image with an external data "
                    "file, entry=0x%" PRIx64 "\n", e);
            cs->res->corruptions++;
            continue;
        }
        if (e & QCOW2_OFLAG_COMPRESSED) {
            uint64_t off, len;
            qcow2_compressed_range(s, e, &off, &len);
            add_ref(cs, off, len);
            if (active) {
                cs->res->allocated_clusters++;
                cs->res->compressed_clusters++;
                cs->res->fragmented_clusters++;
            }
            continue;
        }
        uint64_t off = e & QCOW2_OFFSET_MASK;
        /* With extended L2 entries bit 0 is not the zero flag but reserved (ignored). */
        if (e & QCOW2_L2E_RESERVED) {
            fprintf(stderr, "ERROR: L2 entry 0x%" PRIx64 " has reserved bits set\n", e);
            cs->res->corruptions++;
        }
        if (!qcow2_entry_has_host(s, e)) {
            continue;
        }
        if (off & (s->cluster_size - 1)) {
            fprintf(stderr, "ERROR offset=%" PRIx64 ": Cluster is not properly aligned; "
                    "L2 entry corrupted.\n", off);
            cs->res->corruptions++;
            continue;
        }
        if (!qcow2_has_data_file(s)) {
            add_ref(cs, off, s->cluster_size);
        }
        if (active) {
            cs->res->allocated_clusters++;
            if (*next_contig && off != *next_contig) {
                cs->res->fragmented_clusters++;
            }
            *next_contig = off + s->cluster_size;
        }
    }
}

static int walk_l1(CheckState *cs, uint64_t l1_offset, uint32_t l1_size, bool active)
{
    BDRVQcow2 *s = cs->s;
    Error *err = NULL;
    uint64_t bytes = (uint64_t)l1_size * 8;
    if (!qcow2_offset_ok(cs->img, l1_offset, bytes) || bytes > QCOW2_MAX_L1_BYTES) {
        fprintf(stderr, "ERROR: L1 table at 0x%" PRIx64 " is out of range\n", l1_offset);
        cs->res->corruptions++;
        return 0;
    }
    add_ref(cs, l1_offset, bytes);
    uint64_t *l1 = blk_alloc_aligned(bytes);
    uint64_t *l2 = blk_alloc_aligned(s->cluster_size);
    uint64_t next_contig = 0;
    if (bfile_pread(&cs->img->file, l1_offset, l1, bytes, &err) < 0) {
        error_report_err(err);
        cs->res->check_errors++;
        goto out;
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t e = ld_be64(&l1[i]);
        uint64_t off = e & QCOW2_OFFSET_MASK;
        if (e & QCOW2_L1E_RESERVED) {
            fprintf(stderr, "ERROR: L1 entry %u has reserved bits set\n", i);
            cs->res->corruptions++;
        }
        if (!off) {
            continue;
        }
        if (off & (s->cluster_size - 1)) {
            fprintf(stderr, "ERROR l2_offset=%" PRIx64 ": Table is not cluster aligned; "
                    "L1 entry corrupted\n", off);
            cs->res->corruptions++;
            continue;
        }
        add_ref(cs, off, s->cluster_size);
        if ((off >> s->cluster_bits) >= cs->nb_clusters) {
            continue;
        }
        if (bfile_pread(&cs->img->file, off, l2, s->cluster_size, &err) < 0) {
            error_report_err(err);
            err = NULL;
            cs->res->check_errors++;
            continue;
        }
        walk_l2(cs, l2, active, &next_contig);
    }
out:
    free(l1);
    free(l2);
    return 0;
}

static void walk_reftable(CheckState *cs)
{
    BDRVQcow2 *s = cs->s;
    add_ref(cs, s->reftable_offset, (uint64_t)s->reftable_clusters << s->cluster_bits);
    for (uint64_t r = 0; r < s->reftable_entries; r++) {
        uint64_t off = s->reftable[r] & ~QCOW2_REFT_RESERVED;
        if (s->reftable[r] & QCOW2_REFT_RESERVED) {
            fprintf(stderr, "ERROR refcount table entry %" PRIu64 " has reserved bits set\n",
                    r);
            cs->res->corruptions++;
            continue;
        }
        if (!off) {
            continue;
        }
        if (off & (s->cluster_size - 1)) {
            fprintf(stderr, "ERROR refcount block %" PRIu64 " is not cluster aligned; "
                    "refcount table entry corrupted\n", r);
            cs->res->corruptions++;
            continue;
        }
        if ((off >> s->cluster_bits) >= cs->nb_clusters) {
            fprintf(stderr, "ERROR refcount block %" PRIu64 " is outside image\n", r);
            cs->res->corruptions++;
            continue;
        }
        add_ref(cs, off, s->cluster_size);
    }
}

/* Set the refcount of cluster @i to @want, allocating nothing. */
static int set_refcount(CheckState *cs, uint64_t i, uint64_t have, uint64_t want)
{
    Error *err = NULL;
    int ret = qcow2_update_refcount(cs->img, i << cs->s->cluster_bits, cs->s->cluster_size,
                                    (int64_t)(want - have), &err);
    if (ret < 0) {
        error_report_err(err);
    }
    return ret;
}

/* Is reftable entry @r a refcount block that can be read? */
static bool refblock_usable(const CheckState *cs, uint64_t r)
{
    const BDRVQcow2 *s = cs->s;
    if (r >= s->reftable_entries) {
        return false;
    }
    uint64_t e = s->reftable[r];
    return e && !(e & QCOW2_REFT_RESERVED) && !(e & (s->cluster_size - 1)) &&
           (e >> s->cluster_bits) < cs->nb_clusters;
}

/*
 * First cluster from @i on that may need comparing: runs with neither a
 * usable refcount block nor a counted reference have nothing to compare.
 */
static uint64_t next_to_compare(const CheckState *cs, uint64_t i, uint64_t limit)
{
    const BDRVQcow2 *s = cs->s;
    while (i < limit) {
        uint64_t r = i / s->rb_entries;
        if (refblock_usable(cs, r) || (i < cs->nb_clusters && cs->refs[i >> cs->chunk_bits])) {
            return i;
        }
        uint64_t chunk_end = ((i >> cs->chunk_bits) + 1) << cs->chunk_bits;
        i = MIN(chunk_end, (r + 1) * s->rb_entries);
    }
    return limit;
}

static void compare_one(CheckState *cs, uint64_t i, uint64_t *highest, bool *rebuild)
{
    BDRVQcow2 *s = cs->s;
    uint64_t have = 0;
    Error *err = NULL;
    /* A refcount block that cannot be used counts nothing (reported by walk_reftable). */
    if (refblock_usable(cs, i / s->rb_entries) &&
        qcow2_get_refcount(cs->img, i, &have, &err) < 0) {
        error_free(err);
        cs->res->check_errors++;
        return;
    }
    uint64_t want = i < cs->nb_clusters ? refs_get(cs, i) : 0;
    if (have || want) {
        *highest = i;
    }
    if (have == want) {
        return;
    }
    bool leak = have > want;
    bool fixing = leak ? (cs->fix & BLK_FIX_LEAKS) : (cs->fix & BLK_FIX_ERRORS);
    /* Without a usable refcount block there is nowhere to write the repair. */
    fixing = fixing && refblock_usable(cs, i / s->rb_entries);
    if (have == 0) {
        /* Fixing it in place could allocate the cluster again: rebuild instead. */
        *rebuild = true;
        fixing = false;
    }
    fprintf(stderr, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64 "\n",
            fixing ? "Repairing" : leak ? "Leaked" : "ERROR", i, have, want);
    if (fixing && want <= s->refcount_max && set_refcount(cs, i, have, want) == 0) {
        if (leak) {
            cs->res->leaks_fixed++;
        } else {
            cs->res->corruptions_fixed++;
        }
    } else if (leak) {
        cs->res->leaks++;
    } else {
        cs->res->corruptions++;
    }
}

static void compare_refcounts(CheckState *cs, uint64_t *highest, bool *rebuild)
{
    BDRVQcow2 *s = cs->s;
    uint64_t limit = MAX(cs->nb_clusters, s->reftable_entries * s->rb_entries);
    limit = MIN(limit, cs->nb_clusters + s->rb_entries);
    *rebuild = false;
    for (uint64_t i = next_to_compare(cs, 0, limit); i < limit;
         i = next_to_compare(cs, i + 1, limit)) {
        compare_one(cs, i, highest, rebuild);
    }
}

/* Count every reference the image's metadata makes, per host cluster. */
static void count_refs(CheckState *cs)
{
    BDRVQcow2 *s = cs->s;
    refs_init(cs);
    add_ref(cs, 0, s->cluster_size);                    /* header */
    walk_l1(cs, s->l1_offset, s->l1_size, true);
    for (int i = 0; i < s->nb_snapshots; i++) {
        walk_l1(cs, s->snapshots[i].l1_offset, s->snapshots[i].l1_size, false);
    }
    add_ref(cs, s->snapshots_offset, s->snapshots_size);
    walk_reftable(cs);
    qcow2_bitmaps_for_each_ref(cs->img, add_ref, cs);
}

/*
 * Write a new refcount structure from the counted references, count again
 * (the new table and blocks are referenced now, the old ones not), and
 * repair the leaks the old structure leaves.  As with qemu-img, the result
 * reports what was wrong before, as fixed, plus any leak the rebuild made.
 */
static int rebuild_and_recount(CheckState *cs, uint64_t *highest, Error **errp)
{
    BlockCheckResult *res = cs->res, old = *res;
    fprintf(stderr, "Rebuilding refcount structure\n");
    uint64_t nb = cs->nb_clusters;
    uint32_t *flat = xmalloc(MAX(nb, (uint64_t)1) * sizeof(*flat));
    for (uint64_t i = 0; i < nb; i++) {
        flat[i] = refs_get(cs, i);
    }
    int ret = qcow2_rebuild_refcounts(cs->img, &flat, &nb, errp);
    free(flat);
    if (ret < 0) {
        return -1;
    }
    res->corruptions = 0;
    res->leaks = 0;
    refs_free(cs);
    cs->nb_clusters = nb;
    /* Counting again must not count the allocation statistics twice. */
    BlockCheckResult stats = *res;
    count_refs(cs);
    res->allocated_clusters = stats.allocated_clusters;
    res->compressed_clusters = stats.compressed_clusters;
    res->fragmented_clusters = stats.fragmented_clusters;
    int fresh_leaks = 0;
    if (cs->fix & BLK_FIX_LEAKS) {
        BlockCheckResult saved = *res;
        bool rebuild;
        *res = (BlockCheckResult){ 0 };
        int fix = cs->fix;
        cs->fix = BLK_FIX_LEAKS;
        compare_refcounts(cs, highest, &rebuild);
        cs->fix = fix;
        if (rebuild) {
            fprintf(stderr, "ERROR rebuilt refcount structure is still broken\n");
        }
        fresh_leaks = res->leaks;
        *res = saved;
    }
    if (res->corruptions < old.corruptions) {
        res->corruptions_fixed += old.corruptions - res->corruptions;
    }
    if (res->leaks < old.leaks) {
        res->leaks_fixed += old.leaks - res->leaks;
    }
    res->leaks += fresh_leaks;
    return 0;
}

/* A repair that left nothing wrong makes the image usable again, as with qemu-img. */
static int clear_corrupt_bit(BlockImage *img, const BlockCheckResult *res, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (!(s->incompat & QCOW2_INCOMPAT_CORRUPT) || res->corruptions || res->check_errors) {
        return 0;
    }
    s->incompat &= ~QCOW2_INCOMPAT_CORRUPT;
    s->corrupt_marked = false;
    return qcow2_write_header(img, errp);
}

/* Active tables must carry COPIED exactly when the refcount is one. */
static void check_copied(CheckState *cs)
{
    BDRVQcow2 *s = cs->s;
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2_off = s->l1[i] & QCOW2_OFFSET_MASK;
        if (!l2_off || (l2_off & (s->cluster_size - 1)) ||
            (l2_off >> s->cluster_bits) >= cs->nb_clusters) {
            continue;
        }
        uint64_t rc;
        if (qcow2_get_refcount(cs->img, l2_off >> s->cluster_bits, &rc, NULL) < 0) {
            continue;
        }
        if ((rc == 1) != !!(s->l1[i] & QCOW2_OFLAG_COPIED)) {
            fprintf(stderr, "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%" PRIx64
                    " refcount=%" PRIu64 "\n",
                    cs->fix & BLK_FIX_ERRORS ? "Repairing" : "ERROR", i, s->l1[i], rc);
            if (cs->fix & BLK_FIX_ERRORS) {
                s->l1[i] = rc == 1 ? s->l1[i] | QCOW2_OFLAG_COPIED
                                   : s->l1[i] & ~QCOW2_OFLAG_COPIED;
                s->l1_dirty = true;
                cs->res->corruptions_fixed++;
            } else {
                cs->res->corruptions++;
            }
        }
        uint8_t *l2 = qcow2_cache_get(cs->img, &s->l2_cache, l2_off, false, NULL);
        if (!l2) {
            cs->res->check_errors++;
            continue;
        }
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = ld_be64(l2 + j * s->l2_entry_size);
            uint64_t off = e & QCOW2_OFFSET_MASK;
            if ((e & QCOW2_OFLAG_COMPRESSED) || !off || (off & (s->cluster_size - 1))) {
                continue;
            }
            /* Data file clusters are never shared: they count as referenced once. */
            if (qcow2_has_data_file(s)) {
                rc = 1;
            } else if (qcow2_get_refcount(cs->img, off >> s->cluster_bits, &rc, NULL) < 0) {
                continue;
            }
            if ((rc == 1) != !!(e & QCOW2_OFLAG_COPIED)) {
                fprintf(stderr, "%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64
                        " refcount=%" PRIu64 "\n",
                        cs->fix & BLK_FIX_ERRORS ? "Repairing" : "ERROR", e, rc);
                if (cs->fix & BLK_FIX_ERRORS) {
                    st_be64(l2 + j * s->l2_entry_size, rc == 1 ? e | QCOW2_OFLAG_COPIED
                                                : e & ~QCOW2_OFLAG_COPIED);
                    qcow2_cache_mark_dirty(&s->l2_cache, l2);
                    cs->res->corruptions_fixed++;
                } else {
                    cs->res->corruptions++;
                }
            }
        }
        qcow2_cache_put(&s->l2_cache, l2);
    }
}

int qcow2_check(BlockImage *img, BlockCheckResult *res, int fix, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if ((img->flags & BLK_O_RDWR) && qcow2_flush_metadata(img, false, errp) < 0) {
        return -1;
    }
    int64_t file_len = bfile_length(&img->file, errp);
    if (file_len < 0) {
        return -1;
    }
    CheckState cs = { .img = img, .s = s, .res = res, .fix = fix };
    cs.nb_clusters = ROUND_UP((uint64_t)file_len, s->cluster_size) >> s->cluster_bits;
    res->total_clusters = ROUND_UP(img->size, s->cluster_size) >> s->cluster_bits;
    count_refs(&cs);

    /* Report first; then repair in place, or rebuild when a referenced cluster has no refcount. */
    uint64_t highest = 0;
    bool rebuild;
    BlockCheckResult before = *res;
    cs.fix = 0;
    compare_refcounts(&cs, &highest, &rebuild);
    cs.fix = fix;
    if (rebuild && (fix & BLK_FIX_ERRORS)) {
        if (rebuild_and_recount(&cs, &highest, errp) < 0) {
            refs_free(&cs);
            return -1;
        }
    } else if (fix && rebuild) {
        fprintf(stderr, "ERROR need to rebuild refcount structures\n");
        res->check_errors++;
        refs_free(&cs);
        error_setg(errp, "Check failed: Input/output error");
        return -1;
    } else if (fix && (res->leaks || res->corruptions)) {
        *res = before;
        compare_refcounts(&cs, &highest, &rebuild);
    }
    check_copied(&cs);
    res->image_end_offset = (highest + 1) << s->cluster_bits;
    refs_free(&cs);
    if (fix && (res->leaks_fixed || res->corruptions_fixed) &&
        qcow2_flush_metadata(img, true, errp) < 0) {
        return -1;
    }
    return fix ? clear_corrupt_bit(img, res, errp) : 0;
}
