/*
 * virtio-rng (virtio 1.2 section 5.4): one queue of device-writable buffers
 * that we fill with entropy from the host, from an rng-random object's file
 * or, by default and for rng-builtin, from getrandom(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "util/osdep.h"
#include "virtio/virtio-pci.h"

#define RNG_QUEUE_SIZE  8
#define RNG_CHUNK_MAX   (64 * 1024)     /* per request: guests ask for small amounts */

#define RATE_PERIOD_DEFAULT_MS  (1u << 16)

/*
 * Rate limit (max-bytes per period): the first byte served in a period arms
 * a guest-time timer; once the quota is used up, requests wait in the ring
 * until the timer refills it, so a guest cannot drain the host's entropy
 * faster than allowed.
 */
typedef struct VirtIORng {
    VirtIODevice vdev;
    int fd;                 /* rng-random source; -1: getrandom */
    uint64_t max_bytes;     /* per period; UINT64_MAX: no limit */
    uint64_t period_ms;
    uint64_t quota;         /* bytes left in this period */
    Timer *refill;
} VirtIORng;

static const OptParam rng_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "rng", OPT_STRING, "id of an rng-random or rng-builtin object" },
    { "max-bytes", OPT_NUMBER, "rate limit: bytes per period" },
    { "period", OPT_NUMBER, "rate limit period (ms)" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};

static const OptParam rng_object_params[] = {
    { "qom-type", OPT_STRING, "rng-random or rng-builtin" },
    { "id", OPT_STRING, "object id" },
    { "filename", OPT_STRING, "entropy source", "/dev/urandom" },
    { NULL },
};

static ssize_t read_entropy(VirtIORng *rng, void *buf, size_t len)
{
    ssize_t n;
    do {
        n = rng->fd >= 0 ? read(rng->fd, buf, len) : getrandom(buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Fill the buffers the driver offers, as far as the quota of this period allows. */
static void rng_handle_request(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIORng *rng = container_of(vdev, VirtIORng, vdev);
    if (rng->quota == 0) {
        return;             /* the refill timer comes back for them */
    }
    if (rng->max_bytes != UINT64_MAX && !timer_pending(rng->refill)) {
        timer_mod(rng->refill, clock_get_ns(CLOCK_VIRTUAL) + (int64_t)rng->period_ms * 1000000);
    }
    uint8_t *buf = xmalloc(RNG_CHUNK_MAX);
    VirtQueueElement elem;
    while (rng->quota && virtqueue_pop(vq, &elem)) {
        size_t want = MIN(MIN(elem.in_len, RNG_CHUNK_MAX), rng->quota);
        ssize_t got = want ? read_entropy(rng, buf, want) : 0;
        size_t done = got > 0 ? iov_from_buf(elem.in_sg, elem.in_num, 0, buf, got) : 0;
        if (rng->max_bytes != UINT64_MAX) {
            rng->quota -= done;
        }
        virtqueue_push(vq, &elem, done);
        virtqueue_element_free(&elem);
    }
    free(buf);
    virtqueue_notify(vq);
}

static void rng_refill(void *opaque)
{
    VirtIORng *rng = opaque;
    rng->quota = rng->max_bytes;
    if (virtio_driver_ok(&rng->vdev)) {
        rng_handle_request(&rng->vdev, &rng->vdev.vq[0]);
    }
}

static void rng_reset(VirtIODevice *vdev)
{
    VirtIORng *rng = container_of(vdev, VirtIORng, vdev);
    timer_del(rng->refill);
    rng->quota = rng->max_bytes;
}

static void rng_unrealize(VirtIODevice *vdev)
{
    VirtIORng *rng = vdev->opaque;
    if (rng->fd >= 0) {
        close(rng->fd);
    }
    timer_free(rng->refill);
    free(rng->vdev.config);
    free(rng->vdev.vq);
    free(rng);
}

static const VirtIODeviceOps rng_ops = { .reset = rng_reset, .unrealize = rng_unrealize };

static bool parse_rate_limit(const KeyValList *kv, VirtIORng *rng, Error **errp)
{
    uint64_t period = keyval_get_number(kv, "period", RATE_PERIOD_DEFAULT_MS);
    uint64_t max = keyval_get_number(kv, "max-bytes", INT64_MAX);
    if (period == 0 || period > INT64_MAX / 1000000) {
        error_setg(errp, "'period' parameter expects a positive integer");
        return false;
    }
    if (max > INT64_MAX) {
        error_setg(errp, "'max-bytes' parameter must be non-negative, and less than 2^63");
        return false;
    }
    rng->period_ms = period;
    rng->max_bytes = max == INT64_MAX ? UINT64_MAX : max;   /* INT64_MAX: unlimited */
    rng->quota = rng->max_bytes;
    return true;
}

static bool open_backend(const VirtioCreateContext *ctx, const char *id, VirtIORng *rng,
                         Error **errp)
{
    if (!id) {
        return true;
    }
    const char *opts = virtio_find_backend_opts(ctx->cfg->objects, id);
    KeyValList kv;
    if (!opts) {
        error_setg(errp, "Property 'virtio-rng-device.rng' can't find value '%s'", id);
        return false;
    }
    if (!keyval_parse(opts, "qom-type", rng_object_params, &kv, errp)) {
        return false;
    }
    const char *type = keyval_get(&kv, "qom-type");
    bool ok = true;
    if (type && strcmp(type, "rng-random") == 0) {
        const char *file = keyval_get(&kv, "filename");
        rng->fd = vireo_open(file ? file : "/dev/urandom", O_RDONLY, 0, errp);
        ok = rng->fd >= 0;
    } else if (!type || strcmp(type, "rng-builtin") != 0) {
        error_setg(errp, "object '%s' is not an rng back-end", id);
        ok = false;
    }
    keyval_free(&kv);
    return ok;
}

bool virtio_rng_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    VirtioPciOptions po;
    if (!keyval_parse(opts, "driver", rng_params, &kv, errp)) {
        return false;
    }
    VirtIORng *rng = xzalloc(sizeof(*rng));
    rng->fd = -1;           /* getrandom until a back-end says otherwise; safe to close-check */
    bool ok = virtio_pci_parse_options(&kv, 2, &po, errp) &&
              parse_rate_limit(&kv, rng, errp) &&
              open_backend(ctx, keyval_get(&kv, "rng"), rng, errp);
    if (ok) {
        virtio_device_init(&rng->vdev, "virtio-rng", VIRTIO_ID_RNG, ctx->mem, 0, 1);
        virtio_queue_setup(&rng->vdev, 0, RNG_QUEUE_SIZE, rng_handle_request);
        virtio_pci_apply_feature_props(&kv, &rng->vdev);
        rng->vdev.opaque = rng;
        rng->vdev.ops = &rng_ops;
        rng->refill = timer_new(CLOCK_VIRTUAL, rng_refill, rng);
        ok = virtio_pci_plug(ctx, &kv, "virtio-rng-pci", &rng->vdev, 0x00ff00, &po, errp);
    }
    keyval_free(&kv);
    if (!ok) {
        if (rng->fd >= 0) {
            close(rng->fd);
        }
        if (rng->refill) {
            timer_free(rng->refill);
        }
        free(rng->vdev.config);
        free(rng->vdev.vq);
        free(rng);
    }
    return ok;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *virtio_rng_pci_params(void);
const OptParam *virtio_rng_pci_params(void)
{
    return rng_params;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *rng_object_params_table(void);
const OptParam *rng_object_params_table(void)
{
    return rng_object_params;
}
