/*
 * qcow2 metadata cache: L2 tables and refcount blocks, written back lazily.
 *
 * Order matters for crash safety: an L2 table may only reach the disk after
 * the refcount blocks that account for the clusters it points to, so a
 * crash can leak clusters but never leave a cluster in use with refcount 0.
 */
#include "block/qcow2.h"

#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

void qcow2_cache_init(Qcow2Cache *c, int nb_entries, uint32_t cluster_size, bool is_l2)
{
    c->entries = xzalloc(sizeof(*c->entries) * (size_t)nb_entries);
    c->nb_entries = nb_entries;
    c->is_l2 = is_l2;
    /* Entries get their buffer on first use (qcow2_cache_get): a small image
     * or an idle export never holds a whole cache of zeroed clusters. */
    (void)cluster_size;
}

void qcow2_cache_destroy(Qcow2Cache *c)
{
    for (int i = 0; i < c->nb_entries; i++) {
        free(c->entries[i].data);
    }
    free(c->entries);
    c->entries = NULL;
    c->nb_entries = 0;
}

/* Before an L2 table is written, its refcounts must be stable on disk. */
static int flush_dependencies(BlockImage *img, Qcow2Cache *c, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (!c->is_l2 || !qcow2_cache_has_dirty(&s->rb_cache)) {
        return 0;
    }
    if (qcow2_cache_flush(img, &s->rb_cache, errp) < 0) {
        return -1;
    }
    return bfile_flush(&img->file, errp);
}

static int write_entry(BlockImage *img, Qcow2Cache *c, Qcow2CacheEntry *e, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (!e->dirty) {
        return 0;
    }
    if (flush_dependencies(img, c, errp) < 0) {
        return -1;
    }
    int self = c->is_l2 ? QCOW2_OL_ACTIVE_L2 : QCOW2_OL_REFCOUNT_BLOCK;
    if (qcow2_pwrite_checked(img, self, e->offset, e->data, s->cluster_size, errp) < 0) {
        return -1;
    }
    e->dirty = false;
    return 0;
}

static Qcow2CacheEntry *entry_of(Qcow2Cache *c, const uint8_t *table)
{
    for (int i = 0; i < c->nb_entries; i++) {
        if (c->entries[i].data == table) {
            return &c->entries[i];
        }
    }
    abort();   /* a table pointer that did not come from this cache */
}

static Qcow2CacheEntry *find_victim(BlockImage *img, Qcow2Cache *c, Error **errp)
{
    Qcow2CacheEntry *victim = NULL;
    for (int i = 0; i < c->nb_entries; i++) {
        Qcow2CacheEntry *e = &c->entries[i];
        if (e->pins) {
            continue;
        }
        if (!e->offset) {
            return e;
        }
        if (!victim || e->last_use < victim->last_use) {
            victim = e;
        }
    }
    if (!victim) {
        error_setg(errp, "qcow2 metadata cache exhausted");
        return NULL;
    }
    if (write_entry(img, c, victim, errp) < 0) {
        return NULL;
    }
    victim->offset = 0;
    return victim;
}

uint8_t *qcow2_cache_get(BlockImage *img, Qcow2Cache *c, uint64_t offset, bool fresh,
                         Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    for (int i = 0; i < c->nb_entries; i++) {
        Qcow2CacheEntry *e = &c->entries[i];
        if (e->offset == offset) {
            e->pins++;
            e->last_use = ++c->use_counter;
            if (fresh) {
                memset(e->data, 0, s->cluster_size);
            }
            return e->data;
        }
    }
    Qcow2CacheEntry *e = find_victim(img, c, errp);
    if (!e) {
        return NULL;
    }
    if (!e->data) {
        e->data = blk_alloc_aligned(s->cluster_size);
    }
    if (fresh) {
        memset(e->data, 0, s->cluster_size);
    } else if (bfile_pread(&img->file, offset, e->data, s->cluster_size, errp) < 0) {
        return NULL;
    }
    e->offset = offset;
    e->dirty = false;
    e->pins = 1;
    e->last_use = ++c->use_counter;
    return e->data;
}

void qcow2_cache_put(Qcow2Cache *c, uint8_t *table)
{
    Qcow2CacheEntry *e = entry_of(c, table);
    e->pins--;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, uint8_t *table)
{
    entry_of(c, table)->dirty = true;
}

bool qcow2_cache_has_dirty(Qcow2Cache *c)
{
    for (int i = 0; i < c->nb_entries; i++) {
        if (c->entries[i].offset && c->entries[i].dirty) {
            return true;
        }
    }
    return false;
}

int qcow2_cache_flush(BlockImage *img, Qcow2Cache *c, Error **errp)
{
    for (int i = 0; i < c->nb_entries; i++) {
        Qcow2CacheEntry *e = &c->entries[i];
        if (e->offset && write_entry(img, c, e, errp) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The cluster at @offset is being freed: drop it without writing it back. */
void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset)
{
    for (int i = 0; i < c->nb_entries; i++) {
        if (c->entries[i].offset == offset && !c->entries[i].pins) {
            c->entries[i].offset = 0;
            c->entries[i].dirty = false;
        }
    }
}

void qcow2_cache_forget_all(Qcow2Cache *c)
{
    for (int i = 0; i < c->nb_entries; i++) {
        c->entries[i].offset = 0;
        c->entries[i].dirty = false;
    }
}
