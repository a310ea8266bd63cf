/*
 * Cross-process image locks at QEMU's byte offsets (see image-lock.h).
 */
#include "block/image-lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "block/node.h"
#include "util/osdep.h"
#include <stdlib.h>

#define NR_PERMS 4

static const char *const perm_names[NR_PERMS] = {
    "consistent read", "write", "write unchanged", "resize",
};

const char *image_lock_perm_name(unsigned bit)
{
    return bit < NR_PERMS ? perm_names[bit] : "unknown";
}

char *image_lock_perm_names(unsigned perms)
{
    char *out = xstrdup("");
    for (unsigned i = 0; i < NR_PERMS; i++) {
        if (perms & (1u << i)) {
            char *next = xasprintf("%s%s%s", out, *out ? ", " : "", perm_names[i]);
            free(out);
            out = next;
        }
    }
    return out;
}

/* Is byte @off locked by another open file description?  -errno on failure. */
static int byte_taken(int fd, unsigned off)
{
    struct flock fl = {
        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
    };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
        return -errno;
    }
    return fl.l_type != F_UNLCK;
}

static int set_byte(int fd, unsigned off, bool hold)
{
    struct flock fl = {
        .l_type = hold ? F_RDLCK : F_UNLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
    };
    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

static bool lock_failed(Error **errp, int r, const char *shared, unsigned bit)
{
    if (r > 0) {
        error_setg(errp, "Failed to get %s\"%s\" lock", shared, perm_names[bit]);
    } else {
        error_setg_errno(errp, -r, "Failed to get %s\"%s\" lock", shared, perm_names[bit]);
    }
    return false;
}

bool image_lock_check(int fd, unsigned perm, unsigned shared, Error **errp)
{
    for (unsigned i = 0; i < NR_PERMS; i++) {
        if (perm & (1u << i)) {
            int r = byte_taken(fd, IMAGE_LOCK_SHARED_BASE + i);
            if (r) {
                return lock_failed(errp, r, "", i);
            }
        }
    }
    for (unsigned i = 0; i < NR_PERMS; i++) {
        if (!(shared & (1u << i))) {
            int r = byte_taken(fd, IMAGE_LOCK_PERM_BASE + i);
            if (r) {
                return lock_failed(errp, r, "shared ", i);
            }
        }
    }
    return true;
}

bool image_lock_apply(int fd, unsigned perm, unsigned shared, Error **errp)
{
    for (unsigned i = 0; i < NR_PERMS; i++) {
        int r = set_byte(fd, IMAGE_LOCK_PERM_BASE + i, perm & (1u << i));
        if (r < 0) {
            return lock_failed(errp, r, "", i);
        }
        r = set_byte(fd, IMAGE_LOCK_SHARED_BASE + i, !(shared & (1u << i)));
        if (r < 0) {
            return lock_failed(errp, r, "shared ", i);
        }
    }
    return true;
}
