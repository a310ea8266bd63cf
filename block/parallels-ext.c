/*
 * The parallels format extension: one cluster, addressed by the header's
 * ext_off, holding an MD5-checked list of features.  The only feature we
 * know is the dirty bitmap; unknown features are kept or dropped as their
 * NECESSARY and TRANSIT flags demand.
 *
 * Bitmaps live in memory while the image is open and are written back on a
 * clean close; the header's in_use marker tells later readers whether that
 * happened.
 */
#include "block/parallels.h"

#include <ctype.h>
#include <nettle/md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

#define EXT_HEADER_SIZE   24        /* magic + MD5 */
#define FEAT_HEADER_SIZE  24        /* magic, flags, data_size, unused */
#define BITMAP_FIXED_SIZE 32        /* size, id, granularity, l1_size */
#define MAX_BITMAP_BYTES  (256u << 20)
#define DEFAULT_GRANULARITY 65536

static void ext_md5(const uint8_t *cluster, uint32_t cluster_size, uint8_t out[16])
{
    struct md5_ctx ctx;
    md5_init(&ctx);
    md5_update(&ctx, cluster_size - EXT_HEADER_SIZE, cluster + EXT_HEADER_SIZE);
    md5_digest(&ctx, MD5_DIGEST_SIZE, out);
}

static void uuid_to_name(const uint8_t id[16], char name[37])
{
    snprintf(name, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", id[0], id[1], id[2], id[3], id[4], id[5], id[6],
             id[7], id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15]);
}

static bool name_to_uuid(const char *name, uint8_t id[16])
{
    if (strlen(name) != 36) {
        return false;
    }
    for (int i = 0, byte = 0; i < 36; byte++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (name[i++] != '-') {
                return false;
            }
        }
        unsigned v;
        if (sscanf(name + i, "%2x", &v) != 1 || !isxdigit((unsigned char)name[i]) ||
            !isxdigit((unsigned char)name[i + 1])) {
            return false;
        }
        id[byte] = (uint8_t)v;
        i += 2;
    }
    return true;
}

static uint64_t bitmap_bytes(const ParallelsBitmap *bm)
{
    return (bm->nbits + 7) / 8;
}

static uint32_t l1_entries_for(const BDRVParallels *s, uint64_t bytes)
{
    return (uint32_t)((bytes + s->cluster_size - 1) / s->cluster_size);
}

static void free_bitmap(ParallelsBitmap *bm)
{
    free(bm->bits);
    free(bm->l1);
}

void parallels_ext_free(BDRVParallels *s)
{
    for (int i = 0; i < s->nb_bitmaps; i++) {
        free_bitmap(&s->bitmaps[i]);
    }
    for (int i = 0; i < s->nb_opaque; i++) {
        free(s->opaque[i].data);
    }
    free(s->bitmaps);
    free(s->opaque);
    free(s->ext_problem);
    s->bitmaps = NULL;
    s->opaque = NULL;
    s->nb_bitmaps = s->nb_opaque = 0;
}

/* ---- Loading ---- */

/* NULL when @off may hold a cluster of the extension, else the problem. */
static const char *ext_cluster_problem(const BDRVParallels *s, uint64_t off)
{
    if (!parallels_cluster_offset_ok(s, off)) {
        return "not a valid cluster offset in the data area";
    }
    if (parallels_bat_uses(s, off)) {
        return "a cluster the BAT also uses";
    }
    return NULL;
}

static int read_bitmap_bits(BlockImage *img, ParallelsBitmap *bm, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint64_t bytes = bitmap_bytes(bm);
    bm->bits = xzalloc(bytes + 1);
    for (uint32_t i = 0; i < bm->l1_size; i++) {
        uint64_t at = (uint64_t)i * s->cluster_size;
        size_t n = (size_t)MIN((uint64_t)s->cluster_size, bytes - at);
        if (bm->l1[i] == 1) {
            memset(bm->bits + at, 0xff, n);
        } else if (bm->l1[i] && bfile_pread(&img->file, bm->l1[i], bm->bits + at, n, errp) < 0) {
            return -1;
        }
    }
    if (bm->nbits % 8) {
        bm->bits[bytes - 1] &= (uint8_t)((1u << (bm->nbits % 8)) - 1);  /* unused tail bits */
    }
    return 0;
}

