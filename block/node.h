/*
 * Block nodes: the one registry of QEMU-style block nodes that vireo (the
 * VMM: -blockdev, -drive, blockdev-add) and vireo-storage-daemon
 * (--blockdev) share.
 *
 * A protocol node (driver "file", or "null-co"/"null-aio" from -drive, or
 * a blkdebug/quorum filter node kept as its options) names where the bytes
 * live; a format node ("raw", "qcow2", "parallels")
 * sits on a protocol node through its `file` child and may name a backing
 * node.  A node without node-name gets an automatic "#blockNNN" name.  A
 * node may also carry a device name: the id of the -drive that made it
 * (QEMU's BlockBackend name), so commands that take `device` or
 * `node-name` find it either way.
 *
 * The block layer opens a format together with its file, so a format
 * node holds the BlockImage (its file child holds none while used that
 * way); a protocol node used on its own is opened as a raw image.
 *
 * API summary (names other modules use):
 *   block_node_find(name)               by node-name
 *   block_node_find_device(id)          by device name (-drive id)
 *   block_node_lookup(device, node, errp)  QEMU's device/node-name pair,
 *                                       with its "Cannot find device=..."
 *   block_node_first()/block_node_next()   iterate, oldest first
 *   block_node_image(n, errp)           the node's BlockImage (opened lazily)
 *   block_node_stats(n)                 I/O counters; users update them with
 *                                       block_stats_account()/_done()
 *   block_node_attach()/block_node_detach()   users with QEMU's permissions
 *   block_node_create(kv, errp)         from flat key=value options
 *   block_node_delete(name, errp)       blockdev-del
 *   block_node_dirty_bitmaps_hook       filled by the dirty bitmap code
 */
#ifndef VIREO_BLOCK_NODE_H
#define VIREO_BLOCK_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "util/error.h"

typedef struct BlockNode BlockNode;
typedef struct BlockNodeUser BlockNodeUser;

/* ---- I/O statistics (query-blockstats) ---- */

typedef enum BlockStatsKind {
    BLOCK_STATS_READ,
    BLOCK_STATS_WRITE,
    BLOCK_STATS_FLUSH,
    BLOCK_STATS_UNMAP,      /* discard and write-zeroes with unmap */
    BLOCK_STATS_NR,
} BlockStatsKind;

typedef struct BlockNodeStats {
    uint64_t bytes[BLOCK_STATS_NR];
    uint64_t ops[BLOCK_STATS_NR];
    uint64_t failed_ops[BLOCK_STATS_NR];
    uint64_t invalid_ops[BLOCK_STATS_NR];   /* refused before reaching the image */
    uint64_t merged[BLOCK_STATS_NR];
    uint64_t total_time_ns[BLOCK_STATS_NR];
    uint64_t wr_highest_offset;             /* end of the highest write, bytes */
    int64_t last_access_ns;                 /* CLOCK_MONOTONIC; 0: never */
} BlockNodeStats;

/* One request being timed: fill with block_stats_start(). */
typedef struct BlockStatsCookie {
    BlockStatsKind kind;
    uint64_t offset, bytes;
    int64_t start_ns;
} BlockStatsCookie;

int64_t block_stats_now_ns(void);
void block_stats_start(BlockStatsCookie *c, BlockStatsKind kind, uint64_t offset,
                       uint64_t bytes);
/* The request finished: ok counts it done, else failed.  @s may be NULL. */
void block_stats_done(BlockNodeStats *s, const BlockStatsCookie *c, bool ok);
/* A request refused as invalid (out of range, read-only...).  @s may be NULL. */
void block_stats_invalid(BlockNodeStats *s, BlockStatsKind kind);

/* ---- Nodes ---- */

typedef enum BlockNodeAio { BLOCK_AIO_THREADS, BLOCK_AIO_NATIVE, BLOCK_AIO_IO_URING } BlockNodeAio;
typedef enum BlockNodeLocking { BLOCK_LOCK_AUTO, BLOCK_LOCK_ON, BLOCK_LOCK_OFF } BlockNodeLocking;
typedef enum BlockNodeDetectZeroes {
    BLOCK_DZ_OFF, BLOCK_DZ_ON, BLOCK_DZ_UNMAP,
} BlockNodeDetectZeroes;

/*
 * Create a node (and its nested children) from flat options, as
 * -blockdev key=value writes them: driver, node-name, file (a node name,
 * or nested as file.driver=..,file.filename=..), backing (a node name,
 * "null" for none, or nested), read-only, auto-read-only, discard,
 * detect-zeroes, cache.direct, cache.no-flush, filename, aio, locking.
 * The image is opened (and locked) now.
 */
BlockNode *block_node_create(const KeyValList *kv, Error **errp);
/*
 * A -drive: a format node (probed when format= is absent) over a protocol
 * node, both auto-named, with device name @id (may be NULL); the whole
 * -drive option string as given.  Opened now.
 */
BlockNode *block_node_create_drive(const char *drive_opts, Error **errp);
/* blockdev-del: only a node made by -blockdev/blockdev-add, unused. */
bool block_node_delete(const char *node_name, Error **errp);
/* Close every image and free every node (at exit). */
void block_node_close_all(void);

BlockNode *block_node_find(const char *node_name);
BlockNode *block_node_find_device(const char *device);
/*
 * QEMU's `device`/`node-name` arguments (either may be NULL): a device
 * name first, else a node name; errors "Cannot find device='D' nor
 * node-name='N'".
 */
BlockNode *block_node_lookup(const char *device, const char *node_name, Error **errp);
BlockNode *block_node_first(void);
BlockNode *block_node_next(const BlockNode *n);

