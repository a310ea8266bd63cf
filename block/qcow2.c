/*
 * qcow2: header, header extensions, open/close, info, resize.
 * Cluster mapping lives in qcow2-cluster.c, refcounts in qcow2-refcount.c,
 * making a new image in qcow2-create.c.
 */
#include "block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/crypto-luks.h"
#include "util/osdep.h"

#define L2_CACHE_TABLES 64
#define RB_CACHE_BLOCKS 16

static const struct { uint8_t type, bit; const char *name; } feature_names[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

static int qcow2_probe(const uint8_t *buf, size_t len)
{
    return len >= 8 && ld_be32(buf) == QCOW2_MAGIC &&
           (ld_be32(buf + 4) == 2 || ld_be32(buf + 4) == 3) ? 100 : 0;
}

static int write_header_unchecked(BlockImage *img, Error **errp);

bool qcow2_offset_ok(BlockImage *img, uint64_t off, uint64_t len)
{
    /* Host offsets are 56-bit in qcow2 and must fit an off_t. */
    return range_within(off, len, (uint64_t)1 << 56);
}

void qcow2_signal_corruption(BlockImage *img, Error **errp, const char *fmt, ...)
{
    BDRVQcow2 *s = img->opaque;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Mark the image so nobody writes to it again before a repair. */
    if ((img->flags & BLK_O_RDWR) && !(img->flags & BLK_O_CHECK) && !s->corrupt_marked) {
        fprintf(stderr, "qcow2: Marking image as corrupt: %s; further corruption events "
                "will be suppressed\n", msg);
        s->corrupt_marked = true;
        s->incompat |= QCOW2_INCOMPAT_CORRUPT;
        /* Version 2 headers have no feature bits: the image only turns read-only here. */
        if (s->version >= 3) {
            write_header_unchecked(img, NULL);
        }
        img->flags &= ~BLK_O_RDWR;
    }
    error_setg(errp, "qcow2: image '%s' is corrupt: %s", img->filename, msg);
}

/* ---- header ---- */

static size_t put_ext(uint8_t *buf, size_t pos, size_t cap, uint32_t type,
                      const void *data, uint32_t len)
{
    size_t need = 8 + ROUND_UP((size_t)len, 8);
    if (pos + need > cap) {
        return SIZE_MAX;
    }
    st_be32(buf + pos, type);
    st_be32(buf + pos + 4, len);
    memcpy(buf + pos + 8, data, len);
    memset(buf + pos + 8 + len, 0, need - 8 - len);
    return pos + need;
}

static size_t put_feature_table(uint8_t *buf, size_t pos, size_t cap)
{
    uint8_t table[ARRAY_SIZE(feature_names) * 48];
    memset(table, 0, sizeof(table));
    for (size_t i = 0; i < ARRAY_SIZE(feature_names); i++) {
        table[i * 48] = feature_names[i].type;
        table[i * 48 + 1] = feature_names[i].bit;
        memcpy(table + i * 48 + 2, feature_names[i].name, strlen(feature_names[i].name));
    }
    return put_ext(buf, pos, cap, QCOW2_EXT_FEATURE_TABLE, table, sizeof(table));
}

static size_t put_bitmaps_ext(BDRVQcow2 *s, uint8_t *buf, size_t pos, size_t cap)
{
    uint8_t ext[24];
    st_be32(ext, (uint32_t)s->nb_bitmaps);
    st_be32(ext + 4, 0);
    st_be64(ext + 8, s->bitmap_dir_size);
    st_be64(ext + 16, s->bitmap_dir_offset);
    return put_ext(buf, pos, cap, QCOW2_EXT_BITMAPS, ext, sizeof(ext));
}

/*
 * Lay out cluster 0 in @buf: header, extensions, backing file name.  Returns
 * the bytes used, or SIZE_MAX when they do not fit in the cluster.
 */
static size_t build_header(BlockImage *img, uint8_t *buf, bool feature_table)
{
    BDRVQcow2 *s = img->opaque;
    size_t cap = s->cluster_size;
    memset(buf, 0, cap);
    size_t hlen = s->version >= 3 ? s->header_length : QCOW2_V2_HEADER_LEN;
    st_be32(buf, QCOW2_MAGIC);
    st_be32(buf + 4, (uint32_t)s->version);
    st_be32(buf + 20, (uint32_t)s->cluster_bits);
    st_be64(buf + 24, img->size);
    st_be32(buf + 36, s->l1_size);
    st_be64(buf + 40, s->l1_offset);
    st_be64(buf + 48, s->reftable_offset);
    st_be32(buf + 56, s->reftable_clusters);
    st_be32(buf + 60, (uint32_t)s->nb_snapshots);
    st_be64(buf + 64, s->snapshots_offset);
    if (s->version >= 3) {
        uint64_t autoclear = s->autoclear & ~QCOW2_AUTOCLEAR_BITMAPS;
        if (s->bitmaps_ext && s->nb_bitmaps) {
            autoclear |= QCOW2_AUTOCLEAR_BITMAPS;
        }
        st_be64(buf + 72, s->incompat);
        st_be64(buf + 80, s->compat);
        st_be64(buf + 88, autoclear);
        st_be32(buf + 96, (uint32_t)s->refcount_order);
        st_be32(buf + 100, s->header_length);
        if (s->header_length > 104) {
            buf[104] = (uint8_t)s->compression_type;
        }
    }
    size_t pos = hlen;
    if (img->backing_fmt) {
        pos = put_ext(buf, pos, cap, QCOW2_EXT_BACKING_FORMAT, img->backing_fmt,
                      (uint32_t)strlen(img->backing_fmt));
    }
    if (pos != SIZE_MAX && s->data_file_name) {
        pos = put_ext(buf, pos, cap, QCOW2_EXT_DATA_FILE, s->data_file_name,
                      (uint32_t)strlen(s->data_file_name));
    }
    if (pos != SIZE_MAX && s->version >= 3 && feature_table) {
        pos = put_feature_table(buf, pos, cap);
    }
    if (pos != SIZE_MAX && s->bitmaps_ext && s->nb_bitmaps && s->version >= 3) {
        pos = put_bitmaps_ext(s, buf, pos, cap);
    }
    for (int i = 0; pos != SIZE_MAX && i < s->nb_unknown_exts; i++) {
        pos = put_ext(buf, pos, cap, s->unknown_exts[i].type, s->unknown_exts[i].data,
                      s->unknown_exts[i].len);
    }
    if (pos != SIZE_MAX && pos + 8 <= cap) {
        memset(buf + pos, 0, 8);       /* end of extensions */
        pos += 8;
    } else {
        pos = SIZE_MAX;
    }
    if (pos != SIZE_MAX && img->backing_name) {
        size_t blen = strlen(img->backing_name);
        if (pos + blen > cap) {
            pos = SIZE_MAX;
        } else {
            st_be64(buf + 8, pos);
            st_be32(buf + 16, (uint32_t)blen);
            memcpy(buf + pos, img->backing_name, blen);
            pos += blen;
        }
    }
    return pos;
}

/* Rewrite cluster 0 (marking the image corrupt must work even when a check failed). */
static int write_header_unchecked(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t cap = s->cluster_size;
    uint8_t *buf = blk_alloc_aligned(cap);
    size_t pos = build_header(img, buf, true);
    if (pos == SIZE_MAX) {
        /* The feature name table is optional: small clusters go without it, as with qemu. */
        pos = build_header(img, buf, false);
    }
    if (pos == SIZE_MAX) {
        error_setg(errp, "qcow2 header and extensions do not fit in one cluster");
        free(buf);
        return -1;
    }
    int ret = bfile_pwrite(&img->file, 0, buf, ROUND_UP(pos, BLK_DIRECT_ALIGN) > cap
                           ? cap : ROUND_UP(pos, BLK_DIRECT_ALIGN), errp);
    free(buf);
    if (ret == 0) {
        s->header_dirty = false;
    }
    return ret;
}

int qcow2_write_header(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (qcow2_overlap_check(img, QCOW2_OL_HEADER, 0, s->cluster_size, errp) < 0) {
        return -1;
    }
    return write_header_unchecked(img, errp);
}

static int read_unknown_ext(BDRVQcow2 *s, uint32_t type, const uint8_t *data, uint32_t len)
{
    s->unknown_exts = xrealloc(s->unknown_exts,
                               sizeof(*s->unknown_exts) * (size_t)(s->nb_unknown_exts + 1));
    Qcow2UnknownExt *e = &s->unknown_exts[s->nb_unknown_exts++];
    e->type = type;
    e->len = len;
    e->data = xmalloc(len);
    memcpy(e->data, data, len);
    return 0;
}

/*
 * Refuse incompatible feature bits this driver does not know, naming each
 * from the image's own feature name table when it has one (48-byte entries:
 * type, bit, name; a zero name ends the table early), then the bits no
 * entry names as a hex mask, the way qemu-img words it.
 */
static int refuse_unknown_features(BDRVQcow2 *s, const uint8_t *table, size_t len,
                                   Error **errp)
{
    uint64_t unknown = s->incompat & ~QCOW2_INCOMPAT_KNOWN;
    if (!unknown) {
        return 0;
    }
    enum { ENTRY = 48, NAME = 46 };
    char msg[1024] = "";
    size_t used = 0;
    for (size_t pos = 0; table && pos < len; pos += ENTRY) {
        uint8_t entry[ENTRY] = { 0 };     /* a short last entry reads as zero-padded */
        memcpy(entry, table + pos, MIN((size_t)ENTRY, len - pos));
        if (!entry[2]) {
            break;
        }
        if (entry[0] != 0 || entry[1] > 63 || !(unknown & (1ull << entry[1]))) {
            continue;
        }
        unknown &= ~(1ull << entry[1]);
        used += (size_t)snprintf(msg + used, sizeof(msg) - MIN(used, sizeof(msg)), "%s%.*s",
                                 used ? ", " : "", NAME, (const char *)entry + 2);
        used = MIN(used, sizeof(msg) - 1);
    }
    if (unknown) {
        snprintf(msg + used, sizeof(msg) - used, "%sUnknown incompatible feature: %" PRIx64,
                 used ? ", " : "", unknown);
    }
    error_setg(errp, "Unsupported qcow2 feature(s): %s", msg);
    return -1;
}

/*
 * Autoclear bits promise that whoever writes to the image without knowing
 * the feature clears the bit, so the feature's data is known to be stale.
 */
static int clear_unknown_autoclear(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t known = QCOW2_AUTOCLEAR_BITMAPS | QCOW2_AUTOCLEAR_DATA_RAW;
    if (s->version < 3 || !(s->autoclear & ~known)) {
        return 0;
    }
    s->autoclear &= known;
    return qcow2_write_header(img, errp);
}

static int read_extensions(BlockImage *img, const uint8_t *hdr, size_t start, size_t end,
                           Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t pos = start;
    while (pos + 8 <= end) {
        uint32_t type = ld_be32(hdr + pos);
        uint32_t len = ld_be32(hdr + pos + 4);
        pos += 8;
        if (type == QCOW2_EXT_END) {
            return 0;
        }
        if (len > end - pos) {
            error_setg(errp, "qcow2 header extension 0x%08x (%u bytes) runs past the "
                       "header cluster", type, len);
            return -1;
        }
        const uint8_t *data = hdr + pos;
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            free(img->backing_fmt);
            img->backing_fmt = strndup((const char *)data, len);
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            /* Only read to name unknown features; regenerated on every header write. */
            if (refuse_unknown_features(s, data, len, errp) < 0) {
                return -1;
            }
            break;
        case QCOW2_EXT_DATA_FILE:
            /* A path, opened with open(2): refuse what no sane writer makes. */
            if (len > QCOW2_MAX_DATA_FILE_NAME || len == 0 || memchr(data, 0, len)) {
                error_setg(errp, "qcow2 data file name extension (%u bytes) is invalid "
                           "(empty, longer than %d bytes or containing NUL)", len,
                           QCOW2_MAX_DATA_FILE_NAME);
                return -1;
            }
            free(s->data_file_name);
            s->data_file_name = strndup((const char *)data, len);
            break;
        case QCOW2_EXT_BITMAPS:
            if (s->version < 3) {
                break;
            }
            if (qcow2_read_bitmaps(img, data, len, errp) < 0) {
                return -1;
            }
            break;
        default:
            read_unknown_ext(s, type, data, len);
            break;
        }
        pos += ROUND_UP((size_t)len, 8);
    }
    return 0;
}

