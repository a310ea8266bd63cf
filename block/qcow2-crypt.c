/*
 * qcow2 encryption at creation.
 *
 * The legacy AES method (crypt_method 1) keeps nothing in the image but the
 * method: each 512-byte sector is AES-128-CBC encrypted with a key made from
 * the passphrase and its sector number as the IV, so a new, empty image
 * only needs the header field.
 *
 * LUKS (crypt_method 2) keeps a LUKS1 header area (block/crypto-luks.c) in
 * clusters of the image itself; the full disk encryption header extension
 * names its offset and length.  Guest data would be encrypted with the
 * master key, the sector number counted from the host offset.
 *
 * (Reading and writing encrypted images is not implemented: opening one
 * is refused.)
 */
#include "block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/crypto-luks.h"
#include "util/osdep.h"

#define QCOW2_CRYPT_METHOD_OFFSET 32    /* big-endian u32 in the header */
#define QCOW2_EXT_CRYPTO_HEADER   0x0537be77u

int qcow2_luks_create_header(BlockImage *img, const BlockCreateOptions *o, Error **errp)
{
    BDRVQcow2 *s = img->opaque;
    uint8_t *area;
    size_t len;
    if (luks_create_area(&o->luks, &area, &len, errp) < 0) {
        return -1;
    }
    uint64_t clusters = (len + s->cluster_size - 1) >> s->cluster_bits;
    size_t padded = (size_t)(clusters << s->cluster_bits);
    int64_t off = qcow2_alloc_clusters(img, clusters, errp);
    int ret = -1;
    if (off >= 0) {
        /* The whole clusters: the area, then zeros up to the cluster end. */
        uint8_t *buf = blk_alloc_aligned(padded);
        memset(buf, 0, padded);
        memcpy(buf, area, len);
        ret = qcow2_pwrite_checked(img, 0, (uint64_t)off, buf, padded, errp);
        free(buf);
    }
    memset(area, 0, len);
    free(area);
    if (ret < 0) {
        return -1;
    }
    s->unknown_exts = xrealloc(s->unknown_exts,
                               sizeof(*s->unknown_exts) * (size_t)(s->nb_unknown_exts + 1));
    Qcow2UnknownExt *e = &s->unknown_exts[s->nb_unknown_exts++];
    e->type = QCOW2_EXT_CRYPTO_HEADER;
    e->len = 16;
    e->data = xmalloc(16);
    st_be64(e->data, (uint64_t)off);
    st_be64(e->data + 8, len);
    return 0;
}

int qcow2_crypt_mark_created(const char *filename, int encrypt_format, Error **errp)
{
    if (encrypt_format == BLK_ENCRYPT_NONE) {
        return 0;
    }
    if (encrypt_format != BLK_ENCRYPT_AES && encrypt_format != BLK_ENCRYPT_LUKS) {
        error_setg(errp, "qcow2 encryption format %d cannot be created", encrypt_format);
        return -1;
    }
    int fd = vireo_open(filename, O_RDWR, 0, errp);
    if (fd < 0) {
        return -1;
    }
    uint8_t be[4] = { 0, 0, 0, (uint8_t)encrypt_format };
    int ret = 0;
    if (pwrite(fd, be, sizeof(be), QCOW2_CRYPT_METHOD_OFFSET) != (ssize_t)sizeof(be) ||
        fsync(fd) < 0) {
        error_setg_errno(errp, errno, "Could not write the encryption method of '%s'",
                         filename);
        ret = -1;
    }
    close(fd);
    return ret;
}