const char *block_node_name(const BlockNode *n);
const char *block_node_driver(const BlockNode *n);
const char *block_node_device(const BlockNode *n);      /* NULL when none */
const char *block_node_filename(const BlockNode *n);    /* the protocol's file name */
BlockNode *block_node_file(const BlockNode *n);         /* NULL for protocol nodes */
BlockNode *block_node_backing(const BlockNode *n);      /* NULL when none */
/* The backing node was named (backing=NODE), not opened from the image's header. */
bool block_node_backing_explicit(const BlockNode *n);
bool block_node_is_format(const BlockNode *n);
bool block_node_read_only(const BlockNode *n);
bool block_node_auto_read_only(const BlockNode *n);
bool block_node_cache_direct(const BlockNode *n);
bool block_node_cache_no_flush(const BlockNode *n);
bool block_node_discard_unmap(const BlockNode *n);
BlockNodeAio block_node_aio(const BlockNode *n);
BlockNodeLocking block_node_locking(const BlockNode *n);
BlockNodeDetectZeroes block_node_detect_zeroes(const BlockNode *n);
/* -drive cache mode: the guest-visible write cache (writeback) is on. */
bool block_node_writeback(const BlockNode *n);
/* -drive werror= / rerror= as given, NULL when absent (devices default them). */
const char *block_node_drive_werror(const BlockNode *n);
const char *block_node_drive_rerror(const BlockNode *n);
/* Made by -drive (not deletable with blockdev-del). */
bool block_node_from_drive(const BlockNode *n);
/* True when some user or parent node holds it. */
bool block_node_in_use(const BlockNode *n);

/*
 * The node's image: a format node's (opened with its file and backing
 * chain), or for a protocol node used on its own a raw view of its file.
 */
BlockImage *block_node_image(BlockNode *n, Error **errp);
BlockNodeStats *block_node_stats(BlockNode *n);

/* ---- Users and QEMU's permissions ---- */

enum {
    BLK_PERM_CONSISTENT_READ = 1u << 0,
    BLK_PERM_WRITE           = 1u << 1,
    BLK_PERM_WRITE_UNCHANGED = 1u << 2,
    BLK_PERM_RESIZE          = 1u << 3,
    BLK_PERM_ALL             = 0xf,
};

/*
 * Use node @n: @perm are the permissions taken, @shared those left to
 * other users.  @desc describes the user in conflict messages (e.g.
 * "block device 'vd0'"), @qdev (may be NULL) is the device's QOM path for
 * query-block.  A conflict with another user, with the node being
 * read-only, or with another process's locks on the image fails with
 * QEMU's messages.
 */
BlockNodeUser *block_node_attach(BlockNode *n, const char *desc, const char *qdev,
                                 unsigned perm, unsigned shared, Error **errp);
void block_node_detach(BlockNodeUser *u);
/* The user is now known as the device at @qdev ("block device '@qdev'"). */
void block_node_user_set_qdev(BlockNodeUser *u, const char *qdev);
/* The users of a node, oldest first. */
BlockNodeUser *block_node_user_first(const BlockNode *n);
BlockNodeUser *block_node_user_next(const BlockNodeUser *u);
const char *block_node_user_qdev(const BlockNodeUser *u);   /* NULL: not a device */
BlockNode *block_node_user_node(const BlockNodeUser *u);
/* A device's I/O status for query-block: 0 ok, 1 failed, 2 nospace. */
void block_node_user_set_io_status(BlockNodeUser *u, int status);
int block_node_user_io_status(const BlockNodeUser *u);
/* Users in the order they attached, across nodes: larger is newer. */
uint64_t block_node_user_seq(const BlockNodeUser *u);

/* ---- The node's shared asynchronous queue ---- */

/*
 * One BlockQueue per image, shared by every user of the node.  The
 * program's event loop watches its eventfd through the hook below (vireo
 * sets it to its main loop, the storage daemon to its own); on each
 * wake-up the node runs the finished requests' callbacks and then every
 * user's @io_done (block_node_user_set_io_done), so each can notify its
 * own peer once per batch.
 */
BlockQueue *block_node_queue(BlockNode *n, unsigned depth, Error **errp);
void block_node_user_set_io_done(BlockNodeUser *u, void (*io_done)(void *opaque),
                                 void *opaque);
/* Run the node's queue until nothing is in flight, then every user's @io_done. */
void block_node_queue_drain(BlockNode *n);
/* Set by the program: watch @fd for reading (cb NULL: stop watching). */
extern void (*block_node_watch_fd)(int fd, void (*cb)(void *opaque), void *opaque);

/* ---- Write threshold (block-set-write-threshold) ---- */

/*
 * Once a write reaches past @threshold bytes of the node (0: none), the
 * hook is called once with how far past, and the threshold is cleared.
 * A raw node's file sees the guest's offsets; a file under qcow2 or
 * parallels is checked against its length after each guest write.
 */
void block_node_set_write_threshold(BlockNode *n, uint64_t threshold);
uint64_t block_node_write_threshold(const BlockNode *n);
extern void (*block_node_threshold_hook)(BlockNode *n, uint64_t exceeded, uint64_t threshold);

/* ---- Hooks filled by other parts of the block layer ---- */

/*
 * Dirty bitmaps of a node for query-named-block-nodes / query-block
 * (`dirty-bitmaps`): the bitmap code sets this; while NULL, or when it
 * returns NULL, the member is absent.  It returns a new list the monitor
 * frees (qapi_free_BlockDirtyInfoList).
 */
typedef struct BlockDirtyInfoList BlockDirtyInfoList;   /* qapi type */
extern BlockDirtyInfoList *(*block_node_dirty_bitmaps_hook)(BlockNode *n);

#endif
