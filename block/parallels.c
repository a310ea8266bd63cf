/*
 * parallels: the Parallels expandable image format.
 *
 * A 64-byte header, a flat Block Allocation Table of 32-bit entries, then
 * the data area of clusters appended in allocation order.  Old images
 * ("WithoutFreeSpace") count BAT offsets in sectors, newer ones
 * ("WithouFreSpacExt") in clusters.  While an image is open for writing the
 * header's in_use field says so, which is how a crash is noticed.
 */
#include "block/parallels.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/osdep.h"

#define PARALLELS_DEFAULT_CLUSTER (1u << 20)
/* Far above anything real, low enough that a cluster fits in a buffer. */
#define PARALLELS_MAX_CLUSTER     (256u << 20)
/* BAT entries we are willing to hold in memory (1 GiB of table). */
#define PARALLELS_MAX_BAT         (1u << 28)

static int parallels_probe(const uint8_t *buf, size_t len)
{
    if (len < PARALLELS_HEADER_SIZE || ld_le32(buf + PH_VERSION) != PARALLELS_VERSION) {
        return 0;
    }
    if (!memcmp(buf, PARALLELS_MAGIC_OLD, 16) || !memcmp(buf, PARALLELS_MAGIC_EXT, 16)) {
        return 100;
    }
    return 0;
}

/* NULL when @off may hold a cluster, else what is wrong with it. */
static const char *cluster_offset_problem(const BDRVParallels *s, uint64_t off)
{
    if (off < s->data_off) {
        return "below the data area";
    }
    if ((off - s->data_off) % s->cluster_size) {
        return "not aligned to a cluster of the data area";
    }
    if (off >= s->file_len) {
        return "past the end of the file";
    }
    return NULL;
}

bool parallels_cluster_offset_ok(const BDRVParallels *s, uint64_t off)
{
    return cluster_offset_problem(s, off) == NULL;
}

bool parallels_bat_uses(const BDRVParallels *s, uint64_t off)
{
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        if (s->bat[i] && parallels_bat_host(s, i) == off) {
            return true;
        }
    }
    return false;
}

/* ---- Header ---- */

static int parse_geometry(BDRVParallels *s, Error **errp)
{
    const uint8_t *h = s->header;
    if (!memcmp(h, PARALLELS_MAGIC_EXT, 16)) {
        s->ext_magic = true;
    } else if (memcmp(h, PARALLELS_MAGIC_OLD, 16)) {
        error_setg(errp, "not a parallels image: bad magic");
        return -1;
    }
    uint32_t version = ld_le32(h + PH_VERSION);
    if (version != PARALLELS_VERSION) {
        error_setg(errp, "unsupported parallels version %u (only 2 exists)", version);
        return -1;
    }
    uint32_t tracks = ld_le32(h + PH_TRACKS);
    if (tracks == 0 || tracks > PARALLELS_MAX_CLUSTER / BDRV_SECTOR_SIZE) {
        error_setg(errp, "invalid parallels cluster size of %u sectors", tracks);
        return -1;
    }
    s->cluster_size = tracks * BDRV_SECTOR_SIZE;
    s->bat_unit = s->ext_magic ? s->cluster_size : BDRV_SECTOR_SIZE;
    s->bat_entries = ld_le32(h + PH_BAT_ENTRIES);
    if (s->bat_entries > PARALLELS_MAX_BAT) {
        error_setg(errp, "parallels BAT of %u entries is too large", s->bat_entries);
        return -1;
    }
    return 0;
}

static int parse_disk_size(BlockImage *img, BDRVParallels *s, Error **errp)
{
    uint64_t sectors = ld_le64(s->header + PH_NB_SECTORS);
    if (!s->ext_magic) {
        sectors &= 0xffffffffu;     /* old images only use the low half */
    }
    uint64_t covered = (uint64_t)s->bat_entries * (s->cluster_size / BDRV_SECTOR_SIZE);
    if (sectors > covered) {
        error_setg(errp, "parallels disk size of %llu sectors exceeds the %u BAT entries "
                   "of %u sectors", (unsigned long long)sectors, s->bat_entries,
                   s->cluster_size / BDRV_SECTOR_SIZE);
        return -1;
    }
    img->size = sectors * BDRV_SECTOR_SIZE;
    return 0;
}

