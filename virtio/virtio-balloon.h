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
/* Called (if set) whenever the guest's actual size changes: BALLOON_CHANGE. */
extern void (*virtio_balloon_change_hook)(int64_t actual);

#endif
