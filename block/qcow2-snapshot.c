/*
 * qcow2 internal snapshots: the snapshot table, create, apply, delete.
 *
 * A snapshot is a copy of the L1 table plus one more reference on every
 * cluster it reaches; writes then copy shared clusters (COPIED flag clear).
 */
#include "block/qcow2.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/osdep.h"

#define SN_HEADER_LEN     40
#define SN_EXTRA_LEN      24        /* vm_state_size_large, disk_size, icount */
#define SN_MAX_EXTRA      1024
#define SN_MAX_TABLE      (64u << 20)

void qcow2_free_snapshots(BDRVQcow2 *s)
{
    /* nb_snapshots may come from a header that failed validation before the table was read */
    for (int i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        free(s->snapshots[i].id);
        free(s->snapshots[i].name);
        free(s->snapshots[i].extra);
    }
    free(s->snapshots);
    s->snapshots = NULL;
    s->nb_snapshots = 0;
}

static int read_one(BlockImage *img, uint64_t *pos, Qcow2Snapshot *sn, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t h[SN_HEADER_LEN];
    if (bfile_pread(&img->file, *pos, h, sizeof(h), errp) < 0) {
        return -1;
    }
    sn->l1_offset = ld_be64(h);
    sn->l1_size = ld_be32(h + 8);
    uint16_t id_len = ld_be16(h + 12), name_len = ld_be16(h + 14);
    sn->date_sec = ld_be32(h + 16);
    sn->date_nsec = ld_be32(h + 20);
    sn->vm_clock_nsec = ld_be64(h + 24);
    sn->vm_state_size = ld_be32(h + 32);
    sn->extra_size = ld_be32(h + 36);
    sn->icount = UINT64_MAX;
    if (sn->extra_size > SN_MAX_EXTRA) {
        error_setg(errp, "snapshot extra data too large (%u bytes)", sn->extra_size);
        return -1;
    }
    if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
        (sn->l1_offset & (s->cluster_size - 1)) ||
        !qcow2_offset_ok(img, sn->l1_offset, (uint64_t)sn->l1_size * 8)) {
        error_setg(errp, "snapshot L1 table (%u entries at 0x%" PRIx64 ") is invalid",
                   sn->l1_size, sn->l1_offset);
        return -1;
    }
    size_t rest = sn->extra_size + (size_t)id_len + name_len;
    uint8_t *buf = xmalloc(rest + 1);
    if (bfile_pread(&img->file, *pos + SN_HEADER_LEN, buf, rest, errp) < 0) {
        free(buf);
        return -1;
    }
    sn->extra = xmalloc(sn->extra_size + 1);
    memcpy(sn->extra, buf, sn->extra_size);
    if (sn->extra_size >= 8) {
        sn->vm_state_size_large = ld_be64(buf);
    }
    sn->disk_size = sn->extra_size >= 16 ? ld_be64(buf + 8) : img->size;
    if (sn->extra_size >= 24) {
        sn->icount = ld_be64(buf + 16);
    }
    sn->id = strndup((const char *)buf + sn->extra_size, id_len);
    sn->name = strndup((const char *)buf + sn->extra_size + id_len, name_len);
    free(buf);
    *pos += ROUND_UP(SN_HEADER_LEN + rest, 8);
    return 0;
}

int qcow2_read_snapshots(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    int count = s->nb_snapshots;
    s->nb_snapshots = 0;
    if (count == 0) {
        return 0;
    }
    if ((s->snapshots_offset & (s->cluster_size - 1)) ||
        !qcow2_offset_ok(img, s->snapshots_offset, SN_MAX_TABLE)) {
        error_setg(errp, "snapshot table offset 0x%" PRIx64 " is invalid",
                   s->snapshots_offset);
        return -1;
    }
    s->snapshots = xzalloc(sizeof(Qcow2Snapshot) * (size_t)count);
    uint64_t pos = s->snapshots_offset;
    for (int i = 0; i < count; i++) {
        if (pos - s->snapshots_offset > SN_MAX_TABLE) {
            error_setg(errp, "snapshot table is larger than %u bytes", SN_MAX_TABLE);
            return -1;
        }
        if (read_one(img, &pos, &s->snapshots[i], errp) < 0) {
            free(s->snapshots[i].extra);
            free(s->snapshots[i].id);
            free(s->snapshots[i].name);
            return -1;
        }
        s->nb_snapshots++;
    }
    s->snapshots_size = pos - s->snapshots_offset;
    return 0;
}