static int parse_layout(BlockImage *img, BDRVParallels *s, Error **errp)
{
    const uint8_t *h = s->header;
    uint64_t bat_end = PARALLELS_HEADER_SIZE + (uint64_t)s->bat_entries * 4;
    if (bat_end > s->file_len) {
        error_setg(errp, "parallels BAT of %u entries extends past the end of the file",
                   s->bat_entries);
        return -1;
    }
    s->inuse_at_open = ld_le32(h + PH_INUSE);
    if (s->inuse_at_open && s->inuse_at_open != PARALLELS_INUSE_OPEN &&
        s->inuse_at_open != PARALLELS_INUSE_CLOSED) {
        error_setg(errp, "invalid parallels in_use marker 0x%08x", s->inuse_at_open);
        return -1;
    }
    uint32_t data_off = ld_le32(h + PH_DATA_OFF);
    if (data_off == 0 && s->ext_magic) {
        error_setg(errp, "parallels data_off is zero, which WithouFreSpacExt forbids");
        return -1;
    }
    s->data_off = data_off ? (uint64_t)data_off * BDRV_SECTOR_SIZE
                           : ROUND_UP(bat_end, BDRV_SECTOR_SIZE);
    if (s->ext_magic && s->data_off % s->cluster_size) {
        error_setg(errp, "parallels data_off of %u sectors is not cluster aligned", data_off);
        return -1;
    }
    if (s->data_off < bat_end) {
        error_setg(errp, "parallels data_off of %u sectors overlaps the BAT", data_off);
        return -1;
    }
    if (s->data_off > s->file_len && !(img->flags & BLK_O_CHECK)) {
        error_setg(errp, "parallels data_off of %u sectors is past the end of the file",
                   data_off);
        return -1;
    }
    s->empty_flag = ld_le32(h + PH_FLAGS) & PARALLELS_FLAG_EMPTY;
    uint64_t ext_off = ld_le64(h + PH_EXT_OFF);
    if (ext_off > UINT64_MAX / BDRV_SECTOR_SIZE) {
        error_setg(errp, "parallels ext_off %llu is out of range", (unsigned long long)ext_off);
        return -1;
    }
    s->ext_off = ext_off * BDRV_SECTOR_SIZE;
    return 0;
}

static int write_header(BlockImage *img, Error **errp)
{
    BDRVParallels *s = img->opaque;
    return bfile_pwrite(&img->file, 0, s->header, PARALLELS_HEADER_SIZE, errp);
}

/* ---- BAT ---- */

static int load_bat(BlockImage *img, BDRVParallels *s, Error **errp)
{
    size_t bytes = (size_t)s->bat_entries * 4;
    s->bat = xmalloc(bytes ? bytes : 1);
    if (bytes && bfile_pread(&img->file, PARALLELS_HEADER_SIZE, s->bat, bytes, errp) < 0) {
        return -1;
    }
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        s->bat[i] = ld_le32(&s->bat[i]);
    }
    if (s->empty_flag) {
        memset(s->bat, 0, bytes);   /* the image is to be considered clear */
    }
    return 0;
}

static int write_bat_entry(BlockImage *img, uint32_t idx, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint8_t le[4];
    st_le32(le, s->bat[idx]);
    return bfile_pwrite(&img->file, PARALLELS_HEADER_SIZE + (uint64_t)idx * 4, le, 4, errp);
}

typedef struct BatRef {
    uint64_t host;
    uint32_t idx;
} BatRef;

