/*
 * qcow2: change an existing image's options in place (qemu-img amend).
 *
 * What can change: the compatibility level (0.10 <-> 1.1), lazy refcounts
 * and the virtual size.  Going down to 0.10 must leave nothing a version 2
 * reader cannot parse: zero clusters, in the snapshots' tables too, become
 * unallocated (no backing file, no host cluster) or plain clusters holding
 * zeros, and the features that only version 3 has must be off.
 */
#include "block/qcow2.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* One zero-expansion pass over every L1 table. */
typedef struct Expand {
    BlockImage *img;
    uint64_t visited, total;        /* L1 entries, over every table (progress) */
    void (*progress)(void *opaque, uint64_t done, uint64_t total);    /* or NULL */
    void *opaque;
} Expand;

/*
 * Make one zero L2 entry something a version 2 reader understands.  Plain
 * zero without a backing file: unallocated (reads as zeros all the same).
 * Otherwise a host cluster full of zeros, the one the entry has or a new
 * one, referenced as often as the table is (a table shared with snapshots
 * is changed in place for all of them).
 */
static int expand_entry(BlockImage *img, uint64_t *e, uint64_t l2_refcount, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t off = *e & QCOW2_OFFSET_MASK;
    if (!off) {
        if (!img->backing) {
            *e = 0;
            return 0;
        }
        int64_t n = qcow2_alloc_clusters(img, 1, errp);
        if (n < 0) {
            return -1;
        }
        off = (uint64_t)n;
        if (l2_refcount > 1 &&
            qcow2_update_refcount(img, off, s->cluster_size, (int64_t)l2_refcount - 1,
                                  errp) < 0) {
            return -1;
        }
    }
    if (off & (s->cluster_size - 1)) {
        qcow2_signal_corruption(img, errp, "cluster allocation offset 0x%" PRIx64
                                " unaligned (entry 0x%" PRIx64 ")", off, *e);
        return -1;
    }
    /* Written, not just zeroed: a new cluster may lie past the end of the file. */
    if (qcow2_pwrite_checked(img, 0, off, s->zero_cluster, s->cluster_size, errp) < 0) {
        return -1;
    }
    *e = off | (l2_refcount == 1 ? QCOW2_OFLAG_COPIED : 0);
    return 0;
}

/* Expand the zero entries of one L2 table (@t, cluster_size bytes); *changed if any. */
static int expand_table(BlockImage *img, uint8_t *t, uint64_t l2_refcount, bool *changed,
                        Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    *changed = false;
    for (uint64_t j = 0; j < s->l2_entries; j++) {
        uint64_t e, bm;
        qcow2_l2_load(s, t, j, &e, &bm);
        if ((e & QCOW2_OFLAG_COMPRESSED) || !(e & QCOW2_OFLAG_ZERO)) {
            continue;
        }
        if (expand_entry(img, &e, l2_refcount, errp) < 0) {
            return -1;
        }
        qcow2_l2_store(s, t, j, e, 0);
        *changed = true;
    }
    return 0;
}

static void expand_step(Expand *x)
{
    x->visited++;
    if (x->progress) {
        x->progress(x->opaque, x->visited, x->total);
    }
}

/*
 * Every L2 table an L1 table names: the active one's through the cache,
 * a snapshot's straight from the file (after the cache was written back).
 */
static int expand_l1(Expand *x, const uint64_t *l1, uint32_t l1_size, bool active,
                     Error **errp)
{
    BlockImage *img = x->img;
    BDRVQcow2 *s = img->opaque;
    uint8_t *buf = active ? NULL : blk_alloc_aligned(s->cluster_size);
    int ret = 0;
    for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
        uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;
        if (!l2_off) {
            expand_step(x);
            continue;
        }
        uint64_t rc;
        bool changed;
        if ((l2_off & (s->cluster_size - 1)) || qcow2_beyond_end(s, l2_off, s->cluster_size)) {
            qcow2_signal_corruption(img, errp, "L2 table offset 0x%" PRIx64 " of L1 entry %u "
                                    "is invalid", l2_off, i);
            ret = -1;
        } else if (qcow2_get_refcount(img, l2_off >> s->cluster_bits, &rc, errp) < 0) {
            ret = -1;
        } else if (active) {
            uint8_t *t = qcow2_cache_get(img, &s->l2_cache, l2_off, false, errp);
            if (!t) {
                ret = -1;
            } else {
                ret = expand_table(img, t, rc, &changed, errp);
                if (changed) {
                    qcow2_cache_mark_dirty(&s->l2_cache, t);
                }
                qcow2_cache_put(&s->l2_cache, t);
            }
        } else {
            ret = bfile_pread(&img->file, l2_off, buf, s->cluster_size, errp);
            if (ret == 0) {
                ret = expand_table(img, buf, rc, &changed, errp);
            }
            if (ret == 0 && changed) {
                ret = qcow2_pwrite_checked(img, QCOW2_OL_ACTIVE_L2, l2_off, buf,
                                           s->cluster_size, errp);
                qcow2_cache_forget(&s->l2_cache, l2_off);
            }
        }
        if (ret == 0) {
            expand_step(x);
        }
    }
    free(buf);
    return ret;
}

