/*
 * File descriptor sets: descriptors handed to vireo (by -add-fd at start-up
 * or the add-fd QMP command) and later opened by name as /dev/fdset/N.
 * The sets are shared by every monitor connection.
 */
#ifndef VIREO_UTIL_FDSET_H
#define VIREO_UTIL_FDSET_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct FdsetEntry {
    int fd;
    char *opaque;           /* may be NULL */
    struct FdsetEntry *next;
} FdsetEntry;

typedef struct Fdset {
    int64_t id;
    FdsetEntry *fds;        /* in order of addition */
    int dup_count;          /* descriptors duplicated out of this set and still open */
    struct Fdset *next;     /* sorted by id */
} Fdset;

/* Add fd to set id (id < 0: a new set with the lowest free id). Takes ownership of fd. */
bool fdset_add(int64_t id, int fd, const char *opaque, int64_t *out_id, Error **errp);
/* Remove fd from set id (fd < 0: all of them). Error if not found. */
bool fdset_remove(int64_t id, int64_t fd, Error **errp);
/* Duplicate a member of set id whose access mode matches flags & O_ACCMODE. */
int fdset_dup_fd(int64_t id, int flags, Error **errp);
/* A descriptor obtained from fdset_dup_fd is being closed. */
void fdset_dup_fd_close(int fd);
/* All sets, for query-fdsets. */
const Fdset *fdset_list(void);

#endif