static int cmp_batref(const void *a, const void *b)
{
    const BatRef *x = a, *y = b;
    if (x->host != y->host) {
        return x->host < y->host ? -1 : 1;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Allocated entries sorted by host offset, so duplicates sit side by side. */
static BatRef *sorted_bat(const BDRVParallels *s, uint32_t *n)
{
    BatRef *refs = xmalloc(sizeof(*refs) * (s->bat_entries ? s->bat_entries : 1));
    *n = 0;
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        if (s->bat[i]) {
            refs[(*n)++] = (BatRef) { parallels_bat_host(s, i), i };
        }
    }
    qsort(refs, *n, sizeof(*refs), cmp_batref);
    return refs;
}

static int validate_bat(BDRVParallels *s, Error **errp)
{
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        const char *problem = s->bat[i] ? cluster_offset_problem(s, parallels_bat_host(s, i))
                                        : NULL;
        if (problem) {
            error_setg(errp, "parallels BAT entry %u points to offset %llu, %s", i,
                       (unsigned long long)parallels_bat_host(s, i), problem);
            return -1;
        }
    }
    uint32_t n;
    BatRef *refs = sorted_bat(s, &n);
    for (uint32_t i = 1; i < n; i++) {
        if (refs[i].host == refs[i - 1].host) {
            error_setg(errp, "parallels BAT entries %u and %u both point to offset %llu",
                       refs[i - 1].idx, refs[i].idx, (unsigned long long)refs[i].host);
            free(refs);
            return -1;
        }
    }
    free(refs);
    return 0;
}

/* The end of everything referenced: where the next cluster goes. */
static uint64_t used_end(const BDRVParallels *s)
{
    uint64_t end = s->data_off;
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        uint64_t host = parallels_bat_host(s, i);
        if (s->bat[i] && !cluster_offset_problem(s, host)) {
            end = MAX(end, host + s->cluster_size);
        }
    }
    return MAX(end, parallels_ext_end(s));
}

uint64_t parallels_alloc_cluster(BlockImage *img, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint64_t host = s->data_end;
    if (host < s->file_len &&
        bfile_zero_range(&img->file, host, MIN(s->cluster_size, s->file_len - host), errp) < 0) {
        return 0;
    }
    if (host + s->cluster_size > s->file_len) {
        if (bfile_truncate(&img->file, host + s->cluster_size, errp) < 0) {
            return 0;
        }
        s->file_len = host + s->cluster_size;
    }
    s->data_end = host + s->cluster_size;
    return host;
}

static int allocate_data_cluster(BlockImage *img, uint32_t idx, Error **errp)
{
    BDRVParallels *s = img->opaque;
    if (s->data_end / s->bat_unit > UINT32_MAX) {
        error_setg(errp, "parallels image is full: its BAT cannot address offset %llu",
                   (unsigned long long)s->data_end);
        return -1;
    }
    uint64_t host = parallels_alloc_cluster(img, errp);
    if (!host) {
        return -1;
    }
    s->bat[idx] = (uint32_t)(host / s->bat_unit);
    return 0;
}

/* ---- Open and close ---- */

static int mark_in_use(BlockImage *img, Error **errp)
{
    BDRVParallels *s = img->opaque;
    if (s->empty_flag) {
        /* Make the file say what we already believe: nothing is allocated. */
        void *zeros = xzalloc((size_t)s->bat_entries * 4 + 1);
        int ret = bfile_pwrite(&img->file, PARALLELS_HEADER_SIZE, zeros,
                               (size_t)s->bat_entries * 4, errp);
        free(zeros);
        if (ret < 0) {
            return -1;
        }
        st_le32(s->header + PH_FLAGS, ld_le32(s->header + PH_FLAGS) & ~PARALLELS_FLAG_EMPTY);
        s->empty_flag = false;
    }
    st_le32(s->header + PH_INUSE, PARALLELS_INUSE_OPEN);
    if (write_header(img, errp) < 0) {
        return -1;
    }
    return bfile_flush(&img->file, errp);
}

static void free_state(BDRVParallels *s)
{
    if (s) {
        parallels_ext_free(s);
        free(s->bat);
        free(s);
    }
}