static int parse_bitmap_l1(BDRVParallels *s, ParallelsBitmap *bm, const uint8_t *l1,
                           Error **errp)
{
    bm->l1 = xmalloc(sizeof(uint64_t) * (bm->l1_size ? bm->l1_size : 1));
    for (uint32_t i = 0; i < bm->l1_size; i++) {
        uint64_t e = ld_le64(l1 + 8 * i);
        /* Cluster entries count sectors, as QEMU and Virtuozzo write them. */
        if (e > 1 && e > UINT64_MAX / BDRV_SECTOR_SIZE) {
            error_setg(errp, "dirty bitmap L1 entry %u (%llu) is out of range", i,
                       (unsigned long long)e);
            return -1;
        }
        bm->l1[i] = e > 1 ? e * BDRV_SECTOR_SIZE : e;
        const char *problem = e > 1 ? ext_cluster_problem(s, bm->l1[i]) : NULL;
        if (problem) {
            error_setg(errp, "dirty bitmap L1 entry %u points to offset %llu, %s", i,
                       (unsigned long long)bm->l1[i], problem);
            return -1;
        }
    }
    return 0;
}

static int parse_bitmap(BlockImage *img, const uint8_t *d, uint32_t size, uint64_t flags,
                        ParallelsBitmap *bm, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint64_t disk_sectors = img->size / BDRV_SECTOR_SIZE;
    memset(bm, 0, sizeof(*bm));
    if (size < BITMAP_FIXED_SIZE) {
        error_setg(errp, "dirty bitmap feature of %u bytes is too short", size);
        return -1;
    }
    uint64_t bm_sectors = ld_le64(d);
    memcpy(bm->id, d + 8, 16);
    uuid_to_name(bm->id, bm->name);
    bm->flags = flags;
    bm->granularity = ld_le32(d + 24);
    bm->l1_size = ld_le32(d + 28);
    if (bm_sectors != disk_sectors) {
        error_setg(errp, "dirty bitmap %s covers %llu sectors, the disk has %llu", bm->name,
                   (unsigned long long)bm_sectors, (unsigned long long)disk_sectors);
        return -1;
    }
    if (!is_power_of_2(bm->granularity)) {
        error_setg(errp, "dirty bitmap %s: granularity of %u sectors is not a power of 2",
                   bm->name, bm->granularity);
        return -1;
    }
    bm->nbits = (disk_sectors + bm->granularity - 1) / bm->granularity;
    if (bitmap_bytes(bm) > MAX_BITMAP_BYTES) {
        error_setg(errp, "dirty bitmap %s needs %llu bytes, more than we hold in memory",
                   bm->name, (unsigned long long)bitmap_bytes(bm));
        return -1;
    }
    if (bm->l1_size != l1_entries_for(s, bitmap_bytes(bm)) ||
        (uint64_t)bm->l1_size * 8 > size - BITMAP_FIXED_SIZE) {
        error_setg(errp, "dirty bitmap %s: L1 table of %u entries does not match its size",
                   bm->name, bm->l1_size);
        return -1;
    }
    if (parse_bitmap_l1(s, bm, d + BITMAP_FIXED_SIZE, errp) < 0 ||
        read_bitmap_bits(img, bm, errp) < 0) {
        return -1;
    }
    return 0;
}

/* A feature that failed to load: refuse writing if it was NECESSARY, else drop it. */
static int feature_failed(BlockImage *img, uint64_t flags, bool writable, Error *why,
                          Error **errp)
{
    BDRVParallels *s = img->opaque;
    if (flags & PARALLELS_FEAT_NECESSARY) {
        s->ext_frozen = true;
        if (writable) {
            error_setg(errp, "necessary parallels extension feature cannot be loaded (%s); "
                       "the image can only be opened read-only", error_get_pretty(why));
            error_free(why);
            return -1;
        }
    } else {
        s->ext_changed = true;
    }
    error_free(why);
    return 0;
}

