/*
 * qcow2: making a new image (vireo-img create, blockdev-create's files):
 * the header and first tables, an external data file, preallocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/crypto-luks.h"
#include "block/qcow2.h"
#include "util/osdep.h"

static int refcount_order_of(int bits, Error **errp)
{
    for (int order = 0; order <= 6; order++) {
        if ((1 << order) == bits) {
            return order;
        }
    }
    error_setg(errp, "Refcount width must be a power of two and may not exceed 64 bits");
    return -1;
}

/* Header, one refcount table cluster, one refcount block: the smallest valid image. */
static int write_skeleton(int fd, const BlockCreateOptions *o, int cluster_bits,
                          int refcount_order, Error **errp)
{
    uint32_t cs = 1u << cluster_bits;
    int version = o->compat == 2 ? 2 : 3;
    uint8_t *buf = blk_alloc_aligned(3 * (size_t)cs);
    st_be32(buf, QCOW2_MAGIC);
    st_be32(buf + 4, (uint32_t)version);
    st_be32(buf + 20, (uint32_t)cluster_bits);
    st_be64(buf + 24, 0);
    st_be64(buf + 48, cs);            /* refcount table in cluster 1 */
    st_be32(buf + 56, 1);
    if (version == 3) {
        uint64_t incompat = (o->compression_type ? QCOW2_INCOMPAT_COMPRESSION : 0) |
                            (o->extended_l2 ? QCOW2_INCOMPAT_EXTL2 : 0) |
                            (o->data_file ? QCOW2_INCOMPAT_DATA_FILE : 0);
        st_be64(buf + 72, incompat);
        st_be64(buf + 80, o->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        st_be64(buf + 88, o->data_file_raw ? QCOW2_AUTOCLEAR_DATA_RAW : 0);
        st_be32(buf + 96, (uint32_t)refcount_order);
        st_be32(buf + 100, 112);
        buf[104] = (uint8_t)o->compression_type;
        size_t pos = 112;
        if (o->data_file) {
            /* The open below must find the name the incompatible bit asks for. */
            size_t len = strlen(o->data_file);
            st_be32(buf + pos, QCOW2_EXT_DATA_FILE);
            st_be32(buf + pos + 4, (uint32_t)len);
            memcpy(buf + pos + 8, o->data_file, len);
            pos += 8 + ROUND_UP(len, 8);
        }
        st_be32(buf + pos, QCOW2_EXT_END);
    }
    st_be64(buf + cs, 2 * (uint64_t)cs);   /* refcount block in cluster 2 */
    BDRVQcow2 tmp = { .refcount_order = refcount_order };
    for (int i = 0; i < 3; i++) {
        qcow2_refcount_set_entry(&tmp, buf + 2 * (size_t)cs, (uint64_t)i, 1);
    }
    BlockFile f = { .fd = fd, .writable = true };
    int ret = bfile_pwrite(&f, 0, buf, 3 * (size_t)cs, errp);
    free(buf);
    return ret;
}

static int preallocate(BlockImage *img, int mode, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint64_t cs = s->cluster_size;
    uint8_t *zero = s->zero_cluster;
    if (qcow2_has_data_file(s) || s->ext_l2 || mode != BLK_PREALLOC_FULL) {
        /*
         * Map every cluster without writing data: data file clusters sit at
         * their guest offset (the new data file reads as zeros); extended L2
         * clusters get a host cluster but no allocated subcluster, so a
         * backing file still shows through, as with qemu-img.
         */
        /* Mapping writes no data: growing the file ahead would allocate disk. */
        bool grow_ahead_off = s->prealloc_off;
        s->prealloc_off = true;
        int mapped = qcow2_prealloc_map(img, qcow2_has_data_file(s) ? QCOW2_SC_ALLOC_ALL : 0,
                                        errp);
        s->prealloc_off = grow_ahead_off;
        if (mapped < 0) {
            return -1;
        }
        if (qcow2_has_data_file(s)) {
            return qcow2_flush_metadata(img, false, errp);
        }
        /*
         * The new file reads as zeros where nothing was written: give it the
         * length of what was mapped and leave the rest sparse (or to fallocate).
         */
        int64_t len = bfile_length(&img->file, errp);
        if (len < 0 || ((uint64_t)len < s->zeroed_from &&
                        bfile_truncate(&img->file, s->zeroed_from, errp) < 0)) {
            return -1;
        }
        goto sized;
    }
    for (uint64_t off = 0; off < img->size; off += cs) {
        /* A zero-filled write allocates the cluster without COW work. */
        if (qcow2_write(img, off, zero, MIN(cs, img->size - off), errp) < 0) {
            return -1;
        }
    }
sized:
    if (qcow2_flush_metadata(img, false, errp) < 0) {
        return -1;
    }
    int64_t end = bfile_length(&img->file, errp);
    if (end < 0) {
        return -1;
    }
    if (mode == BLK_PREALLOC_FALLOC && end > 0 && fallocate(img->file.fd, 0, 0, end) < 0) {
        error_setg_errno(errp, errno, "cannot preallocate the image file");
        return -1;
    }
    return 0;
}

/* A new, empty data file of the image's size (it is created anew, as qemu-img does). */
static int create_data_file(const char *filename, const BlockCreateOptions *o, Error **errp)
{
    char *path = blk_backing_path(filename, o->data_file);
    int fd = vireo_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644, errp);
    int ret = -1;
    if (fd >= 0) {
        BlockFile f = { .fd = fd, .writable = true };
        ret = bfile_truncate(&f, o->size, errp);
        if (ret == 0 && o->preallocation >= BLK_PREALLOC_FALLOC && o->size &&
            fallocate(fd, 0, 0, (off_t)o->size) < 0) {
            error_setg_errno(errp, errno, "cannot preallocate '%s'", path);
            ret = -1;
        }
        close(fd);
    }
    if (ret < 0) {
        error_prepend(errp, "Could not create data file '%s': ", path);
    }
    free(path);
    return ret;
}