static int open_state(BlockImage *img, BDRVParallels *s, Error **errp)
{
    bool check = img->flags & BLK_O_CHECK;
    int64_t len = bfile_length(&img->file, errp);
    if (len < 0) {
        return -1;
    }
    s->file_len = (uint64_t)len;
    if (s->file_len < PARALLELS_HEADER_SIZE) {
        error_setg(errp, "file is too short for a parallels header");
        return -1;
    }
    if (bfile_pread(&img->file, 0, s->header, PARALLELS_HEADER_SIZE, errp) < 0 ||
        parse_geometry(s, errp) < 0 || parse_disk_size(img, s, errp) < 0 ||
        parse_layout(img, s, errp) < 0 || load_bat(img, s, errp) < 0) {
        return -1;
    }
    if (!check && validate_bat(s, errp) < 0) {
        return -1;
    }
    bool writable = img->flags & BLK_O_RDWR;
    if (s->ext_off && parallels_ext_load(img, writable && !check, errp) < 0) {
        return -1;
    }
    s->data_end = used_end(s);
    if (writable && !check && s->inuse_at_open == PARALLELS_INUSE_OPEN) {
        error_setg(errp, "parallels image was not closed cleanly; repair it with "
                   "'vireo-img check -r all' before writing");
        return -1;
    }
    return writable ? mark_in_use(img, errp) : 0;
}

static int parallels_open(BlockImage *img, Error **errp)
{
    BDRVParallels *s = xzalloc(sizeof(*s));
    img->opaque = s;
    if (open_state(img, s, errp) < 0) {
        free_state(s);
        img->opaque = NULL;
        return -1;
    }
    img->cluster_size = s->cluster_size;
    return 0;
}

static int parallels_close(BlockImage *img, Error **errp)
{
    BDRVParallels *s = img->opaque;
    int ret = 0;
    if (img->flags & BLK_O_RDWR) {
        ret = parallels_ext_store(img, errp);
        if (ret == 0) {
            /* Clean close: we understand the format extension, so say "closed". */
            st_le32(s->header + PH_INUSE, PARALLELS_INUSE_CLOSED);
            ret = write_header(img, errp);
        }
        if (ret == 0) {
            ret = bfile_flush(&img->file, errp);
        }
    }
    free_state(s);
    img->opaque = NULL;
    return ret;
}

/* ---- I/O ---- */

/* Host offset of guest @off's cluster, 0 when unallocated, -1 when the BAT is bad. */
static int64_t lookup(BlockImage *img, uint64_t off, Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint32_t idx = (uint32_t)(off / s->cluster_size);
    if (!s->bat[idx]) {
        return 0;
    }
    uint64_t host = parallels_bat_host(s, idx);
    const char *problem = cluster_offset_problem(s, host);
    if (problem) {
        error_setg(errp, "parallels BAT entry %u points to offset %llu, %s", idx,
                   (unsigned long long)host, problem);
        return -1;
    }
    return (int64_t)host;
}

static int parallels_read(BlockImage *img, uint64_t off, void *buf, size_t len,
                          Error **errp)
{
    BDRVParallels *s = img->opaque;
    uint8_t *p = buf;
    while (len) {
        uint64_t in = off % s->cluster_size;
        size_t n = MIN((uint64_t)len, s->cluster_size - in);
        int64_t host = lookup(img, off, errp);
        if (host < 0) {
            return -1;
        }
        if (!host) {
            memset(p, 0, n);
        } else if (bfile_pread(&img->file, (uint64_t)host + in, p, n, errp) < 0) {
            return -1;
        }
        off += n;
        p += n;
        len -= n;
    }
    return 0;
}

static int parallels_write(BlockImage *img, uint64_t off, const void *buf, size_t len,
                           Error **errp)
{
    BDRVParallels *s = img->opaque;
    const uint8_t *p = buf;
    parallels_bitmaps_mark(s, off, len);
    while (len) {
        uint32_t idx = (uint32_t)(off / s->cluster_size);
        uint64_t in = off % s->cluster_size;
        size_t n = MIN((uint64_t)len, s->cluster_size - in);
        int64_t host = lookup(img, off, errp);
        if (host < 0) {
            return -1;
        }
        bool fresh = host == 0;
        if (fresh) {
            if (allocate_data_cluster(img, idx, errp) < 0) {
                return -1;
            }
            host = (int64_t)parallels_bat_host(s, idx);
        }
        if (bfile_pwrite(&img->file, (uint64_t)host + in, p, n, errp) < 0) {
            return -1;
        }
        /* The BAT points at the cluster only once its data is there. */
        if (fresh && write_bat_entry(img, idx, errp) < 0) {
            return -1;
        }
        off += n;
        p += n;
        len -= n;
    }
    return 0;
}