static int load_feature(BlockImage *img, uint64_t magic, uint64_t flags, const uint8_t *d,
                        uint32_t size, bool writable, Error **errp)
{
    BDRVParallels *s = img->opaque;
    Error *why = NULL;
    if (magic == PARALLELS_FEAT_BITMAP) {
        ParallelsBitmap bm;
        /* A bitmap not written back by a clean close misses writes: unusable. */
        if (s->inuse_at_open != PARALLELS_INUSE_CLOSED) {
            error_setg(&why, "dirty bitmap is stale: the image was not closed cleanly");
            return feature_failed(img, flags, writable, why, errp);
        }
        if (parse_bitmap(img, d, size, flags, &bm, &why) < 0) {
            free_bitmap(&bm);
            return feature_failed(img, flags, writable, why, errp);
        }
        s->bitmaps = xrealloc(s->bitmaps, sizeof(*s->bitmaps) * (s->nb_bitmaps + 1));
        s->bitmaps[s->nb_bitmaps++] = bm;
        return 0;
    }
    if (flags & PARALLELS_FEAT_TRANSIT) {
        s->opaque = xrealloc(s->opaque, sizeof(*s->opaque) * (s->nb_opaque + 1));
        uint8_t *copy = xmalloc(size + 1);
        memcpy(copy, d, size);
        s->opaque[s->nb_opaque++] = (ParallelsOpaqueFeature) { magic, flags, size, copy };
        return 0;
    }
    error_setg(&why, "unknown feature 0x%016llx", (unsigned long long)magic);
    return feature_failed(img, flags, writable, why, errp);
}

static int parse_features(BlockImage *img, const uint8_t *c, bool writable, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint64_t pos = EXT_HEADER_SIZE;
    for (;;) {
        if (pos + FEAT_HEADER_SIZE > s->cluster_size) {
            error_setg(errp, "format extension has no end-of-features marker");
            return -1;
        }
        uint64_t magic = ld_le64(c + pos), flags = ld_le64(c + pos + 8);
        uint32_t size = ld_le32(c + pos + 16);
        if (magic == PARALLELS_FEAT_END) {
            return 0;
        }
        if (size > s->cluster_size - pos - FEAT_HEADER_SIZE) {
            error_setg(errp, "format extension feature 0x%016llx: %u bytes of data run "
                       "past the cluster", (unsigned long long)magic, size);
            return -1;
        }
        if (load_feature(img, magic, flags, c + pos + FEAT_HEADER_SIZE, size, writable,
                         errp) < 0) {
            return -1;
        }
        pos += FEAT_HEADER_SIZE + ROUND_UP((uint64_t)size, 8);
    }
}

static int read_extension(BlockImage *img, bool writable, Error **errp)
{
    BDRVParallels *s = img->opaque;
    const char *problem = ext_cluster_problem(s, s->ext_off);
    if (problem) {
        error_setg(errp, "format extension offset %llu is %s",
                   (unsigned long long)s->ext_off, problem);
        return -1;
    }
    uint8_t *c = blk_alloc_aligned(s->cluster_size);
    int ret = bfile_pread(&img->file, s->ext_off, c, s->cluster_size, errp);
    uint8_t md5[16];
    if (ret == 0 && ld_le64(c) != PARALLELS_EXT_MAGIC) {
        error_setg(errp, "format extension has bad magic 0x%016llx",
                   (unsigned long long)ld_le64(c));
        ret = -1;
    }
    if (ret == 0) {
        ext_md5(c, s->cluster_size, md5);
        if (memcmp(md5, c + 8, 16)) {
            error_setg(errp, "format extension MD5 checksum mismatch");
            ret = -1;
        }
    }
    if (ret == 0) {
        ret = parse_features(img, c, writable, errp);
    }
    free(c);
    return ret;
}

