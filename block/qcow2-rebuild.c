/*
 * qcow2: rebuild the refcount structure from the references check counted.
 *
 * When a cluster that the image references has refcount 0 on disk (a crash
 * with lazy refcounts, say), repairing refcount blocks in place could hand
 * that cluster out again while the repair itself allocates.  Instead the
 * whole structure is written anew from the counted references: refcount
 * blocks first, each placed in the first free cluster (counting what was
 * placed so far), then the refcount table likewise, then the header points
 * at the new table.  The old table and blocks are then leaks, which check
 * repairs.  The placement follows qemu-img 7.2's, so the files come out alike.
 */
#include "block/qcow2.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

typedef struct Rebuild {
    BlockImage *img;
    BDRVQcow2 *s;
    uint32_t *refs;         /* references per cluster, grown as clusters are placed */
    uint64_t nb;            /* clusters in refs[] */
    uint64_t *table;        /* the new refcount table, host byte order */
    uint64_t table_entries;
} Rebuild;

static void grow_refs(Rebuild *r, uint64_t nb)
{
    if (nb <= r->nb) {
        return;
    }
    r->refs = xrealloc(r->refs, nb * sizeof(*r->refs));
    memset(r->refs + r->nb, 0, (nb - r->nb) * sizeof(*r->refs));
    r->nb = nb;
}

/*
 * Place @count contiguous clusters at the first free run from *first_free
 * on, past the end if there is none; *first_free moves to the first free
 * cluster seen.
 */
static uint64_t place(Rebuild *r, uint64_t count, uint64_t *first_free)
{
    uint64_t c, run = 0;
    bool first_gap = true;
    for (c = *first_free; c < r->nb && run < count; c++) {
        if (!r->refs[c]) {
            run++;
            if (first_gap) {
                *first_free = c;
                first_gap = false;
            }
        } else {
            run = 0;
        }
    }
    if (run < count) {
        grow_refs(r, c + count - run);
    }
    c -= run;
    for (uint64_t i = 0; i < count; i++) {
        r->refs[c + i] = 1;
    }
    return c;
}

/* Write the refcount blocks covering clusters [first, end) that count anything. */
static int write_blocks(Rebuild *r, uint64_t first, uint64_t end, Error **errp)
{
    BDRVQcow2 *s = r->s;
    uint64_t first_free = 0;
    uint8_t *block = blk_alloc_aligned(s->cluster_size);
    int ret = 0;
    for (uint64_t c = first; c < end && ret == 0; c++) {
        if (c >= r->nb || !r->refs[c]) {
            continue;
        }
        uint64_t idx = c / s->rb_entries, start = idx * s->rb_entries;
        uint64_t off;
        if (idx < r->table_entries && r->table[idx]) {
            off = r->table[idx];
        } else {
            first_free = MAX(first_free, start);    /* not inside a block already written */
            uint64_t bc = place(r, 1, &first_free);
            end = MAX(end, bc + 1);     /* its own refcount must be written too */
            if (idx >= r->table_entries) {
                uint64_t n = ROUND_UP(idx + 1, s->cluster_size / 8);
                r->table = xrealloc(r->table, n * sizeof(*r->table));
                memset(r->table + r->table_entries, 0,
                       (n - r->table_entries) * sizeof(*r->table));
                r->table_entries = n;
            }
            off = bc << s->cluster_bits;
            r->table[idx] = off;
        }
        memset(block, 0, s->cluster_size);
        for (uint64_t i = 0; i < s->rb_entries && start + i < r->nb; i++) {
            qcow2_refcount_set_entry(s, block, i, MIN((uint64_t)r->refs[start + i],
                                                      s->refcount_max));
        }
        ret = bfile_pwrite(&r->img->file, off, block, s->cluster_size, errp);
        c = start + s->rb_entries - 1;
    }
    free(block);
    return ret;
}

int qcow2_rebuild_refcounts(BlockImage *img, uint32_t **refs, uint64_t *nb, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    Rebuild r = { .img = img, .s = s, .refs = *refs, .nb = *nb };
    uint64_t toff = 0, tbytes = 0, tclusters = 0;
    int ret;
    /* The cached blocks are the old structure's (written back before the check). */
    qcow2_cache_forget_all(&s->rb_cache);
    ret = write_blocks(&r, 0, r.nb, errp);
    while (ret == 0) {
        tbytes = r.table_entries * 8;
        tclusters = (tbytes + s->cluster_size - 1) >> s->cluster_bits;
        uint64_t first_free = 0;
        uint64_t tc = place(&r, tclusters, &first_free);
        toff = tc << s->cluster_bits;
        /* The table's own clusters need counting: their blocks are written again. */
        ret = write_blocks(&r, tc, tc + tclusters, errp);
        if (ret < 0 || tbytes == r.table_entries * 8) {
            break;
        }
        /* A new block made the table longer: give this place back and look again. */
        for (uint64_t i = 0; i < tclusters; i++) {
            r.refs[tc + i] = 0;
        }
    }
    if (ret == 0) {
        uint64_t *be = blk_alloc_aligned(MAX(tbytes, (uint64_t)8));
        for (uint64_t i = 0; i < r.table_entries; i++) {
            st_be64(&be[i], r.table[i]);
        }
        uint8_t hdr[12];
        st_be64(hdr, toff);
        st_be32(hdr + 8, (uint32_t)tclusters);
        /* Table first, then the header's two fields that name it. */
        ret = bfile_pwrite(&img->file, toff, be, tbytes, errp);
        if (ret == 0) {
            ret = bfile_flush(&img->file, errp);
        }
        if (ret == 0) {
            ret = bfile_pwrite(&img->file, 48, hdr, sizeof(hdr), errp);
        }
        if (ret == 0) {
            ret = bfile_flush(&img->file, errp);
        }
        free(be);
    }
    if (ret == 0) {
        free(s->reftable);
        s->reftable = r.table;
        s->reftable_entries = r.table_entries;
        s->reftable_offset = toff;
        s->reftable_clusters = (uint32_t)tclusters;
        s->free_hint = 0;
        s->run_hint = 0;
        /* The new structure may lie past what was the end of the file. */
        s->zeroed_from = MAX(s->zeroed_from, r.nb << s->cluster_bits);
        qcow2_reftable_note_used(s);
    } else {
        free(r.table);
    }
    *refs = r.refs;
    *nb = r.nb;
    return ret;
}