static int parallels_flush(BlockImage *img, Error **errp)
{
    return bfile_flush(&img->file, errp);
}

static int parallels_block_status(BlockImage *img, uint64_t off, uint64_t len,
                                  BlockStatus *st, Error **errp)
{
    BDRVParallels *s = img->opaque;
    int64_t first = lookup(img, off, errp);
    if (first < 0) {
        return -1;
    }
    uint64_t in = off % s->cluster_size;
    st->kind = first ? BLK_STATUS_DATA : BLK_STATUS_UNALLOCATED;
    st->host_offset = first ? (uint64_t)first + in : 0;
    st->len = MIN(len, s->cluster_size - in);
    /* Extend over following clusters of the same kind (contiguous on the host for data). */
    while (st->len < len) {
        Error *ignored = NULL;
        int64_t host = lookup(img, off + st->len, &ignored);
        if (host < 0) {
            error_free(ignored);
            break;
        }
        bool same = first ? (uint64_t)host == (uint64_t)first + st->len + in : host == 0;
        if (!same) {
            break;
        }
        st->len = MIN(len, st->len + s->cluster_size);
    }
    return 0;
}

static BlockAioPlan parallels_aio_plan(BlockImage *img, BlockAioReq *req)
{
    BDRVParallels *s = img->opaque;
    uint64_t in = req->offset % s->cluster_size;
    if (in + req->len > s->cluster_size) {
        return BLK_PLAN_SYNC;
    }
    uint32_t idx = (uint32_t)(req->offset / s->cluster_size);
    if (!s->bat[idx]) {
        if (req->type != BLK_AIO_READ) {
            return BLK_PLAN_SYNC;       /* allocation happens on the synchronous path */
        }
        for (int i = 0; i < req->iovcnt; i++) {
            memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
        }
        req->ret = 0;
        return BLK_PLAN_DONE;
    }
    uint64_t host = parallels_bat_host(s, idx);
    if (cluster_offset_problem(s, host) || host + in + req->len > s->file_len) {
        return BLK_PLAN_SYNC;           /* errors and short tails, the slow way */
    }
    if (req->type == BLK_AIO_WRITE) {
        parallels_bitmaps_mark(s, req->offset, req->len);
    }
    req->host_offset = host + in;
    return BLK_PLAN_DIRECT;
}

/* ---- Check ---- */

static void report(int fix, const char *fmt, unsigned idx, uint64_t host, const char *what)
{
    fprintf(stderr, fmt, fix ? "Repairing" : "ERROR", idx, (unsigned long long)host, what);
}

static int check_bat_offsets(BlockImage *img, BlockCheckResult *res, int fix, Error **errp)
{
    BDRVParallels *s = img->opaque;
    bool repair = fix & BLK_FIX_ERRORS;
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        const char *problem = s->bat[i] ? cluster_offset_problem(s, parallels_bat_host(s, i))
                                        : NULL;
        if (!problem) {
            continue;
        }
        report(repair, "%s BAT entry %u: offset %llu is %s\n", i,
               parallels_bat_host(s, i), problem);
        res->corruptions++;
        if (repair) {
            s->bat[i] = 0;
            if (write_bat_entry(img, i, errp) < 0) {
                return -1;
            }
            res->corruptions_fixed++;
        }
    }
    return 0;
}

/* Give the later of two entries sharing a cluster its own copy. */
static int split_duplicate(BlockImage *img, uint32_t idx, uint64_t shared, Error **errp)
{
    BDRVParallels *s = img->opaque;
    void *buf = blk_alloc_aligned(s->cluster_size);
    int ret = bfile_pread(&img->file, shared, buf, s->cluster_size, errp);
    if (ret == 0) {
        ret = allocate_data_cluster(img, idx, errp);
    }
    if (ret == 0) {
        ret = bfile_pwrite(&img->file, parallels_bat_host(s, idx), buf, s->cluster_size, errp);
    }
    if (ret == 0) {
        ret = write_bat_entry(img, idx, errp);
    }
    free(buf);
    return ret;
}