static size_t serialize(BDRVQcow2 *s, uint8_t **out)
{
    size_t cap = 0;
    for (int i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        cap += ROUND_UP(SN_HEADER_LEN + MAX(sn->extra_size, (uint32_t)SN_EXTRA_LEN) +
                        strlen(sn->id) + strlen(sn->name), 8);
    }
    uint8_t *buf = xzalloc(cap);
    size_t pos = 0;
    for (int i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        uint32_t extra = MAX(sn->extra_size, (uint32_t)SN_EXTRA_LEN);
        size_t id_len = strlen(sn->id), name_len = strlen(sn->name);
        uint8_t *h = buf + pos;
        st_be64(h, sn->l1_offset);
        st_be32(h + 8, sn->l1_size);
        st_be16(h + 12, (uint16_t)id_len);
        st_be16(h + 14, (uint16_t)name_len);
        st_be32(h + 16, sn->date_sec);
        st_be32(h + 20, sn->date_nsec);
        st_be64(h + 24, sn->vm_clock_nsec);
        st_be32(h + 32, sn->vm_state_size);
        st_be32(h + 36, extra);
        memcpy(h + 40, sn->extra, sn->extra_size);
        st_be64(h + 40, sn->vm_state_size_large);
        st_be64(h + 48, sn->disk_size);
        st_be64(h + 56, sn->icount == UINT64_MAX ? 0 : sn->icount);
        memcpy(h + 40 + extra, sn->id, id_len);
        memcpy(h + 40 + extra + id_len, sn->name, name_len);
        pos += ROUND_UP(SN_HEADER_LEN + extra + id_len + name_len, 8);
    }
    *out = buf;
    return pos;
}

/* Write the table to new clusters, switch the header over, free the old table. */
static int write_snapshot_table(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *buf;
    size_t len = serialize(s, &buf);
    uint64_t old_off = s->snapshots_offset, old_len = s->snapshots_size;
    uint64_t new_off = 0;
    int ret = 0;
    if (len) {
        int64_t off = qcow2_alloc_clusters(img, ROUND_UP(len, s->cluster_size) >>
                                           s->cluster_bits, errp);
        ret = off < 0 ? -1 : 0;
        new_off = off < 0 ? 0 : (uint64_t)off;
        if (ret == 0) {
            size_t padded = ROUND_UP(len, s->cluster_size);
            uint8_t *full = blk_alloc_aligned(padded);
            memcpy(full, buf, len);
            ret = qcow2_pwrite_checked(img, QCOW2_OL_SNAPSHOT_TABLE, new_off, full, padded, errp);
            free(full);
        }
    }
    free(buf);
    if (ret == 0) {
        ret = qcow2_flush_metadata(img, true, errp);
    }
    if (ret < 0) {
        return -1;
    }
    s->snapshots_offset = new_off;
    s->snapshots_size = len;
    if (qcow2_write_header(img, errp) < 0 || bfile_flush(&img->file, errp) < 0) {
        return -1;
    }
    return old_len ? qcow2_free_clusters(img, old_off, old_len, errp) : 0;
}

