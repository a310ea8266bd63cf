/*
 * Image locking across processes, byte-compatible with QEMU: open file
 * description (OFD) locks on single bytes of the image file.  Byte 100+i
 * is held while this process uses permission i (BLK_PERM_* bit i), byte
 * 200+i while it refuses to share permission i with others.  Another
 * process wanting permission i tests byte 200+i; one refusing to share i
 * tests byte 100+i.  So vireo, QEMU, qemu-img and qemu-io see each
 * other's claims.
 */
#ifndef VIREO_BLOCK_IMAGE_LOCK_H
#define VIREO_BLOCK_IMAGE_LOCK_H

#include <stdbool.h>

#include "util/error.h"

#define IMAGE_LOCK_PERM_BASE    100
#define IMAGE_LOCK_SHARED_BASE  200

/* "consistent read", "write", ... for permission bit @bit (0..3). */
const char *image_lock_perm_name(unsigned bit);
/* Comma-separated names of the bits in @perms ("write, resize"). */
char *image_lock_perm_names(unsigned perms);

/*
 * Would taking @perm and refusing to share everything outside @shared
 * conflict with another process?  QEMU's message when it would
 * ("Failed to get \"write\" lock", "Failed to get shared \"write\" lock").
 */
bool image_lock_check(int fd, unsigned perm, unsigned shared, Error **errp);
/* Hold exactly the bytes for @perm and ~@shared on @fd, release the others. */
bool image_lock_apply(int fd, unsigned perm, unsigned shared, Error **errp);

#endif
