/*
 * A node's I/O statistics (query-blockstats) and its one-shot write
 * threshold (block-set-write-threshold), updated by the node's users.
 */
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "block/node-int.h"

int64_t block_stats_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void block_stats_start(BlockStatsCookie *c, BlockStatsKind kind, uint64_t offset,
                       uint64_t bytes)
{
    *c = (BlockStatsCookie){ kind, offset, bytes, block_stats_now_ns() };
}

static void check_threshold(BlockNode *n, uint64_t end)
{
    uint64_t t = n->write_threshold;
    if (t && end > t) {
        n->write_threshold = 0;     /* one shot */
        if (block_node_threshold_hook) {
            block_node_threshold_hook(n, end - t, t);
        }
    }
}

/* A guest write reached @end of node @n: its threshold and its file's. */
static void write_thresholds(BlockNode *n, uint64_t end)
{
    check_threshold(n, end);
    BlockNode *f = n->file;
    if (!f || !f->write_threshold) {
        return;
    }
    if (!strcmp(n->driver, "raw")) {
        check_threshold(f, end);
    } else if (n->img && n->img->file.fd >= 0) {
        struct stat st;
        if (fstat(n->img->file.fd, &st) == 0) {
            check_threshold(f, (uint64_t)st.st_size);
        }
    }
}

void block_node_set_write_threshold(BlockNode *n, uint64_t threshold)
{
    n->write_threshold = threshold;
}

uint64_t block_node_write_threshold(const BlockNode *n)
{
    return n->write_threshold;
}

void block_stats_done(BlockNodeStats *s, const BlockStatsCookie *c, bool ok)
{
    if (!s || c->kind >= BLOCK_STATS_NR) {
        return;
    }
    if (c->kind == BLOCK_STATS_WRITE) {
        /* Statistics live inside their node (block_node_stats()). */
        BlockNode *n = (BlockNode *)((char *)s - offsetof(BlockNode, stats));
        write_thresholds(n, c->offset + c->bytes);
    }
    int64_t now = block_stats_now_ns();
    if (ok) {
        s->ops[c->kind]++;
        s->bytes[c->kind] += c->bytes;
        s->total_time_ns[c->kind] += (uint64_t)(now - c->start_ns);
        if (c->kind == BLOCK_STATS_WRITE && c->offset + c->bytes > s->wr_highest_offset) {
            s->wr_highest_offset = c->offset + c->bytes;
        }
    } else {
        s->failed_ops[c->kind]++;
    }
    s->last_access_ns = now;
}

void block_stats_invalid(BlockNodeStats *s, BlockStatsKind kind)
{
    if (s && kind < BLOCK_STATS_NR) {
        s->invalid_ops[kind]++;
        s->last_access_ns = block_stats_now_ns();
    }
}