static int check_bat_duplicates(BlockImage *img, BlockCheckResult *res, int fix,
                                Error **errp)
{
    BDRVParallels *s = img->opaque;
    bool repair = fix & BLK_FIX_ERRORS;
    uint32_t n;
    BatRef *refs = sorted_bat(s, &n);
    int ret = 0;
    for (uint32_t i = 1; i < n && ret == 0; i++) {
        if (refs[i].host != refs[i - 1].host) {
            continue;
        }
        report(repair, "%s BAT entry %u: offset %llu is %s\n", refs[i].idx, refs[i].host,
               "already used by another entry");
        res->corruptions++;
        if (repair) {
            ret = split_duplicate(img, refs[i].idx, refs[i].host, errp);
            res->corruptions_fixed += ret == 0;
        }
    }
    free(refs);
    return ret;
}

static int check_extension(BlockImage *img, BlockCheckResult *res, int fix, Error **errp)
{
    BDRVParallels *s = img->opaque;
    if (!s->ext_bad) {
        return 0;
    }
    bool repair = fix & BLK_FIX_ERRORS;
    fprintf(stderr, "%s format extension: %s\n", repair ? "Repairing (dropping)" : "ERROR",
            s->ext_problem);
    res->corruptions++;
    if (repair) {
        s->ext_off = 0;
        s->ext_bad = false;
        st_le64(s->header + PH_EXT_OFF, 0);
        if (write_header(img, errp) < 0) {
            return -1;
        }
        res->corruptions_fixed++;
    }
    return 0;
}

static int check_leaks(BlockImage *img, BlockCheckResult *res, int fix, Error **errp)
{
    BDRVParallels *s = img->opaque;
    if (s->file_len <= s->data_end) {
        return 0;
    }
    uint64_t extra = s->file_len - s->data_end;
    uint64_t count = (extra + s->cluster_size - 1) / s->cluster_size;
    fprintf(stderr, "%s space leaked at the end of the image %llu\n",
            fix & BLK_FIX_LEAKS ? "Repairing" : "ERROR", (unsigned long long)extra);
    res->leaks += (int64_t)count;
    if (fix & BLK_FIX_LEAKS) {
        if (bfile_truncate(&img->file, s->data_end, errp) < 0) {
            return -1;
        }
        s->file_len = s->data_end;
        res->leaks_fixed += (int64_t)count;
    }
    return 0;
}

static int parallels_check(BlockImage *img, BlockCheckResult *res, int fix, Error **errp)
{
    BDRVParallels *s = img->opaque;
    if (s->inuse_at_open == PARALLELS_INUSE_OPEN) {
        bool repair = (fix & BLK_FIX_ERRORS) && (img->flags & BLK_O_RDWR);
        fprintf(stderr, "%s image was not closed correctly\n", repair ? "Repairing" : "ERROR");
        res->corruptions++;
        if (repair) {
            s->inuse_at_open = PARALLELS_INUSE_CLOSED;   /* close() records it */
            res->corruptions_fixed++;
        }
    }
    if (check_bat_offsets(img, res, fix, errp) < 0 ||
        check_bat_duplicates(img, res, fix, errp) < 0 ||
        check_extension(img, res, fix, errp) < 0) {
        res->check_errors++;
        return -1;
    }
    s->data_end = MAX(s->data_end, used_end(s));
    if (check_leaks(img, res, fix, errp) < 0) {
        res->check_errors++;
        return -1;
    }
    res->total_clusters = s->bat_entries;
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        res->allocated_clusters += s->bat[i] != 0;
    }
    res->image_end_offset = s->data_end;
    return 0;
}

/* ---- Create ---- */