int parallels_ext_load(BlockImage *img, bool writable, Error **errp)
{
    BDRVParallels *s = img->opaque;
    Error *err = NULL;
    if (read_extension(img, writable, &err) == 0) {
        return 0;
    }
    parallels_ext_free(s);
    if (!(img->flags & BLK_O_CHECK)) {
        error_propagate(errp, err);
        return -1;
    }
    /* check reports it and, when repairing, drops the extension. */
    s->ext_bad = true;
    s->ext_problem = xstrdup(error_get_pretty(err));
    error_free(err);
    return 0;
}

uint64_t parallels_ext_end(const BDRVParallels *s)
{
    if (!s->ext_off || s->ext_bad) {
        return 0;
    }
    uint64_t end = s->ext_off + s->cluster_size;
    for (int i = 0; i < s->nb_bitmaps; i++) {
        for (uint32_t j = 0; j < s->bitmaps[i].l1_size; j++) {
            if (s->bitmaps[i].l1[j] > 1) {
                end = MAX(end, s->bitmaps[i].l1[j] + s->cluster_size);
            }
        }
    }
    return end;
}

void parallels_ext_info(BDRVParallels *s, BlockFormatInfo *info)
{
    info->has_bitmaps = s->nb_bitmaps > 0;
    info->nb_bitmaps = s->nb_bitmaps;
    info->bitmaps = xzalloc(sizeof(*info->bitmaps) * (s->nb_bitmaps + 1));
    for (int i = 0; i < s->nb_bitmaps; i++) {
        info->bitmaps[i].name = xstrdup(s->bitmaps[i].name);
        info->bitmaps[i].granularity = s->bitmaps[i].granularity * BDRV_SECTOR_SIZE;
        info->bitmaps[i].autoflag = true;     /* parallels bitmaps always track */
    }
}

/* ---- Tracking writes ---- */

static void mark_range(ParallelsBitmap *bm, uint64_t off, uint64_t len)
{
    uint64_t gran = (uint64_t)bm->granularity * BDRV_SECTOR_SIZE;
    uint64_t last = MIN((off + len - 1) / gran, bm->nbits - 1);
    for (uint64_t bit = off / gran; bit <= last; bit++) {
        bm->bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
    }
}

void parallels_bitmaps_mark(BDRVParallels *s, uint64_t off, uint64_t len)
{
    if (!len) {
        return;
    }
    for (int i = 0; i < s->nb_bitmaps; i++) {
        mark_range(&s->bitmaps[i], off, len);
        s->ext_changed = true;
    }
}

/* ---- Storing ---- */

static bool all_ones(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0xff) {
            return false;
        }
    }
    return true;
}

/* Write one cluster's worth of bits, choosing 0, 1 or a data cluster for it. */
static int store_bitmap_chunk(BlockImage *img, ParallelsBitmap *bm, uint32_t i, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint64_t at = (uint64_t)i * s->cluster_size;
    size_t n = (size_t)MIN((uint64_t)s->cluster_size, bitmap_bytes(bm) - at);
    const uint8_t *chunk = bm->bits + at;
    if (bm->l1[i] <= 1) {
        if (buffer_is_zero(chunk, n)) {
            bm->l1[i] = 0;
            return 0;
        }
        if (n == s->cluster_size && all_ones(chunk, n)) {
            bm->l1[i] = 1;
            return 0;
        }
        bm->l1[i] = parallels_alloc_cluster(img, errp);
        if (!bm->l1[i]) {
            return -1;
        }
    }
    uint8_t *buf = blk_alloc_aligned(s->cluster_size);
    memcpy(buf, chunk, n);
    int ret = bfile_pwrite(&img->file, bm->l1[i], buf, s->cluster_size, errp);
    free(buf);
    return ret;
}