int qcow2_create(const char *filename, const BlockCreateOptions *o, Error **errp)
{
    uint32_t cs = o->cluster_size ? o->cluster_size : 65536;
    int cluster_bits = __builtin_ctz(cs);
    if (!is_power_of_2(cs) || cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "Cluster size must be a power of two between 512 and 2048k");
        return -1;
    }
    int refcount_order = refcount_order_of(o->refcount_bits ? o->refcount_bits : 16, errp);
    if (refcount_order < 0) {
        return -1;
    }
    if (o->compat == 2 && (refcount_order != 4 || o->lazy_refcounts || o->compression_type)) {
        error_setg(errp, o->lazy_refcounts
                   ? "Lazy refcounts only supported with compatibility level 1.1 and above "
                     "(use version=v3 or greater)"
                   : o->compression_type
                   ? "Compression type can only be set with compatibility level 1.1 and above"
                   : "Different refcount widths than 16 bits require compatibility level "
                     "1.1 or above (use version=v3 or greater)");
        return -1;
    }
    if (o->extended_l2 && o->compat == 2) {
        error_setg(errp, "Extended L2 entries are only supported with compatibility level "
                   "1.1 and above (use version=v3 or greater)");
        return -1;
    }
    if (o->extended_l2 && cluster_bits < QCOW2_EXTL2_MIN_CLUSTER_BITS) {
        error_setg(errp, "Extended L2 entries are only supported with cluster sizes of at "
                   "least 16384 bytes");
        return -1;
    }
    /* Entries per L2 table: 8 bytes each, 16 with extended L2. */
    uint64_t span = ((uint64_t)cs / (o->extended_l2 ? 16 : 8)) * cs;
    if ((o->size + span - 1) / span * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "The image size is too large for file format 'qcow2' (try using a "
                   "larger cluster size)");
        return -1;
    }
    if (o->data_file_raw && !o->data_file) {
        error_setg(errp, "data-file-raw requires data-file");
        return -1;
    }
    if (o->data_file && o->compat == 2) {
        error_setg(errp, "External data files are only supported with compatibility level "
                   "1.1 and above (use version=v3 or greater)");
        return -1;
    }
    if (o->data_file && (!*o->data_file || strlen(o->data_file) > QCOW2_MAX_DATA_FILE_NAME ||
                         112 + 16 + ROUND_UP(strlen(o->data_file), 8) > cs)) {
        error_setg(errp, "data file name '%s' is empty or too long for the header",
                   o->data_file);
        return -1;
    }
    if (o->backing_file && o->preallocation != BLK_PREALLOC_OFF && !o->extended_l2) {
        error_setg(errp, "Backing file and preallocation can only be used at the same time "
                   "if extended_l2 is on");
        return -1;
    }
    if (o->encrypt_format == BLK_ENCRYPT_LUKS && luks_check_options(&o->luks, errp) < 0) {
        return -1;
    }
    if (o->data_file && create_data_file(filename, o, errp) < 0) {
        return -1;
    }
    int fd = vireo_open(filename, O_RDWR | O_CREAT | O_TRUNC, 0644, errp);
    if (fd < 0) {
        return -1;
    }
    bfile_set_nocow(fd, o->nocow);
    bfile_set_extent_size_hint(fd, o->extent_size_hint);
    int ret = write_skeleton(fd, o, cluster_bits, refcount_order, errp);
    close(fd);
    if (ret < 0) {
        return -1;
    }
    BlockImage *img = blk_open(filename, "qcow2",
                               BLK_O_RDWR | BLK_O_NO_BACKING | BLK_O_NO_BITMAPS, errp);
    if (!img) {
        return -1;
    }
    BDRVQcow2 *s = img->opaque;
    uint64_t l2_span = s->l2_entries << s->cluster_bits;
    img->size = o->size;
    if (o->backing_file) {
        img->backing_name = xstrdup(o->backing_file);
        img->backing_fmt = o->backing_fmt ? xstrdup(o->backing_fmt) : NULL;
    }
    ret = qcow2_grow_l1(img, (o->size + l2_span - 1) / l2_span, errp);
    if (ret == 0 && o->encrypt_format == BLK_ENCRYPT_LUKS) {
        ret = qcow2_luks_create_header(img, o, errp);
    }
    if (ret == 0) {
        ret = qcow2_write_header(img, errp);
    }
    int prealloc = o->preallocation;
    if (o->data_file_raw && prealloc == BLK_PREALLOC_OFF) {
        /* Only a fully mapped image keeps the data file readable as a raw image. */
        prealloc = BLK_PREALLOC_METADATA;
    }
    if (ret == 0 && prealloc != BLK_PREALLOC_OFF) {
        ret = preallocate(img, prealloc, errp);
    }
    if (blk_close(img, ret < 0 ? NULL : errp) < 0) {
        ret = -1;
    }
    if (ret == 0) {
        ret = qcow2_crypt_mark_created(filename, o->encrypt_format, errp);
    }
    return ret;
}