/* Set COPIED on every active L1/L2 entry whose cluster has refcount one, clear it elsewhere. */
static int update_copied_flags(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2_off = s->l1[i] & QCOW2_OFFSET_MASK, rc;
        if (!l2_off) {
            continue;
        }
        if (qcow2_get_refcount(img, l2_off >> s->cluster_bits, &rc, errp) < 0) {
            return -1;
        }
        uint64_t want = rc == 1 ? l2_off | QCOW2_OFLAG_COPIED : l2_off;
        if (s->l1[i] != want) {
            s->l1[i] = want;
            s->l1_dirty = true;
        }
        uint8_t *t = qcow2_cache_get(img, &s->l2_cache, l2_off, false, errp);
        if (!t) {
            return -1;
        }
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = ld_be64(t + s->l2_entry_size * j);
            if ((e & QCOW2_OFLAG_COMPRESSED) || !(e & QCOW2_OFFSET_MASK)) {
                continue;
            }
            if (qcow2_get_refcount(img, (e & QCOW2_OFFSET_MASK) >> s->cluster_bits, &rc,
                                   errp) < 0) {
                qcow2_cache_put(&s->l2_cache, t);
                return -1;
            }
            uint64_t ne = rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
            if (ne != e) {
                st_be64(t + s->l2_entry_size * j, ne);
                qcow2_cache_mark_dirty(&s->l2_cache, t);
            }
        }
        qcow2_cache_put(&s->l2_cache, t);
    }
    return 0;
}

static Qcow2Snapshot *find_snapshot(BDRVQcow2 *s, const char *name)
{
    for (int i = 0; i < s->nb_snapshots; i++) {
        if (strcmp(s->snapshots[i].id, name) == 0) {
            return &s->snapshots[i];
        }
    }
    for (int i = 0; i < s->nb_snapshots; i++) {
        if (strcmp(s->snapshots[i].name, name) == 0) {
            return &s->snapshots[i];
        }
    }
    return NULL;
}

static char *next_id(BDRVQcow2 *s)
{
    unsigned long max = 0;
    for (int i = 0; i < s->nb_snapshots; i++) {
        unsigned long v = strtoul(s->snapshots[i].id, NULL, 10);
        max = MAX(max, v);
    }
    return xasprintf("%lu", max + 1);
}

int qcow2_snapshot_create(BlockImage *img, const char *name, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_has_data_file(s)) {
        /* Data file clusters are not refcounted, so nothing could be shared. */
        error_setg(errp, "internal snapshots are not supported with an external data file");
        return -1;
    }
    if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS) {
        error_setg(errp, "too many snapshots");
        return -1;
    }
    if (strlen(name) > UINT16_MAX) {
        error_setg(errp, "snapshot name too long");
        return -1;
    }
    if (qcow2_flush_metadata(img, true, errp) < 0) {
        return -1;
    }
    uint64_t l1_bytes = ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);
    int64_t l1_off = qcow2_alloc_clusters(img, MAX(l1_bytes >> s->cluster_bits, 1u), errp);
    if (l1_off < 0) {
        return -1;
    }
    uint64_t *l1 = blk_alloc_aligned(MAX(l1_bytes, (uint64_t)s->cluster_size));
    for (uint32_t i = 0; i < s->l1_size; i++) {
        st_be64(&l1[i], s->l1[i] & ~QCOW2_OFLAG_COPIED);
    }
    int ret = qcow2_pwrite_checked(img, QCOW2_OL_INACTIVE_L1, (uint64_t)l1_off, l1,
                                   MAX(l1_bytes, (uint64_t)s->cluster_size), errp);
    free(l1);
    if (ret == 0) {
        ret = qcow2_update_l1_refcounts(img, s->l1_offset, s->l1_size, 1, errp);
    }
    if (ret < 0) {
        return -1;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->snapshots = xrealloc(s->snapshots, sizeof(Qcow2Snapshot) * (size_t)(s->nb_snapshots + 1));
    Qcow2Snapshot *sn = &s->snapshots[s->nb_snapshots];
    *sn = (Qcow2Snapshot) {
        .l1_offset = (uint64_t)l1_off, .l1_size = s->l1_size,
        .id = next_id(s), .name = xstrdup(name),
        .date_sec = (uint32_t)now.tv_sec, .date_nsec = (uint32_t)now.tv_nsec,
        .disk_size = img->size, .icount = 0, .extra = xzalloc(1),
    };
    s->nb_snapshots++;
    if (update_copied_flags(img, errp) < 0 || qcow2_flush_metadata(img, true, errp) < 0) {
        return -1;
    }
    return write_snapshot_table(img, errp);
}

