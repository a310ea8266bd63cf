/*
 * vireo-storage-daemon: block nodes (--blockdev) and their vhost-user-blk
 * exports (--export), with qemu-storage-daemon's command line.
 */
#ifndef VIREO_STORAGE_DAEMON_H
#define VIREO_STORAGE_DAEMON_H

#include <stdbool.h>

#include "block/block.h"
#include "util/error.h"
#include "vhost-user/loop.h"

/* ---- blockdev.c ---- */
/* --blockdev driver=file|raw|qcow2|parallels,node-name=..,... */
bool blockdev_add(const char *opts, Error **errp);
/* Open node-name for an export (once); *readonly_node says read-only=on. */
BlockImage *blockdev_open(const char *node_name, bool writable, bool *gather_segments,
                          Error **errp);
void blockdev_close_all(void);

/* ---- blk-export.c ---- */
/* --export type=vhost-user-blk,id=..,node-name=..,addr.type=unix|fd,... */
bool blk_export_add(VuLoop *loop, const char *opts, Error **errp);
void blk_export_close_all(void);

#endif