static int parse_v3_fields(BlockImage *img, const uint8_t *hdr, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    s->incompat = ld_be64(hdr + 72);
    s->compat = ld_be64(hdr + 80);
    s->autoclear = ld_be64(hdr + 88);
    uint32_t order = ld_be32(hdr + 96);
    s->refcount_order = order > 6 ? 7 : (int)order;   /* rejected below */
    s->header_length = ld_be32(hdr + 100);
    if (s->header_length < QCOW2_V3_HEADER_LEN || s->header_length > s->cluster_size ||
        (s->header_length & 7)) {
        error_setg(errp, "qcow2 header length %u is invalid", s->header_length);
        return -1;
    }
    if (s->header_length > 104) {
        s->compression_type = hdr[104];
    }
    if (s->compression_type > QCOW2_COMPRESSION_ZSTD) {
        error_setg(errp, "qcow2 compression type %d is unknown", s->compression_type);
        return -1;
    }
    if ((s->compression_type != 0) != !!(s->incompat & QCOW2_INCOMPAT_COMPRESSION)) {
        error_setg(errp, "qcow2 compression type field and feature bit disagree");
        return -1;
    }
    if (s->refcount_order > 6) {
        error_setg(errp, "qcow2 refcount width 2^%d bits is invalid", s->refcount_order);
        return -1;
    }
    if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && (img->flags & BLK_O_RDWR) &&
        !(img->flags & BLK_O_CHECK)) {
        /* qemu-img's words; check -r all repairs the image and clears the bit. */
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened read/write");
        return -1;
    }
    return 0;
}