static bool append_feature(uint8_t *c, uint64_t *pos, uint32_t cluster_size, uint64_t magic,
                           uint64_t flags, const uint8_t *data, uint32_t size)
{
    if (*pos + FEAT_HEADER_SIZE + ROUND_UP((uint64_t)size, 8) + FEAT_HEADER_SIZE >
        cluster_size) {
        return false;       /* leave room for the end-of-features marker */
    }
    st_le64(c + *pos, magic);
    st_le64(c + *pos + 8, flags);
    st_le32(c + *pos + 16, size);
    memcpy(c + *pos + FEAT_HEADER_SIZE, data, size);
    *pos += FEAT_HEADER_SIZE + ROUND_UP((uint64_t)size, 8);
    return true;
}

static bool append_bitmap(BDRVParallels *s, uint8_t *c, uint64_t *pos,
                          const ParallelsBitmap *bm, uint64_t disk_sectors)
{
    uint32_t size = BITMAP_FIXED_SIZE + 8 * bm->l1_size;
    uint8_t *d = xzalloc(size);
    st_le64(d, disk_sectors);
    memcpy(d + 8, bm->id, 16);
    st_le32(d + 24, bm->granularity);
    st_le32(d + 28, bm->l1_size);
    for (uint32_t j = 0; j < bm->l1_size; j++) {
        st_le64(d + BITMAP_FIXED_SIZE + 8 * j,
                bm->l1[j] > 1 ? bm->l1[j] / BDRV_SECTOR_SIZE : bm->l1[j]);
    }
    bool ok = append_feature(c, pos, s->cluster_size, PARALLELS_FEAT_BITMAP, bm->flags, d, size);
    free(d);
    return ok;
}

static int build_extension(BlockImage *img, uint8_t *c, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint64_t pos = EXT_HEADER_SIZE;
    st_le64(c, PARALLELS_EXT_MAGIC);
    for (int i = 0; i < s->nb_bitmaps; i++) {
        if (!append_bitmap(s, c, &pos, &s->bitmaps[i], img->size / BDRV_SECTOR_SIZE)) {
            error_setg(errp, "dirty bitmaps do not fit in the format extension cluster");
            return -1;
        }
    }
    for (int i = 0; i < s->nb_opaque; i++) {
        const ParallelsOpaqueFeature *f = &s->opaque[i];
        if (!append_feature(c, &pos, s->cluster_size, f->magic, f->flags, f->data, f->size)) {
            error_setg(errp, "preserved features do not fit in the format extension cluster");
            return -1;
        }
    }
    ext_md5(c, s->cluster_size, c + 8);
    return 0;
}

int parallels_ext_store(BlockImage *img, Error **errp)
{
    BDRVParallels *s = img->opaque;
    if (!s->ext_changed || s->ext_frozen || s->ext_bad) {
        return 0;
    }
    for (int i = 0; i < s->nb_bitmaps; i++) {
        for (uint32_t j = 0; j < s->bitmaps[i].l1_size; j++) {
            if (store_bitmap_chunk(img, &s->bitmaps[i], j, errp) < 0) {
                return -1;
            }
        }
    }
    if (!s->ext_off) {
        s->ext_off = parallels_alloc_cluster(img, errp);
        if (!s->ext_off) {
            return -1;
        }
        st_le64(s->header + PH_EXT_OFF, s->ext_off / BDRV_SECTOR_SIZE);
    }
    uint8_t *c = blk_alloc_aligned(s->cluster_size);
    int ret = build_extension(img, c, errp);
    if (ret == 0) {
        ret = bfile_pwrite(&img->file, s->ext_off, c, s->cluster_size, errp);
    }
    free(c);
    if (ret == 0) {
        s->ext_changed = false;
    }
    return ret;
}

/* ---- The bitmap API ---- */

static ParallelsBitmap *find_bitmap(BDRVParallels *s, const char *name, Error **errp)
{
    for (int i = 0; i < s->nb_bitmaps; i++) {
        if (!strcasecmp(s->bitmaps[i].name, name)) {
            return &s->bitmaps[i];
        }
    }
    error_setg(errp, "Dirty bitmap '%s' not found", name);
    return NULL;
}

