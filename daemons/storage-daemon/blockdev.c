/*
 * --blockdev for vireo-storage-daemon: the nodes live in the block layer's
 * registry (block/node.h), shared with vireo itself; this file turns the
 * daemon's option strings into nodes and lets exports use them.
 */
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "block/node.h"
#include "daemons/storage-daemon/storage-daemon.h"
#include "util/keyval.h"
#include "util/osdep.h"
#include "virtio/virtio-blk-req.h"

/* The exports' claims on nodes, by node name. */
typedef struct ExportUse {
    char *node_name;
    BlockNodeUser *user;
    struct ExportUse *next;
} ExportUse;

static ExportUse *uses;

/* Can this process set up an io_uring (kernel support, no policy against it)? */
static bool uring_works(void)
{
    static int works = -1;
    if (works < 0) {
        struct io_uring ring;
        works = io_uring_queue_init(2, &ring, 0) == 0;
        if (works) {
            io_uring_queue_exit(&ring);
        }
    }
    return works;
}

/*
 * A file node without aio= gets io_uring here, not threads as in vireo
 * itself: the daemon does nothing but I/O, and at low queue depth a request
 * that io_uring issues from the loop (inline on files with a non-blocking
 * path, such as O_DIRECT on ext4 or xfs) skips the two thread hand-offs of
 * the pool. aio=threads still chooses the pool; without io_uring support the
 * pool is what runs.
 */
static void default_aio(KeyValList *kv)
{
    const char *driver = keyval_get(kv, "driver");
    if (!driver || strcmp(driver, "file") || keyval_get(kv, "aio") || !uring_works()) {
        return;
    }
    kv->items = xrealloc(kv->items, sizeof(*kv->items) * (size_t)(kv->n + 1));
    kv->items[kv->n++] = (KeyVal){ xstrdup("aio"), xstrdup("io_uring") };
}

bool blockdev_add(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse_any(opts, &kv, errp)) {   /* key=value or JSON */
        return false;
    }
    default_aio(&kv);
    BlockNode *n = NULL;
    if (!keyval_get(&kv, "node-name") && keyval_get(&kv, "driver")) {
        error_setg(errp, "A block device must be given a name (node-name)");
    } else {
        n = block_node_create(&kv, errp);
    }
    keyval_free(&kv);
    return n != NULL;
}

BlockImage *blockdev_open(const char *node_name, bool writable, bool *gather_segments,
                          Error **errp)
{
    BlockNode *n = block_node_find(node_name);
    if (!n) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'", node_name);
        return NULL;
    }
    if (block_node_in_use(n)) {
        error_setg(errp, "Node '%s' is already in use", node_name);
        return NULL;
    }
    BlockImage *img = block_node_image(n, errp);
    if (!img) {
        return NULL;
    }
    unsigned perm = BLK_PERM_CONSISTENT_READ | (writable ? BLK_PERM_WRITE : 0);
    BlockNodeUser *u = block_node_attach(n, "an unnamed block device", NULL, perm,
                                         BLK_PERM_ALL, errp);
    if (!u) {
        return NULL;
    }
    ExportUse *use = xzalloc(sizeof(*use));
    use->node_name = xstrdup(node_name);
    use->user = u;
    use->next = uses;
    uses = use;
    *gather_segments = virtio_blk_on_forwarding_fs(block_node_filename(n));
    return img;
}

void blockdev_release(const char *node_name)
{
    for (ExportUse **p = &uses; *p; p = &(*p)->next) {
        ExportUse *use = *p;
        if (!strcmp(use->node_name, node_name)) {
            *p = use->next;
            block_node_detach(use->user);
            free(use->node_name);
            free(use);
            return;
        }
    }
}

static void node_info(BlockNode *n, BlockNodeInfo *info)
{
    *info = (BlockNodeInfo){
        .name = block_node_name(n), .driver = block_node_driver(n),
        .filename = block_node_filename(n), .read_only = block_node_read_only(n),
        .direct = block_node_cache_direct(n), .actual_size = -1,
    };
    BlockImage *img = block_node_is_format(n) ? block_node_image(n, NULL) : NULL;
    struct stat st;
    if (img) {
        info->img = img;
        info->virtual_size = blk_size(img);
        info->actual_size = blk_allocated_bytes(img);
        info->cluster_size = blk_cluster_size(img);
        if (blk_get_info(img, &info->format, NULL) == 0) {
            info->dirty = info->format.dirty;
        } else {
            info->format = (BlockFormatInfo){ 0 };
        }
    } else if (!block_node_is_format(n) && stat(info->filename, &st) == 0) {
        info->virtual_size = ROUND_UP((uint64_t)st.st_size, 512);   /* whole sectors */
        info->actual_size = (int64_t)st.st_blocks * 512;
    }
}

void blockdev_foreach(BlockNodeVisit *visit, void *opaque)
{
    /* Newest first, as the daemon has always listed them. */
    int count = 0;
    for (BlockNode *n = block_node_first(); n; n = block_node_next(n)) {
        count++;
    }
    BlockNode **all = xzalloc(sizeof(*all) * (size_t)(count + 1));
    int i = 0;
    for (BlockNode *n = block_node_first(); n; n = block_node_next(n)) {
        all[i++] = n;
    }
    while (i-- > 0) {
        BlockNodeInfo info;
        node_info(all[i], &info);
        visit(&info, opaque);
        blk_free_info(&info.format);
    }
    free(all);
}

void blockdev_close_all(void)
{
    while (uses) {
        blockdev_release(uses->node_name);
    }
    block_node_close_all();
}
