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

#include "util/osdep.h"
#include "virtio/virtio-pci.h"

#define RNG_QUEUE_SIZE  8
#define RNG_CHUNK_MAX   (64 * 1024)     /* per request: guests ask for small amounts */

typedef struct VirtIORng {
    VirtIODevice vdev;
    int fd;                 /* rng-random source; -1: getrandom */
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

/* Fill every buffer the driver offers; each request gets what we have. */
static void rng_handle_request(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIORng *rng = container_of(vdev, VirtIORng, vdev);
    uint8_t *buf = xmalloc(RNG_CHUNK_MAX);
    VirtQueueElement elem;
    while (virtqueue_pop(vq, &elem)) {
        size_t want = MIN(elem.in_len, RNG_CHUNK_MAX);
        ssize_t got = want ? read_entropy(rng, buf, want) : 0;
        size_t done = got > 0 ? iov_from_buf(elem.in_sg, elem.in_num, 0, buf, got) : 0;
        virtqueue_push(vq, &elem, done);
        virtqueue_element_free(&elem);
    }
    free(buf);
    virtqueue_notify(vq);
}

static bool open_backend(const VirtioCreateContext *ctx, const char *id, VirtIORng *rng,
                         Error **errp)
{
    rng->fd = -1;
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
    bool ok = virtio_pci_parse_options(&kv, 2, &po, errp) &&
              open_backend(ctx, keyval_get(&kv, "rng"), rng, errp);
    if (ok) {
        virtio_device_init(&rng->vdev, "virtio-rng", VIRTIO_ID_RNG, ctx->mem, 0, 1);
        virtio_queue_setup(&rng->vdev, 0, RNG_QUEUE_SIZE, rng_handle_request);
        virtio_pci_apply_feature_props(&kv, &rng->vdev);
        rng->vdev.opaque = rng;
        ok = virtio_pci_plug(ctx, &kv, "virtio-rng-pci", &rng->vdev, 0x00ff00, &po, errp);
    }
    keyval_free(&kv);
    if (!ok) {
        if (rng->fd >= 0) {
            close(rng->fd);
        }
        free(rng->vdev.config);
        free(rng->vdev.vq);
        free(rng);
    }
    return ok;
}