static int parse_header(BlockImage *img, const uint8_t *hdr, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (ld_be32(hdr) != QCOW2_MAGIC) {
        error_setg(errp, "'%s' is not a qcow2 image", img->filename);
        return -1;
    }
    s->version = (int)ld_be32(hdr + 4);
    if (s->version != 2 && s->version != 3) {
        error_setg(errp, "Unsupported qcow2 version %d", s->version);
        return -1;
    }
    s->cluster_bits = (int)ld_be32(hdr + 20);
    if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS || s->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "qcow2 cluster size 2^%d is out of range (2^9 to 2^21)",
                   s->cluster_bits);
        return -1;
    }
    s->cluster_size = 1u << s->cluster_bits;
    img->cluster_size = s->cluster_size;
    s->refcount_order = 4;
    s->header_length = QCOW2_V2_HEADER_LEN;
    if (s->version >= 3 && parse_v3_fields(img, hdr, errp) < 0) {
        return -1;
    }
    if (ld_be32(hdr + 32) != 0) {
        error_setg(errp, "qcow2 encryption is not supported");
        return -1;
    }
    s->ext_l2 = s->incompat & QCOW2_INCOMPAT_EXTL2;
    if (s->ext_l2 && s->cluster_bits < QCOW2_EXTL2_MIN_CLUSTER_BITS) {
        error_setg(errp, "qcow2 extended L2 entries need a cluster size of at least "
                   "16384 bytes (image has %u)", s->cluster_size);
        return -1;
    }
    s->l2_entry_size = s->ext_l2 ? 16 : 8;
    s->l2_bits = s->cluster_bits - (s->ext_l2 ? 4 : 3);
    s->l2_entries = (uint64_t)1 << s->l2_bits;
    s->sc_bits = s->ext_l2 ? s->cluster_bits - 5 : s->cluster_bits;
    s->rb_entries = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    s->refcount_max = s->refcount_order == 6 ? UINT64_MAX
                      : (1ull << (1u << s->refcount_order)) - 1;
    img->size = ld_be64(hdr + 24);
    s->l1_size = ld_be32(hdr + 36);
    s->l1_offset = ld_be64(hdr + 40);
    s->reftable_offset = ld_be64(hdr + 48);
    s->reftable_clusters = ld_be32(hdr + 56);
    s->nb_snapshots = (int)MIN(ld_be32(hdr + 60), (uint32_t)INT32_MAX);
    s->snapshots_offset = ld_be64(hdr + 64);

    uint64_t l2_span = s->l2_entries << s->cluster_bits;
    if (img->size > ((uint64_t)1 << 62)) {
        error_setg(errp, "qcow2 virtual size %" PRIu64 " is too large", img->size);
        return -1;
    }
    uint64_t l1_needed = (img->size + l2_span - 1) / l2_span;
    if (l1_needed * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "Image is too big");
        return -1;
    }
    if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "Active L1 table too large (%u entries)", s->l1_size);
        return -1;
    }
    if (s->l1_size < l1_needed) {
        error_setg(errp, "L1 table is too small (%u entries for %" PRIu64 " needed)",
                   s->l1_size, l1_needed);
        return -1;
    }
    if (s->l1_size && ((s->l1_offset & (s->cluster_size - 1)) ||
                       !qcow2_offset_ok(img, s->l1_offset, (uint64_t)s->l1_size * 8))) {
        error_setg(errp, "Invalid L1 table offset 0x%" PRIx64, s->l1_offset);
        return -1;
    }
    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        error_setg(errp, "Too many snapshots (%d)", s->nb_snapshots);
        return -1;
    }
    return 0;
}