static int write_new_image(int fd, const uint8_t *header, uint32_t bat_entries,
                           uint64_t data_off, const char *filename, Error **errp)
{
    BlockFile f = { .fd = fd, .writable = true };
    size_t bat_bytes = (size_t)bat_entries * 4;
    uint8_t *zeros = xzalloc(bat_bytes + 1);
    int ret = bfile_truncate(&f, 0, errp);
    if (ret == 0) {
        ret = bfile_pwrite(&f, 0, header, PARALLELS_HEADER_SIZE, errp);
    }
    if (ret == 0 && bat_bytes) {
        ret = bfile_pwrite(&f, PARALLELS_HEADER_SIZE, zeros, bat_bytes, errp);
    }
    if (ret == 0) {
        ret = bfile_truncate(&f, data_off, errp);
    }
    free(zeros);
    if (ret < 0) {
        error_prepend(errp, "cannot write '%s': ", filename);
    }
    return ret;
}

static int parallels_create(const char *filename, const BlockCreateOptions *opts,
                            Error **errp)
{
    if (opts->backing_file) {
        error_setg(errp, "parallels images cannot have a backing file");
        return -1;
    }
    if (opts->preallocation != BLK_PREALLOC_OFF) {
        error_setg(errp, "parallels images support only preallocation=off");
        return -1;
    }
    uint64_t cs = ROUND_UP((uint64_t)(opts->cluster_size ? opts->cluster_size
                                                         : PARALLELS_DEFAULT_CLUSTER),
                           BDRV_SECTOR_SIZE);
    if (cs > PARALLELS_MAX_CLUSTER) {
        error_setg(errp, "Cluster size is too large (at most %u bytes)", PARALLELS_MAX_CLUSTER);
        return -1;
    }
    uint64_t tracks = cs / BDRV_SECTOR_SIZE;
    uint64_t sectors = opts->size / BDRV_SECTOR_SIZE + (opts->size % BDRV_SECTOR_SIZE != 0);
    uint64_t bat_entries = (sectors + tracks - 1) / tracks;
    if (bat_entries > PARALLELS_MAX_BAT) {
        error_setg(errp, "Image size is too large for this cluster size");
        return -1;
    }
    uint64_t data_off = ROUND_UP(PARALLELS_HEADER_SIZE + bat_entries * 4, cs);
    uint8_t h[PARALLELS_HEADER_SIZE] = { 0 };
    memcpy(h, PARALLELS_MAGIC_EXT, 16);
    st_le32(h + PH_VERSION, PARALLELS_VERSION);
    st_le32(h + PH_HEADS, 16);
    st_le32(h + PH_CYLINDERS, (uint32_t)MIN(sectors / (16 * 32), (uint64_t)UINT32_MAX));
    st_le32(h + PH_TRACKS, (uint32_t)tracks);
    st_le32(h + PH_BAT_ENTRIES, (uint32_t)bat_entries);
    st_le64(h + PH_NB_SECTORS, sectors);
    st_le32(h + PH_DATA_OFF, (uint32_t)(data_off / BDRV_SECTOR_SIZE));
    int fd = vireo_open(filename, O_RDWR | O_CREAT | O_TRUNC, 0644, errp);
    if (fd < 0) {
        return -1;
    }
    bfile_set_nocow(fd, opts->nocow);
    bfile_set_extent_size_hint(fd, opts->extent_size_hint);
    int ret = write_new_image(fd, h, (uint32_t)bat_entries, data_off, filename, errp);
    close(fd);
    return ret;
}

static int parallels_get_info(BlockImage *img, BlockFormatInfo *info, Error **errp)
{
    BDRVParallels *s = img->opaque;
    info->type = "parallels";
    info->dirty = s->inuse_at_open == PARALLELS_INUSE_OPEN;
    parallels_ext_info(s, info);
    return 0;
}

const BlockDriver blk_driver_parallels = {
    .name = "parallels",
    .probe = parallels_probe,
    .open = parallels_open,
    .close = parallels_close,
    .create = parallels_create,
    .read = parallels_read,
    .write = parallels_write,
    .flush = parallels_flush,
    .block_status = parallels_block_status,
    .check = parallels_check,
    .get_info = parallels_get_info,
    .aio_plan = parallels_aio_plan,
    .bitmap_add = parallels_bitmap_add,
    .bitmap_remove = parallels_bitmap_remove,
    .bitmap_clear = parallels_bitmap_clear,
    .bitmap_or = parallels_bitmap_or,
    .bitmap_get = parallels_bitmap_get,
};