int qcow2_snapshot_apply(BlockImage *img, const char *name, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_has_data_file(s)) {
        error_setg(errp, "internal snapshots are not supported with an external data file");
        return -1;
    }
    Qcow2Snapshot *sn = find_snapshot(s, name);
    if (!sn) {
        error_setg(errp, "Can't find snapshot '%s'", name);
        return -1;
    }
    if (qcow2_flush_metadata(img, true, errp) < 0 ||
        qcow2_update_l1_refcounts(img, sn->l1_offset, sn->l1_size, 1, errp) < 0) {
        return -1;
    }
    /* The snapshot's L1 becomes the active one, in a table of its own. */
    uint64_t bytes = ROUND_UP(MAX((uint64_t)sn->l1_size * 8, 8u), s->cluster_size);
    int64_t new_off = qcow2_alloc_clusters(img, bytes >> s->cluster_bits, errp);
    if (new_off < 0) {
        return -1;
    }
    uint64_t *l1 = blk_alloc_aligned(bytes);
    if (bfile_pread(&img->file, sn->l1_offset, l1, (size_t)sn->l1_size * 8, errp) < 0) {
        free(l1);
        return -1;
    }
    for (uint32_t i = 0; i < sn->l1_size; i++) {
        l1[i] = ld_be64(&l1[i]);
    }
    uint64_t old_off = s->l1_offset;
    uint32_t old_size = s->l1_size;
    free(s->l1);
    s->l1 = l1;
    s->l1_size = sn->l1_size;
    s->l1_offset = (uint64_t)new_off;
    img->size = sn->disk_size;
    qcow2_cache_forget_all(&s->l2_cache);
    if (qcow2_write_l1(img, errp) < 0 || qcow2_flush_metadata(img, true, errp) < 0 ||
        qcow2_write_header(img, errp) < 0 ||
        qcow2_update_l1_refcounts(img, old_off, old_size, -1, errp) < 0 ||
        qcow2_free_clusters(img, old_off,
                            ROUND_UP(MAX((uint64_t)old_size * 8, 8u), s->cluster_size),
                            errp) < 0 ||
        update_copied_flags(img, errp) < 0) {
        return -1;
    }
    return qcow2_flush_metadata(img, true, errp);
}

int qcow2_snapshot_delete(BlockImage *img, const char *name, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    Qcow2Snapshot *sn = find_snapshot(s, name);
    if (!sn) {
        error_setg(errp, "Could not delete snapshot '%s': snapshot not found", name);
        return -1;
    }
    Qcow2Snapshot gone = *sn;
    int idx = (int)(sn - s->snapshots);
    memmove(sn, sn + 1, sizeof(*sn) * (size_t)(s->nb_snapshots - idx - 1));
    s->nb_snapshots--;
    /* Forget the snapshot on disk first: a crash afterwards only leaks clusters. */
    int ret = write_snapshot_table(img, errp);
    if (ret == 0) {
        ret = qcow2_update_l1_refcounts(img, gone.l1_offset, gone.l1_size, -1, errp);
    }
    if (ret == 0) {
        ret = qcow2_free_clusters(img, gone.l1_offset,
                                  ROUND_UP(MAX((uint64_t)gone.l1_size * 8, 8u),
                                           s->cluster_size), errp);
    }
    free(gone.id);
    free(gone.name);
    free(gone.extra);
    if (ret == 0) {
        ret = update_copied_flags(img, errp);
    }
    return ret < 0 ? -1 : qcow2_flush_metadata(img, true, errp);
}