static int read_backing_name(BlockImage *img, const uint8_t *hdr, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t off = ld_be64(hdr + 8);
    uint32_t len = ld_be32(hdr + 16);
    if (!off) {
        return 0;
    }
    if (len > QCOW2_MAX_BACKING_NAME || !range_within(off, len, s->cluster_size)) {
        error_setg(errp, "qcow2 backing file name (%u bytes at %" PRIu64 ") is invalid",
                   len, off);
        return -1;
    }
    if (len) {
        img->backing_name = strndup((const char *)hdr + off, len);
    }
    return 0;
}

static int read_l1(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    size_t bytes = (size_t)s->l1_size * 8;
    s->l1 = blk_alloc_aligned(bytes);
    if (bytes && bfile_pread(&img->file, s->l1_offset, s->l1, bytes, errp) < 0) {
        return -1;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1[i] = ld_be64(&s->l1[i]);
    }
    return 0;
}

static void free_state(BDRVQcow2 *s)
{
    qcow2_cache_destroy(&s->l2_cache);
    qcow2_cache_destroy(&s->rb_cache);
    qcow2_free_snapshots(s);
    qcow2_free_bitmaps(s);
    for (int i = 0; i < s->nb_unknown_exts; i++) {
        free(s->unknown_exts[i].data);
    }
    free(s->unknown_exts);
    free(s->l1);
    free(s->reftable);
    free(s->zero_cluster);
    bfile_close(&s->data_file);
    free(s->data_file_name);
    free(s);
}