/* Rewrite the zero clusters of every table, the snapshots' too, for a version 2 reader. */
static int expand_zero_clusters(BlockImage *img, const BlockCreateOptions *o, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    Expand x = { .img = img, .total = s->l1_size, .progress = o->amend_progress,
                  .opaque = o->amend_opaque };
    for (int i = 0; i < s->nb_snapshots; i++) {
        x.total += s->snapshots[i].l1_size;
    }
    if (expand_l1(&x, s->l1, s->l1_size, true, errp) < 0 ||
        qcow2_cache_flush(img, &s->l2_cache, errp) < 0) {
        return -1;
    }
    for (int i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        uint64_t bytes = (uint64_t)sn->l1_size * 8;
        if (!qcow2_offset_ok(img, sn->l1_offset, bytes) || bytes > QCOW2_MAX_L1_BYTES) {
            qcow2_signal_corruption(img, errp, "snapshot L1 table at 0x%" PRIx64
                                    " is out of range", sn->l1_offset);
            return -1;
        }
        uint64_t *l1 = xmalloc(MAX(bytes, (uint64_t)8));
        int ret = bfile_pread(&img->file, sn->l1_offset, l1, bytes, errp);
        for (uint32_t j = 0; ret == 0 && j < sn->l1_size; j++) {
            l1[j] = ld_be64(&l1[j]);
        }
        if (ret == 0) {
            ret = expand_l1(&x, l1, sn->l1_size, false, errp);
        }
        free(l1);
        if (ret < 0) {
            return -1;
        }
    }
    return 0;
}

static int downgrade(BlockImage *img, const BlockCreateOptions *o, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (s->refcount_order != 4) {
        error_setg(errp, "compat=0.10 requires refcount_bits=16");
        return -1;
    }
    if (qcow2_has_data_file(s)) {
        error_setg(errp, "Cannot downgrade an image with a data file");
        return -1;
    }
    /*
     * A version 2 reader takes every snapshot to be of the image's size and
     * its VM state to fit 32 bits: anything else would be misread.
     */
    for (int i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        if (sn->vm_state_size_large > UINT32_MAX || sn->disk_size != img->size) {
            error_setg(errp, "Internal snapshots prevent downgrade of image");
            return -1;
        }
    }
    /* Lazy refcounts are made current first: the dirty bit goes with them. */
    if (qcow2_flush_metadata(img, true, errp) < 0) {
        return -1;
    }
    uint64_t incompat = s->incompat & ~QCOW2_INCOMPAT_DIRTY;
    if (incompat) {
        error_setg(errp, "Cannot downgrade an image with incompatible features 0x%" PRIx64
                   " set", incompat);
        return -1;
    }
    if (s->nb_bitmaps) {
        error_setg(errp, "Cannot downgrade an image with persistent bitmaps");
        return -1;
    }
    if (expand_zero_clusters(img, o, errp) < 0 ||
        qcow2_flush_metadata(img, true, errp) < 0) {
        return -1;
    }
    s->version = 2;
    s->header_length = QCOW2_V2_HEADER_LEN;
    s->incompat = s->compat = s->autoclear = 0;
    return qcow2_write_header(img, errp);
}

static int upgrade(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    s->version = 3;
    s->header_length = QCOW2_V3_HEADER_LEN + 8;     /* with the compression type field */
    s->incompat = s->compat = s->autoclear = 0;
    return qcow2_write_header(img, errp);
}

int qcow2_amend(BlockImage *img, const BlockCreateOptions *o, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    int version = (o->given & BLK_CREATE_GIVEN_COMPAT) ? o->compat : s->version;
    /* Unless asked for, lazy refcounts go quietly with a downgrade. */
    bool lazy = (o->given & BLK_CREATE_GIVEN_LAZY) ? o->lazy_refcounts
                : version >= 3 && (s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS);
    if (version < 3 && lazy) {
        error_setg(errp, "Lazy refcounts only supported with compatibility level 1.1 and "
                   "above (use compat=1.1 or greater)");
        return -1;
    }
    int bits = (o->given & BLK_CREATE_GIVEN_REFCOUNT_BITS) ? o->refcount_bits
                                                          : 1 << s->refcount_order;
    if (bits != 1 << s->refcount_order) {
        error_setg(errp, "Changing the refcount width is not supported");
        return -1;
    }
    /* The external data file's name and raw flag (the tool checked they may change). */
    if (qcow2_has_data_file(s) &&
        (o->data_file || (o->given & BLK_CREATE_GIVEN_DATA_FILE_RAW))) {
        if (o->data_file) {
            free(s->data_file_name);
            s->data_file_name = *o->data_file ? xstrdup(o->data_file) : NULL;
        }
        if (o->given & BLK_CREATE_GIVEN_DATA_FILE_RAW) {
            s->data_raw = o->data_file_raw;
            s->autoclear = o->data_file_raw ? s->autoclear | QCOW2_AUTOCLEAR_DATA_RAW
                                            : s->autoclear & ~QCOW2_AUTOCLEAR_DATA_RAW;
        }
        if (qcow2_write_header(img, errp) < 0) {
            return -1;
        }
    }
    /* In qemu-img's order: upgrade, lazy refcounts, size, and downgrade last. */
    if (version > s->version && upgrade(img, errp) < 0) {
        return -1;
    }
    if (version >= 3 && lazy != !!(s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS)) {
        /* Turning lazy refcounts off leaves nothing to repair: the refcounts are current. */
        if (qcow2_flush_metadata(img, true, errp) < 0) {
            return -1;
        }
        s->compat ^= QCOW2_COMPAT_LAZY_REFCOUNTS;
        if (qcow2_write_header(img, errp) < 0) {
            return -1;
        }
    }
    if ((o->given & BLK_CREATE_GIVEN_SIZE) && o->size != img->size &&
        blk_resize(img, o->size, errp) < 0) {
        return -1;
    }
    if (version < s->version && downgrade(img, o, errp) < 0) {
        return -1;
    }
    return 0;
}