int parallels_bitmap_add(BlockImage *img, const char *name, uint32_t granularity,
                         bool disabled, Error **errp)
{
    BDRVParallels *s = img->opaque;
    ParallelsBitmap bm = { 0 };
    if (!name_to_uuid(name, bm.id)) {
        error_setg(errp, "parallels dirty bitmaps are named by a UUID "
                   "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), not '%s'", name);
        return -1;
    }
    if (disabled) {
        error_setg(errp, "parallels dirty bitmaps cannot be disabled");
        return -1;
    }
    uuid_to_name(bm.id, bm.name);
    Error *ignored = NULL;
    if (find_bitmap(s, bm.name, &ignored)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return -1;
    }
    error_free(ignored);
    granularity = granularity ? granularity : DEFAULT_GRANULARITY;
    if (!is_power_of_2(granularity) || granularity < BDRV_SECTOR_SIZE) {
        error_setg(errp, "Granularity must be a power of 2 of at least 512");
        return -1;
    }
    bm.granularity = granularity / BDRV_SECTOR_SIZE;
    bm.nbits = (img->size / BDRV_SECTOR_SIZE + bm.granularity - 1) / bm.granularity;
    if (bitmap_bytes(&bm) > MAX_BITMAP_BYTES) {
        error_setg(errp, "a bitmap of this granularity would be too large");
        return -1;
    }
    bm.bits = xzalloc(bitmap_bytes(&bm) + 1);
    bm.l1_size = l1_entries_for(s, bitmap_bytes(&bm));
    bm.l1 = xzalloc(sizeof(uint64_t) * (bm.l1_size + 1));
    s->bitmaps = xrealloc(s->bitmaps, sizeof(*s->bitmaps) * (s->nb_bitmaps + 1));
    s->bitmaps[s->nb_bitmaps++] = bm;
    s->ext_changed = true;
    return 0;
}

int parallels_bitmap_remove(BlockImage *img, const char *name, Error **errp)
{
    BDRVParallels *s = img->opaque;
    ParallelsBitmap *bm = find_bitmap(s, name, errp);
    if (!bm) {
        return -1;
    }
    free_bitmap(bm);
    int idx = (int)(bm - s->bitmaps);
    memmove(bm, bm + 1, sizeof(*bm) * (size_t)(s->nb_bitmaps - idx - 1));
    s->nb_bitmaps--;
    s->ext_changed = true;
    return 0;
}

int parallels_bitmap_clear(BlockImage *img, const char *name, Error **errp)
{
    ParallelsBitmap *bm = find_bitmap(img->opaque, name, errp);
    if (!bm) {
        return -1;
    }
    memset(bm->bits, 0, bitmap_bytes(bm));
    ((BDRVParallels *)img->opaque)->ext_changed = true;
    return 0;
}

int parallels_bitmap_or(BlockImage *img, const char *dst, const uint8_t *bits,
                        uint64_t nbits, uint32_t granularity, Error **errp)
{
    ParallelsBitmap *bm = find_bitmap(img->opaque, dst, errp);
    if (!bm) {
        return -1;
    }
    for (uint64_t i = 0; i < nbits; i++) {
        uint64_t off = i * granularity;
        if ((bits[i / 8] >> (i % 8) & 1) && off < img->size) {
            mark_range(bm, off, MIN((uint64_t)granularity, img->size - off));
        }
    }
    ((BDRVParallels *)img->opaque)->ext_changed = true;
    return 0;
}

int parallels_bitmap_get(BlockImage *img, const char *name, uint8_t **bits,
                         uint64_t *nbits, uint32_t *granularity, Error **errp)
{
    ParallelsBitmap *bm = find_bitmap(img->opaque, name, errp);
    if (!bm) {
        return -1;
    }
    *bits = xmalloc(bitmap_bytes(bm) + 1);
    memcpy(*bits, bm->bits, bitmap_bytes(bm));
    *nbits = bm->nbits;
    *granularity = bm->granularity * BDRV_SECTOR_SIZE;
    return 0;
}
