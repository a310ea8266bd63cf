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
#include "vhost-user/vhost-user.h"

typedef struct BlkExport BlkExport;

/* ---- blockdev.c ---- */
/* --blockdev driver=file|raw|qcow2|parallels,node-name=..,... */
bool blockdev_add(const char *opts, Error **errp);
/* Open node-name for an export (once); *readonly_node says read-only=on. */
BlockImage *blockdev_open(const char *node_name, bool writable, bool *gather_segments,
                          Error **errp);
/* The export using node_name is gone: close its image, free the node. */
void blockdev_release(const char *node_name);
void blockdev_close_all(void);

/* One node as query-named-block-nodes reports it, newest first. */
typedef struct BlockNodeInfo {
    const char *name, *driver, *filename;
    bool read_only, direct;
    uint64_t virtual_size;
    int64_t actual_size;        /* -1: unknown */
    uint32_t cluster_size;      /* 0: the format has none */
    bool dirty;                 /* the image says it was not closed cleanly */
    BlockFormatInfo format;     /* a format node's facts (format.type NULL: none) */
    BlockImage *img;            /* a format node's open image (its bitmaps), or NULL */
} BlockNodeInfo;
typedef void BlockNodeVisit(const BlockNodeInfo *info, void *opaque);
void blockdev_foreach(BlockNodeVisit *visit, void *opaque);

/* ---- blk-export.c ---- */
/* --export type=vhost-user-blk,id=..,node-name=..,addr.type=unix|fd,... */
bool blk_export_add(VuLoop *loop, const char *opts, Error **errp);
void blk_export_close_all(void);
/* Remove an export; unless hard, not while a frontend is connected. */
bool blk_export_del(const char *id, bool hard, Error **errp);
/* Newest first. */
BlkExport *blk_export_first(void);
BlkExport *blk_export_next(const BlkExport *e);
BlkExport *blk_export_find(const char *id);
const char *blk_export_id(const BlkExport *e);
const char *blk_export_node(const BlkExport *e);
VuDev *blk_export_dev(BlkExport *e);

/* ---- nbd-export.c ---- */
typedef struct NbdAddress NbdAddress;   /* nbd/nbd.h */
/* From addr.type/path/host/port/str (any may be NULL). */
bool sd_nbd_addr_parse(const char *type, const char *path, const char *host,
                       const char *port, const char *str, NbdAddress *addr, Error **errp);
bool sd_nbd_server_start(const NbdAddress *addr, unsigned max_connections, Error **errp);
/* --nbd-server addr.type=..,max-connections=N */
bool sd_nbd_server_opt(const char *opts, Error **errp);
/* Drop the clients, remove every NBD export (with their events), stop. */
bool sd_nbd_server_stop(Error **errp);
/* --export type=nbd,... */
bool sd_nbd_export_opt(const char *opts, Error **errp);
bool sd_nbd_export_add(const char *id, const char *node, const char *name,
                       const char *description, bool writable, const char *const *bitmaps,
                       unsigned nr_bitmaps, bool allocation_depth, Error **errp);
bool sd_nbd_export_is(const char *id);
/* Remove (with BLOCK_EXPORT_DELETED); unless hard, not while clients use it. */
bool sd_nbd_export_del(const char *id, bool hard, Error **errp);
bool sd_nbd_export_remove_by_name(const char *name, bool hard, Error **errp);
/* Newest first. */
void sd_nbd_foreach(void (*fn)(const char *id, const char *node, void *opaque),
                    void *opaque);
void sd_nbd_close_all(void);

/* ---- qmp.c ---- */
/* --chardev socket,id=ID,path=P,server=on,wait=off: remembered for --monitor. */
bool sd_chardev_add(const char *opts, Error **errp);
/* --monitor [chardev=]ID[,mode=control]: listen now (before daemonizing,
 * so the socket accepts as soon as the parent exits) and serve from loop;
 * the quit command sets *quit. */
bool sd_monitor_add(VuLoop *loop, const char *opts, bool *quit, Error **errp);
/* Flush what clients' sockets take, close the monitors. */
void sd_monitor_close_all(void);

#endif
