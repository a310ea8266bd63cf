/*
 * NBD exports: what a client is told about an image (size, transmission
 * flags, block sizes), allocation status through the backing chain for
 * base:allocation and qemu:allocation-depth.
 */
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd-int.h"
#include "nbd/nbd-proto.h"
#include "util/osdep.h"

NbdExp *nbd_exp_find(NbdExpList *list, const char *name)
{
    for (NbdExp *e = list->head; e; e = e->next) {
        if (!strcmp(e->name, name)) {
            return e;
        }
    }
    return NULL;
}

/* Which zeroing requests the format can honour without writing data. */
static void fast_zero_caps(NbdExp *e)
{
    const char *fmt = blk_format(e->img);
    if (!strcmp(fmt, "raw")) {
        e->fast_zero_any = true;            /* fallocate(ZERO_RANGE) */
        return;
    }
    if (!strcmp(fmt, "qcow2")) {
        BlockFormatInfo info;
        Error *err = NULL;
        memset(&info, 0, sizeof(info));
        if (blk_get_info(e->img, &info, &err) < 0) {
            error_free(err);
            return;
        }
        /* Version 3 has zero clusters; a raw external data file is written. */
        if (info.compat >= 3 && !info.data_file_raw) {
            e->zero_align = blk_cluster_size(e->img);
        }
        blk_free_info(&info);
    }
}

NbdExp *nbd_exp_new(const NbdExportConfig *cfg, Error **errp)
{
    if (!cfg->name || strlen(cfg->name) > NBD_MAX_STRING) {
        error_setg(errp, "export name must be at most %d bytes", NBD_MAX_STRING);
        return NULL;
    }
    if (cfg->description && strlen(cfg->description) > NBD_MAX_STRING) {
        error_setg(errp, "export description must be at most %d bytes", NBD_MAX_STRING);
        return NULL;
    }
    if (cfg->writable && !blk_is_writable(cfg->img)) {
        error_setg(errp, "Cannot export a read-only node as writable");
        return NULL;
    }
    NbdExp *e = xzalloc(sizeof(*e));
    e->name = xstrdup(cfg->name);
    e->description = cfg->description ? xstrdup(cfg->description) : NULL;
    e->img = cfg->img;
    e->size = blk_size(cfg->img);
    e->writable = cfg->writable;
    e->allocation_depth = cfg->allocation_depth;
    e->owner = cfg->owner;
    e->tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                NBD_FLAG_SEND_DF | NBD_FLAG_SEND_CACHE |
                /* Writes are done under one lock before they are answered and
                 * a flush covers the whole image: connections see each other's. */
                NBD_FLAG_CAN_MULTI_CONN;
    if (cfg->writable) {
        e->tflags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                     NBD_FLAG_SEND_FAST_ZERO;
        fast_zero_caps(e);
    } else {
        e->tflags |= NBD_FLAG_READ_ONLY;
    }
    e->pref_block = 4096;       /* as QEMU says, whatever the cluster size */
    e->stats = cfg->stats;
    e->ignore_discard = cfg->ignore_discard;
    e->queue = cfg->queue;      /* the server makes its own (queue_depth) after this */
    e->drain = cfg->drain;
    e->drain_opaque = cfg->drain_opaque;
    if (cfg->nr_bitmaps) {
        e->bitmaps = xmalloc(sizeof(NbdBitmap) * cfg->nr_bitmaps);
        memcpy(e->bitmaps, cfg->bitmaps, sizeof(NbdBitmap) * cfg->nr_bitmaps);
        e->nr_bitmaps = cfg->nr_bitmaps;
    }
    return e;
}

void nbd_exp_free(NbdExp *e)
{
    if (!e) {
        return;
    }
    /* Reads in flight write into buffers of their connections: let them land. */
    if (e->own_queue) {
        blk_queue_free(e->queue);
    } else if (e->queue && e->reads_in_flight) {
        if (e->drain) {
            e->drain(e->drain_opaque);
        }
        while (e->reads_in_flight && blk_queue_in_flight(e->queue)) {
            blk_queue_process(e->queue, true);
        }
    }
    for (unsigned i = 0; i < e->nr_bitmaps; i++) {
        if (e->bitmaps[i].release) {
            e->bitmaps[i].release(e->bitmaps[i].opaque);
        }
        free(e->bitmaps[i].name);
    }
    free(e->bitmaps);
    free(e->description);
    free(e->name);
    free(e);
}

bool nbd_exp_status(NbdExp *e, uint64_t offset, uint64_t max, uint64_t *len,
                    uint32_t *flags, uint32_t *depth)
{
    BlockImage *img = e->img;
    uint32_t d = 1;
    for (int guard = 0; img && guard < 256; guard++, d++) {
        uint64_t size = blk_size(img);
        if (offset >= size) {
            break;                          /* past a shorter backing file: zeros */
        }
        uint64_t n = MIN(max, size - offset);
        BlockStatus st;
        Error *err = NULL;
        if (blk_block_status(img, offset, n, &st, &err) < 0) {
            error_free(err);
            return false;
        }
        if (st.len == 0) {
            return false;                   /* no progress: treat as an I/O error */
        }
        n = MIN(n, st.len);
        switch (st.kind) {
        case BLK_STATUS_DATA:
        case BLK_STATUS_COMPRESSED:
            *len = n, *flags = 0, *depth = d;
            return true;
        case BLK_STATUS_ZERO:
            *len = n, *flags = NBD_STATE_HOLE | NBD_STATE_ZERO, *depth = d;
            return true;
        case BLK_STATUS_UNALLOCATED:
            max = n;
            img = blk_backing(img);
            break;
        }
    }
    *len = max, *flags = NBD_STATE_HOLE | NBD_STATE_ZERO, *depth = 0;
    return true;
}