/*
 * The external data file, when the header says there is one.  Its name is
 * taken relative to the image's directory, as backing file names are, so
 * an image and its data file can move together.
 */
static int open_data_file(BlockImage *img, const char *given, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (!qcow2_has_data_file(s)) {
        /* Without a data file the raw bit means nothing; writers drop it. */
        s->autoclear &= ~QCOW2_AUTOCLEAR_DATA_RAW;
        return 0;
    }
    if (!s->data_file_name && !given) {
        error_setg(errp, "'data-file' is required for this image");
        return -1;
    }
    if (s->nb_snapshots) {
        error_setg(errp, "qcow2 image '%s' has internal snapshots, which images with an "
                   "external data file cannot have", img->filename);
        return -1;
    }
    s->data_raw = s->autoclear & QCOW2_AUTOCLEAR_DATA_RAW;
    /* One named at open is taken as given, as any file name on a command line. */
    char *path = given ? xstrdup(given) : blk_backing_path(img->filename, s->data_file_name);
    int ret = bfile_open(&s->data_file, path, img->flags & BLK_O_RDWR,
                         img->flags & BLK_O_NOCACHE, errp);
    struct stat a, b;
    if (ret < 0) {
        error_prepend(errp, "Could not open data file '%s': ", path);
    } else if (fstat(s->data_file.fd, &a) == 0 && fstat(img->file.fd, &b) == 0 &&
               a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        /* Guest writes would land on the image's own metadata. */
        error_setg(errp, "qcow2 image '%s' names itself as its data file", img->filename);
        ret = -1;
    } else {
        s->data_file.unsafe = img->flags & BLK_O_UNSAFE;
        s->data = &s->data_file;
    }
    free(path);
    return ret;
}

