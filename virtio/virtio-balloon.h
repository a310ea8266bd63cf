/*
 * The balloon as the monitor sees it (QMP balloon / query-balloon, HMP
 * balloon / info balloon). Sizes are bytes of guest RAM, as in QEMU.
 */
#ifndef VIREO_VIRTIO_VIRTIO_BALLOON_H
#define VIREO_VIRTIO_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

/* Ask the guest to leave the VM with target bytes (errors as QEMU words them). */
bool virtio_balloon_set_target(int64_t target, Error **errp);
/* RAM the guest has now (RAM size minus the pages it gave back). */
bool virtio_balloon_query(int64_t *actual, Error **errp);
/*
 * Memory statistics the driver reports on the stats queue (virtio 1.2
 * 5.5.6.3), by tag: swap-in, swap-out, major faults, minor faults, free,
 * total, available memory, disk caches, hugetlb allocations and failures.
 * -1: not reported. last_update: host seconds of the last report (0: none).
 */
#define BALLOON_NR_STATS 10
bool virtio_balloon_get_stats(int64_t stats[BALLOON_NR_STATS], int64_t *last_update);
/* guest-stats-polling-interval: ask the driver for new numbers every secs (0: never). */
int64_t virtio_balloon_poll_interval(void);
bool virtio_balloon_set_poll_interval(int64_t secs, Error **errp);

/* Called (if set) whenever the guest's actual size changes: BALLOON_CHANGE. */
extern void (*virtio_balloon_change_hook)(int64_t actual);

#endif
