/*
 * The end of the highest write each open host file has taken, whoever
 * wrote it (a format's data and metadata, a raw node's guest data): what
 * QEMU reports as a file node's wr_highest_offset. Kept by descriptor, so
 * the file layer and the asynchronous queue record it without knowing the
 * node above them.
 */
#ifndef VIREO_BLOCK_BLOCK_STATS_H
#define VIREO_BLOCK_BLOCK_STATS_H

#include <stdint.h>

#include "block/block.h"

/* @fd was just opened: nothing written through it yet. */
void block_stats_file_opened(int fd);
/* A write reaching up to @end was issued on @fd (any thread). */
void block_stats_file_wrote(int fd, uint64_t end);
/* The highest write end on the host file below @img (0: none). */
uint64_t block_stats_image_file_highest(BlockImage *img);

struct BlockNode;
/*
 * A protocol node's wr_highest_offset: the writes its host file took
 * through the format node above it, or through the node's own image when
 * a user opened it directly (0 before either).
 */
uint64_t block_stats_protocol_node_highest(struct BlockNode *n);

#endif