/* An image left dirty by lazy refcounts has stale refcounts: rebuild them. */
static int repair_dirty(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    BlockCheckResult res;
    memset(&res, 0, sizeof(res));
    if (qcow2_check(img, &res, BLK_FIX_LEAKS | BLK_FIX_ERRORS, errp) < 0) {
        return -1;
    }
    if (res.corruptions) {
        error_setg(errp, "qcow2 image '%s' was not closed cleanly and cannot be repaired "
                   "automatically", img->filename);
        return -1;
    }
    s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
    return qcow2_write_header(img, errp);
}

static int qcow2_open(BlockImage *img, Error **errp)
{
    Qcow2OpenOptions oo = { 0 };
    BDRVQcow2 *s = xzalloc(sizeof(*s));
    img->opaque = s;
    s->data_file.fd = -1;
    s->data = &img->file;
    uint8_t *hdr = blk_alloc_aligned(1u << QCOW2_MAX_CLUSTER_BITS);
    int ret = -1;
    if (bfile_pread(&img->file, 0, hdr, QCOW2_V3_HEADER_LEN + 8, errp) < 0 ||
        parse_header(img, hdr, errp) < 0 ||
        bfile_pread(&img->file, 0, hdr, s->cluster_size, errp) < 0) {
        goto out;
    }
    if (qcow2_read_open_options(img, &oo, errp) < 0) {
        goto out;
    }
    qcow2_cache_init(&s->l2_cache, oo.l2_tables ? oo.l2_tables : L2_CACHE_TABLES,
                     s->cluster_size, true);
    qcow2_cache_init(&s->rb_cache, oo.rb_blocks ? oo.rb_blocks : RB_CACHE_BLOCKS,
                     s->cluster_size, false);
    s->zero_cluster = blk_alloc_aligned(s->cluster_size);
    uint64_t bname_off = ld_be64(hdr + 8);
    size_t ext_end = bname_off && bname_off < s->cluster_size ? bname_off : s->cluster_size;
    size_t ext_start = s->version >= 3 ? s->header_length : QCOW2_V2_HEADER_LEN;
    if (read_backing_name(img, hdr, errp) < 0 ||
        read_extensions(img, hdr, ext_start, MAX(ext_end, ext_start), errp) < 0 ||
        refuse_unknown_features(s, NULL, 0, errp) < 0 || read_l1(img, errp) < 0 || qcow2_refcount_init(img, errp) < 0 ||
        qcow2_read_snapshots(img, errp) < 0 || open_data_file(img, oo.data_file, errp) < 0) {
        goto out;
    }
    int64_t flen = bfile_length(&img->file, errp);
    if (flen < 0) {
        goto out;
    }
    s->zeroed_from = ROUND_UP((uint64_t)flen, s->cluster_size);
    s->free_hint = 1;
    if ((img->flags & BLK_O_RDWR) && (s->incompat & QCOW2_INCOMPAT_DIRTY) &&
        !(img->flags & BLK_O_CHECK) && repair_dirty(img, errp) < 0) {
        goto out;
    }
    if ((img->flags & BLK_O_RDWR) && !(img->flags & BLK_O_NO_BITMAPS) &&
        qcow2_bitmaps_open_rw(img, errp) < 0) {
        goto out;
    }
    if ((img->flags & BLK_O_RDWR) && clear_unknown_autoclear(img, errp) < 0) {
        goto out;
    }
    if (blk_open_backing(img, errp) < 0) {
        goto out;
    }
    ret = 0;
out:
    free(hdr);
    free(oo.data_file);
    if (ret < 0) {
        free_state(s);
        img->opaque = NULL;
    }
    return ret;
}

