/*
 * Highest write per host file (block-stats.h). A flat table by descriptor:
 * lock-free, as writes are issued from the queue's threads and the main
 * loop alike. It stays untouched (no memory) where descriptors are never
 * used; a descriptor past its end is simply not tracked.
 */
#include "block/block-stats.h"

#include "block/block-int.h"
#include "block/node.h"

#define TRACKED_FDS 65536

static uint64_t highest[TRACKED_FDS];

void block_stats_file_opened(int fd)
{
    if (fd >= 0 && fd < TRACKED_FDS) {
        __atomic_store_n(&highest[fd], 0, __ATOMIC_RELAXED);
    }
}

void block_stats_file_wrote(int fd, uint64_t end)
{
    if (fd < 0 || fd >= TRACKED_FDS) {
        return;
    }
    uint64_t cur = __atomic_load_n(&highest[fd], __ATOMIC_RELAXED);
    while (end > cur &&
           !__atomic_compare_exchange_n(&highest[fd], &cur, end, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
        /* cur now holds the newer value: try again while ours is higher */
    }
}

uint64_t block_stats_image_file_highest(BlockImage *img)
{
    int fd = img ? img->file.fd : -1;
    if (fd < 0 || fd >= TRACKED_FDS) {
        return 0;
    }
    return __atomic_load_n(&highest[fd], __ATOMIC_RELAXED);
}

uint64_t block_stats_protocol_node_highest(BlockNode *n)
{
    for (BlockNode *top = block_node_first(); top; top = block_node_next(top)) {
        if (block_node_file(top) == n) {
            return block_stats_image_file_highest(block_node_image(top, NULL));
        }
    }
    /* Not opened by a user: asking for its image would open one. */
    return block_node_in_use(n) ? block_stats_image_file_highest(block_node_image(n, NULL)) : 0;
}
