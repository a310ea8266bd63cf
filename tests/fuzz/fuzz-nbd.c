/*
 * libFuzzer target for the NBD protocol engine (nbd/nbd-conn.c) and its
 * exports (nbd/nbd-export.c): the input is what a client sends, from the
 * client flags through options (GO, INFO, LIST, EXPORT_NAME, metadata
 * contexts) to requests and write payloads.
 *
 * Byte 0 chooses how the bytes arrive: the low 4 bits are the largest
 * piece handed over at once (1 << n bytes), bit 4 drains the replies only
 * every other piece (so backpressure kicks in). The rest is fed through
 * the engine's rx_space/rx interface, exactly as the server thread does.
 *
 * Two exports: "w", a writable 4 MiB qcow2 image over a backing file
 * (allocation depth and a live dirty bitmap "b0"), and "r", a read-only
 * 1 MiB raw image.
 *
 * Checks besides the sanitizers: the first 18 bytes out are the fixed
 * newstyle greeting; option replies carry the reply magic; the queue of
 * replies never grows past the engine's high-water mark plus one reply;
 * a connection that is closing takes no more input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "block/dirty-bitmap.h"
#include "nbd/nbd-int.h"
#include "nbd/nbd-proto.h"
#include "util/osdep.h"

#define OUT_LIMIT ((1u << 20) + NBD_MAX_PAYLOAD + (1u << 20))

static NbdExpList list;
static char dir[] = "/tmp/fuzz-nbd-XXXXXX";

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-nbd: %s\n", what);
    abort();
}

static BlockImage *must(BlockImage *img, Error *err)
{
    if (!img) {
        fprintf(stderr, "fuzz-nbd: %s\n", error_get_pretty(err));
        abort();
    }
    return img;
}

static void add_export(const char *name, BlockImage *img, bool writable, bool depth,
                       NbdBitmap *bm, unsigned nbm)
{
    NbdExportConfig cfg = { .name = name, .description = "fuzz", .img = img,
                            .writable = writable, .allocation_depth = depth,
                            .bitmaps = bm, .nr_bitmaps = nbm };
    Error *err = NULL;
    NbdExp *e = nbd_exp_new(&cfg, &err);
    if (!e) {
        fail(error_get_pretty(err));
    }
    e->next = list.head;
    list.head = e;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!mkdtemp(dir)) {
        fail("mkdtemp");
    }
    char *base = xasprintf("%s/base.qcow2", dir), *top = xasprintf("%s/top.qcow2", dir);
    char *raw = xasprintf("%s/r.raw", dir);
    Error *err = NULL;
    BlockCreateOptions o = { .format = "qcow2", .size = 4 << 20 };
    if (blk_create(base, &o, &err) < 0) {
        fail(error_get_pretty(err));
    }
    BlockImage *b = must(blk_open(base, "qcow2", BLK_O_RDWR, &err), err);
    uint8_t buf[65536];
    memset(buf, 0x5a, sizeof(buf));
    blk_pwrite(b, 0, buf, sizeof(buf), &err);
    blk_pwrite(b, 2 << 20, buf, sizeof(buf), &err);
    blk_close(b, NULL);
    o.backing_file = base;
    o.backing_fmt = "qcow2";
    if (blk_create(top, &o, &err) < 0) {
        fail(error_get_pretty(err));
    }
    BlockImage *w = must(blk_open(top, "qcow2", BLK_O_RDWR, &err), err);
    blk_pwrite(w, 1 << 20, buf, sizeof(buf), &err);
    blk_write_zeroes(w, 3 << 20, 1 << 16, &err);
    if (!bdrv_dirty_bitmap_create(w, "b0", 65536, &err)) {
        fail(error_get_pretty(err));
    }
    NbdBitmap bm;
    if (!nbd_bitmap_live(&bm, w, "b0", true, &err)) {
        fail(error_get_pretty(err));
    }
    add_export("w", w, true, true, &bm, 1);
    o = (BlockCreateOptions){ .format = "raw", .size = 1 << 20 };
    if (blk_create(raw, &o, &err) < 0) {
        fail(error_get_pretty(err));
    }
    BlockImage *r = must(blk_open(raw, "raw", BLK_O_RDWR, &err), err);
    blk_pwrite(r, 4096, buf, 8192, &err);
    blk_close(r, NULL);
    r = must(blk_open(raw, "raw", 0, &err), err);
    add_export("r", r, false, false, NULL, 0);
    unlink(top);        /* open images keep working; nothing left in /tmp */
    unlink(base);
    unlink(raw);
    rmdir(dir);
    free(base);
    free(top);
    free(raw);
    return 0;
}

/* Take what the engine queued; check the fixed parts of the stream. */
static void drain(NbdConn *c, size_t *total, bool *greeted)
{
    size_t len;
    const uint8_t *p = nbd_conn_tx_data(c, &len);
    if (len > OUT_LIMIT) {
        fail("reply queue grew past its bound");
    }
    if (!*greeted && len) {
        if (len < 18) {
            fail("greeting cut short");
        }
        static const uint8_t hello[16] = { 'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C',
                                           'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T' };
        if (memcmp(p, hello, 16) || p[16] != 0 || (p[17] & 3) != 3) {
            fail("bad greeting");
        }
        *greeted = true;
    }
    *total += len;
    nbd_conn_tx_done(c, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t piece = (size_t)1 << (data[0] & 15);
    bool lazy = data[0] & 16;
    data++, size--;
    NbdConn *c = nbd_conn_new(&list);
    size_t total = 0;
    bool greeted = false;
    drain(c, &total, &greeted);
    unsigned turn = 0;
    while (size && nbd_conn_state(c) == NBD_CONN_RUNNING) {
        size_t room;
        uint8_t *dst = nbd_conn_rx_space(c, &room);
        if (!room) {
            drain(c, &total, &greeted);     /* the client reads: room frees up */
            dst = nbd_conn_rx_space(c, &room);
            if (!room) {
                if (nbd_conn_state(c) == NBD_CONN_RUNNING) {
                    fail("running, nothing queued, yet no room for input");
                }
                break;
            }
        }
        size_t n = MIN(MIN(room, piece), size);
        memcpy(dst, data, n);
        data += n, size -= n;
        nbd_conn_rx(c, n);
        if (!lazy || (turn++ & 1)) {
            drain(c, &total, &greeted);
        }
    }
    if (nbd_conn_state(c) == NBD_CONN_RUNNING) {
        nbd_conn_eof(c);
    }
    if (nbd_conn_state(c) == NBD_CONN_RUNNING) {
        fail("still running after EOF");
    }
    drain(c, &total, &greeted);
    nbd_conn_free(c);
    for (NbdExp *e = list.head; e; e = e->next) {
        if (e->clients) {
            fail("a freed connection still counts as a client");
        }
    }
    return 0;
}