int qcow2_flush_metadata(BlockImage *img, bool sync, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    bool tables = qcow2_cache_has_dirty(&s->l2_cache) || s->l1_dirty || s->header_dirty;
    /* Guest data in the data file must be durable before L2 entries name it. */
    if (sync && tables && s->data != &img->file && bfile_flush(s->data, errp) < 0) {
        return -1;
    }
    if (qcow2_cache_flush(img, &s->rb_cache, errp) < 0) {
        return -1;
    }
    if (tables && sync && bfile_flush(&img->file, errp) < 0) {
        return -1;
    }
    if (qcow2_cache_flush(img, &s->l2_cache, errp) < 0) {
        return -1;
    }
    if (s->l1_dirty && qcow2_write_l1(img, errp) < 0) {
        return -1;
    }
    if (s->header_dirty && qcow2_write_header(img, errp) < 0) {
        return -1;
    }
    if (sync && s->data != &img->file && bfile_flush(s->data, errp) < 0) {
        return -1;
    }
    return sync ? bfile_flush(&img->file, errp) : 0;
}

static int qcow2_flush(BlockImage *img, Error **errp)
{
    return qcow2_flush_metadata(img, true, errp);
}

static int qcow2_close(BlockImage *img, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    int ret = 0;
    if (img->flags & BLK_O_RDWR) {
        if (qcow2_store_bitmaps(img, errp) < 0) {
            ret = -1;
        }
        if (qcow2_flush_metadata(img, true, ret < 0 ? NULL : errp) < 0) {
            ret = -1;
        }
        if (ret == 0 && qcow2_prealloc_trim(img, errp) < 0) {
            ret = -1;
        }
    }
    free_state(s);
    img->opaque = NULL;
    return ret;
}

/* ---- info, resize ---- */

static int qcow2_get_info(BlockImage *img, BlockFormatInfo *info, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    info->type = "qcow2";
    info->compat = s->version;
    info->lazy_refcounts = s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS;
    info->corrupt = s->incompat & QCOW2_INCOMPAT_CORRUPT;
    info->dirty = s->incompat & QCOW2_INCOMPAT_DIRTY;
    info->refcount_bits = 1 << s->refcount_order;
    info->compression_type = s->compression_type;
    info->backing_file = img->backing_name ? xstrdup(img->backing_name) : NULL;
    info->backing_fmt = img->backing_fmt ? xstrdup(img->backing_fmt) : NULL;
    info->extended_l2 = s->ext_l2;
    info->has_data_file = qcow2_has_data_file(s);
    info->data_file = info->has_data_file && s->data_file_name ? xstrdup(s->data_file_name)
                                                                : NULL;
    info->data_file_raw = s->data_raw;
    info->nb_snapshots = s->nb_snapshots;
    info->snapshots = xzalloc(sizeof(BlockSnapshotInfo) * (size_t)(s->nb_snapshots + 1));
    for (int i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        BlockSnapshotInfo *o = &info->snapshots[i];
        o->id = xstrdup(sn->id);
        o->name = xstrdup(sn->name);
        o->vm_state_size = sn->vm_state_size_large ? sn->vm_state_size_large
                                                   : sn->vm_state_size;
        o->date_sec = sn->date_sec;
        o->date_nsec = sn->date_nsec;
        o->vm_clock_nsec = sn->vm_clock_nsec;
        o->icount = sn->icount;
    }
    info->has_bitmaps = s->bitmaps_ext && s->nb_bitmaps;
    info->nb_bitmaps = s->nb_bitmaps;
    info->bitmaps = xzalloc(sizeof(BlockBitmapInfo) * (size_t)(s->nb_bitmaps + 1));
    for (int i = 0; i < s->nb_bitmaps; i++) {
        info->bitmaps[i].name = xstrdup(s->bitmaps[i].name);
        info->bitmaps[i].granularity = 1u << MIN(s->bitmaps[i].granularity_bits, 31);
        /* What the file says, our own in-use marker included while we hold it (as QEMU). */
        info->bitmaps[i].in_use = s->bitmaps[i].flags & BME_FLAG_IN_USE;
        info->bitmaps[i].autoflag = s->bitmaps[i].flags & BME_FLAG_AUTO;
    }
    return 0;
}

