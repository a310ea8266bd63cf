/*
 * qcow2 encryption at creation.  The legacy AES method (crypt_method 1)
 * keeps nothing in the image but the method: each 512-byte sector is
 * AES-128-CBC encrypted with a key made from the passphrase and its sector
 * number as the IV, so a new, empty image only needs the header field.
 * (Reading and writing encrypted images is not implemented: opening one
 * is refused.)
 */
#include "block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "util/osdep.h"

#define QCOW2_CRYPT_METHOD_OFFSET 32    /* big-endian u32 in the header */

int qcow2_crypt_mark_created(const char *filename, int encrypt_format, Error **errp)
{
    if (encrypt_format == BLK_ENCRYPT_NONE) {
        return 0;
    }
    if (encrypt_format != BLK_ENCRYPT_AES) {
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
