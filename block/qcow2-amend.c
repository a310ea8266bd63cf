/*
 * qcow2: change an existing image's options in place (qemu-img amend).
 *
 * What can change: the compatibility level (0.10 <-> 1.1), lazy refcounts
 * and the virtual size.  Going down to 0.10 must leave nothing a version 2
 * reader cannot parse: zero clusters become unallocated (no backing file,
 * no host cluster) or plain clusters holding zeros, and the features that
 * only version 3 has must be off.
 */
#include "block/qcow2.h"

#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* Rewrite every zero cluster of the active table so a version 2 reader sees zeros too. */
static int expand_zero_clusters(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *zeros = s->zero_cluster;
    for (uint64_t off = 0; off < img->size;) {
        BlockStatus st;
        if (qcow2_block_status(img, off, img->size - off, &st, errp) < 0) {
            return -1;
        }
        uint64_t n = MIN(st.len, img->size - off);
        if (st.kind == BLK_STATUS_ZERO) {
            /* Without a backing file, unallocated reads as zeros: the host cluster goes. */
            bool drop = !img->backing;
            for (uint64_t o = off; o < off + n; o += s->cluster_size) {
                uint64_t len = MIN((uint64_t)s->cluster_size, off + n - o);
                int ret = drop ? qcow2_discard(img, o, len, errp)
                               : qcow2_write(img, o, zeros, len, errp);
                if (ret < 0) {
                    return -1;
                }
            }
        }
        off += n;
    }
    return 0;
}

static int downgrade(BlockImage *img, Error **errp)
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
    if (s->ext_l2 || s->compression_type != QCOW2_COMPRESSION_ZLIB) {
        error_setg(errp, "Cannot downgrade an image with extended L2 entries or a "
                   "compression type other than zlib");
        return -1;
    }
    if (s->nb_bitmaps) {
        error_setg(errp, "Cannot downgrade an image with persistent bitmaps");
        return -1;
    }
    if (s->nb_snapshots) {
        /* Snapshot tables may hold zero clusters too; they are not rewritten here. */
        error_setg(errp, "Cannot downgrade an image with internal snapshots");
        return -1;
    }
    if (expand_zero_clusters(img, errp) < 0 || qcow2_flush_metadata(img, true, errp) < 0) {
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
    if ((o->given & BLK_CREATE_GIVEN_SIZE) && o->size != img->size &&
        blk_resize(img, o->size, errp) < 0) {
        return -1;
    }
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
    if (version < s->version && downgrade(img, errp) < 0) {
        return -1;
    }
    return 0;
}
