/*
 * null-co and null-aio: protocol drivers with no storage behind them, as
 * QEMU has them for tests and benchmarks.  Writes are dropped, reads return
 * zeros, and every request may be delayed by a fixed latency.
 *
 * Options: size (default 1 GiB), read-zeroes (default off) and latency-ns
 * (default 0).  QEMU leaves the read buffer untouched unless read-zeroes=on;
 * vireo always zeros it, so stale host memory can never reach a guest or an
 * image.  read-zeroes then only changes what block status reports (zeros
 * rather than data).  The two drivers differ in QEMU only in how they
 * complete requests internally; here they behave the same.
 */
#include "block/block-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/keyval.h"
#include "util/osdep.h"

#define NULL_DEFAULT_SIZE (1ULL << 30)

typedef struct NullState {
    bool read_zeroes;       /* block status reports zeros, not data */
    uint64_t latency_ns;    /* every request waits this long */
} NullState;

static bool parse_latency(const char *value, uint64_t *out, Error **errp)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 0);
    if (!*value || *end || errno || value[0] == '-') {
        error_setg(errp, "latency-ns is invalid");
        return false;
    }
    *out = v;
    return true;
}

/* One option of the driver; false with *errp set for a bad or unknown one. */
static bool null_apply_option(BlockImage *img, NullState *s, const KeyVal *kv,
                              Error **errp)
{
    if (!strcmp(kv->key, "size")) {
        return parse_size(kv->value, &img->size, errp);
    }
    if (!strcmp(kv->key, "read-zeroes")) {
        return parse_bool(kv->key, kv->value, &s->read_zeroes, errp);
    }
    if (!strcmp(kv->key, "latency-ns")) {
        return parse_latency(kv->value, &s->latency_ns, errp);
    }
    error_setg(errp, "Block protocol '%s' doesn't support the option '%s'",
               img->drv->name, kv->key);
    return false;
}

static int null_open_protocol(BlockImage *img, const KeyValList *opts, Error **errp)
{
    NullState *s = xzalloc(sizeof(*s));
    img->size = NULL_DEFAULT_SIZE;
    for (int i = 0; opts && i < opts->n; i++) {
        if (!null_apply_option(img, s, &opts->items[i], errp)) {
            free(s);
            return -1;
        }
    }
    img->cluster_size = BDRV_SECTOR_SIZE;
    img->opaque = s;
    return 0;
}

static int null_close(BlockImage *img, Error **errp)
{
    free(img->opaque);
    img->opaque = NULL;
    return 0;
}

static void null_delay(BlockImage *img)
{
    NullState *s = img->opaque;
    struct timespec ts = {
        .tv_sec = (time_t)(s->latency_ns / 1000000000),
        .tv_nsec = (long)(s->latency_ns % 1000000000),
    };
    while (s->latency_ns && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        /* interrupted by a signal: sleep for the rest */
    }
}

static int null_read(BlockImage *img, uint64_t off, void *buf, size_t len, Error **errp)
{
    null_delay(img);
    memset(buf, 0, len);
    return 0;
}

static int null_write(BlockImage *img, uint64_t off, const void *buf, size_t len,
                      Error **errp)
{
    null_delay(img);
    return 0;
}

static int null_flush(BlockImage *img, Error **errp)
{
    null_delay(img);
    return 0;
}

static int null_discard(BlockImage *img, uint64_t off, uint64_t len, Error **errp)
{
    return 0;
}

static int null_block_status(BlockImage *img, uint64_t off, uint64_t len,
                             BlockStatus *st, Error **errp)
{
    NullState *s = img->opaque;
    st->kind = s->read_zeroes ? BLK_STATUS_ZERO : BLK_STATUS_DATA;
    st->len = len;
    st->host_offset = off;
    st->offset_valid = true;
    return 0;
}

#define NULL_DRIVER(drv_name)                   \
    {                                           \
        .name = drv_name,                       \
        .open_protocol = null_open_protocol,    \
        .close = null_close,                    \
        .read = null_read,                      \
        .write = null_write,                    \
        .flush = null_flush,                    \
        .discard = null_discard,                \
        .write_zeroes = null_discard,           \
        .block_status = null_block_status,      \
    }

const BlockDriver blk_driver_null_co = NULL_DRIVER("null-co");
const BlockDriver blk_driver_null_aio = NULL_DRIVER("null-aio");
