/*
 * Kernel vhost back-ends (/dev/vhost-net): the host kernel runs a device's
 * virtqueues itself. vireo hands it guest RAM (as a memory table), each
 * ring's addresses and position, the transport's kick eventfd (filled by
 * KVM's ioeventfd) and call eventfd (an irqfd into the guest), and gets
 * the ring positions back on stop, so the userspace device can carry on
 * where vhost left off.
 *
 * One VhostDev covers nvqs consecutive queues of a device starting at
 * vq_index (for net: one rx/tx pair). Its state is what
 * x-query-virtio-status and x-query-virtio-vhost-queue-status report.
 */
#ifndef VIREO_VIRTIO_VHOST_H
#define VIREO_VIRTIO_VHOST_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"
#include "virtio/virtio.h"

typedef struct VhostDev VhostDev;

/* Open and own a vhost character device (fd >= 0: one passed in already open). */
VhostDev *vhost_dev_open(const char *path, int fd, unsigned vq_index, unsigned nvqs,
                         Error **errp);
void vhost_dev_close(VhostDev *dev);

/* Features the kernel back-end implements (VHOST_GET_FEATURES). */
uint64_t vhost_dev_features(const VhostDev *dev);

/*
 * Run the queues in the kernel: memory table, acked features, rings, kick
 * and call eventfds from the transport. On failure nothing stays started.
 */
bool vhost_dev_start(VhostDev *dev, VirtIODevice *vdev, uint64_t acked_features,
                     Error **errp);
/* Take the queues back: their positions return to vdev's VirtQueues. */
void vhost_dev_stop(VhostDev *dev, VirtIODevice *vdev);
bool vhost_dev_started(const VhostDev *dev);

/* vhost-net: attach a tap queue to every ring of dev (fd -1 detaches). */
bool vhost_net_set_backend(VhostDev *dev, int tap_fd, Error **errp);

/* Where the kernel is in queue q's avail ring (q is the device's index), or -1. */
int vhost_dev_last_avail_idx(VhostDev *dev, unsigned q);

/* The introspection view of dev (owned by dev, valid until close). */
VhostDevInfo *vhost_dev_info(VhostDev *dev);

#endif