static int qcow2_resize(BlockImage *img, uint64_t size, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    if (size & (BDRV_SECTOR_SIZE - 1)) {
        /* qemu-img refuses these for qcow2 rather than rounding. */
        error_setg(errp, "The new size must be a multiple of 512");
        return -1;
    }
    if (size > ((uint64_t)1 << 62)) {
        error_setg(errp, "size %" PRIu64 " is too large for qcow2", size);
        return -1;
    }
    /* A version 2 snapshot has no size of its own: it takes the image's. */
    if (s->nb_snapshots && s->version < 3) {
        error_setg(errp, "Can't resize a v2 image which has snapshots");
        return -1;
    }
    /* Bitmaps are checked (and may refuse) before anything is changed. */
    if (s->nb_bitmaps && qcow2_bitmaps_resize_prepare(img, errp) < 0) {
        return -1;
    }
    if (size < img->size) {
        /* Dropping the tail is no guest write: the bitmaps lose those bits instead. */
        s->bitmaps_quiet = true;
        int ret = qcow2_discard(img, ROUND_UP(size, s->cluster_size),
                                ROUND_UP(img->size, s->cluster_size) -
                                ROUND_UP(size, s->cluster_size), errp);
        s->bitmaps_quiet = false;
        if (ret < 0) {
            return -1;
        }
    }
    uint64_t l2_span = s->l2_entries << s->cluster_bits;
    if (qcow2_grow_l1(img, (size + l2_span - 1) / l2_span, errp) < 0) {
        return -1;
    }
    /* The data file follows, so a raw data file stays the whole image. */
    if (qcow2_has_data_file(s) && bfile_truncate(s->data, size, errp) < 0) {
        return -1;
    }
    qcow2_bitmaps_resize(img, size);
    img->size = size;
    if (qcow2_flush_metadata(img, false, errp) < 0) {
        return -1;
    }
    return qcow2_write_header(img, errp);
}

static int qcow2_check_entry(BlockImage *img, BlockCheckResult *res, int fix, Error **errp)
{
    return qcow2_check(img, res, fix, errp);
}

const BlockDriver blk_driver_qcow2 = {
    .name = "qcow2",
    .probe = qcow2_probe,
    .open = qcow2_open,
    .takes_option = qcow2_takes_option,
    .close = qcow2_close,
    .create = qcow2_create,
    .read = qcow2_read,
    .write = qcow2_write,
    .write_compressed = qcow2_write_compressed,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .block_status = qcow2_block_status,
    .check = qcow2_check_entry,
    .resize = qcow2_resize,
    .change_backing_file = qcow2_write_header,
    .amend = qcow2_amend,
    .make_empty = qcow2_make_empty,
    .get_info = qcow2_get_info,
    .aio_plan = qcow2_aio_plan,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_apply = qcow2_snapshot_apply,
    .snapshot_delete = qcow2_snapshot_delete,
    .bitmap_add = qcow2_bitmap_add,
    .bitmaps_load_live = qcow2_bitmaps_load_live,
    .bitmaps_store_live = qcow2_bitmaps_store_live,
    .bitmap_can_store = qcow2_bitmap_can_store,
    .bitmap_is_stored = qcow2_bitmap_is_stored,
    .bitmap_remove = qcow2_bitmap_remove,
    .bitmap_clear = qcow2_bitmap_clear,
    .bitmap_enable = qcow2_bitmap_enable,
    .bitmap_or = qcow2_bitmap_or,
    .bitmap_get = qcow2_bitmap_get,
};
