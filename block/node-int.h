/*
 * What the block node registry's files share (node.c, node-perm.c,
 * node-stats.c): the node and user records. Nothing outside block/node*.c
 * includes this; everyone else goes through node.h.
 */
#ifndef VIREO_BLOCK_NODE_INT_H
#define VIREO_BLOCK_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "block/block-int.h"
#include "block/node.h"
#include "util/keyval.h"

struct BlockNodeUser {
    BlockNode *node;
    char *desc;                 /* "block device 'vd0'", for conflict messages */
    char *qdev;                 /* device path, or NULL */
    unsigned perm, shared;
    void (*io_done)(void *opaque);
    void *io_opaque;
    uint64_t seq;
    int io_status;
    BlockNodeUser *next;
};

struct BlockNode {
    char *name;
    char *driver;
    char *device;               /* -drive id, or NULL */
    char *filename;             /* protocol nodes */
    KeyValList filter_opts;     /* blkdebug/quorum protocol nodes: their own options */
    BlockNode *file;            /* format nodes: the protocol node below */
    BlockNode *backing;         /* backing=NODE */
    bool backing_null;          /* backing=null: the image's own chain is not opened */
    BlockNode *parent;          /* the format node using this one as file/backing */
    BlockNode *backing_chain;   /* the image's own backing file, as a node */
    bool borrowed;              /* img belongs to the image above (a chain node) */
    bool read_only, auto_read_only, direct, no_flush, discard_unmap;
    bool writeback, from_drive;
    bool monitor_owned;         /* made by -blockdev/blockdev-add itself, not nested */
    BlockNodeAio aio;
    BlockNodeLocking locking;
    BlockNodeDetectZeroes detect_zeroes;
    BlockImage *img;
    int lock_fd;                /* protocol nodes with locking: -1 otherwise */
    int *chain_lock_fds;        /* the backing chain's files, read locks */
    int nr_chain_lock_fds;
    BlockNodeUser *users;       /* newest first */
    BlockNodeStats stats;
    unsigned queue_depth;
    uint64_t write_threshold;
    char *werror, *rerror;      /* -drive's, or NULL */
    BlockNode *next;
};

/* The drivers with an image format (as opposed to protocol and filter nodes). */
static inline bool node_is_format_driver(const char *driver)
{
    return !strcmp(driver, "raw") || !strcmp(driver, "qcow2") ||
           !strcmp(driver, "parallels");
}

/*
 * Check the claims on @n and everything below it against each other and
 * against other processes' image locks, counting @extra (a user not yet
 * attached) if not NULL; with @apply, take the locks as well.
 */
bool node_refresh_tree(BlockNode *n, const BlockNodeUser *extra, bool apply, Error **errp);

/* The error for format node @p asking to become @child's second parent. */
void node_second_parent_error(const BlockNode *child, const BlockNode *p, Error **errp);

#endif
