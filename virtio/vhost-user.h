/*
 * The vhost-user frontend: a device's virtqueues run in another process
 * (qemu-storage-daemon, virtiofsd, DPDK...) reached through a UNIX socket
 * chardev. vireo negotiates features, shares guest RAM as fds, hands each
 * ring's kick eventfd (the queue's KVM ioeventfd) and call eventfd (the
 * MSI-X vector's irqfd) to the back-end, and takes ring positions back on
 * stop, as virtio/vhost.c does for the kernel. Under the qtest accelerator,
 * or without MSI-X, vireo relays kicks and calls through its main loop.
 *
 * The back-end is hostile input: every reply is checked (size, request id,
 * reply flag, descriptor count) and waited for at most a few seconds. A
 * back-end that breaks the protocol or goes away leaves the device broken
 * (NEEDS_RESET) while the VM runs on; with the chardev's reconnect=N the
 * device instead waits for the back-end to come back and replays its set-up.
 *
 * One VhostUserDev serves nvqs consecutive queues of one virtio device from
 * vq_index; its introspection view is what x-query-virtio-status reports.
 */
#ifndef VIREO_VIRTIO_VHOST_USER_H
#define VIREO_VIRTIO_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "chardev/chardev.h"
#include "util/error.h"
#include "virtio/virtio.h"

typedef struct VhostUserDev VhostUserDev;

/*
 * How long a back-end may take to answer one request. Generous: on a
 * loaded host dpdk-testpmd took more than 3 s to map a 256 MiB memory table,
 * and a back-end that is slow but alive must not lose its device. A silent
 * one still costs this much only once (the device is then broken).
 */
#define VHOST_USER_REPLY_TIMEOUT_MS 30000

/* What a device wants from the protocol beyond the basics. */
typedef struct VhostUserSetup {
    const char *name;           /* "vhost-user-blk", for messages */
    unsigned vq_index, nvqs;    /* the queues the back-end runs */
    unsigned units;             /* queues the back-end must offer (GET_QUEUE_NUM, 1
                                 * without MQ); net counts pairs; 0: no check */
    bool want_config;           /* GET_CONFIG/SET_CONFIG needed (blk) */
    bool want_inflight;         /* keep an inflight area across restarts (blk) */
    /* virtio feature bits that only count if the back-end offers them */
    const unsigned *feature_bits;   /* ends with UINT32_MAX */
    /* The back-end announced a configuration change (its channel's
     * CONFIG_CHANGE_MSG); NULL: such announcements are refused. */
    void (*config_change)(VirtIODevice *vdev);
    /* Queues x-query-virtio-status counts in nvqs (0: nvqs). QEMU runs a
     * vhost device per net queue pair and reports the first: 2. */
    unsigned info_nvqs;
} VhostUserSetup;

/*
 * Connect through chr (a UNIX client socket) and negotiate: features,
 * protocol features, queue count (MQ), owner. Fails at once, with a clear
 * error, when the back-end is missing, guest RAM is private, the back-end
 * lacks what the device needs or offers fewer queues than asked for.
 */
VhostUserDev *vhost_user_connect(Chardev *chr, VirtIODevice *vdev, const VhostUserSetup *setup,
                                 Error **errp);
void vhost_user_free(VhostUserDev *dev);

/* host_features with every listed bit the back-end lacks cleared. */
uint64_t vhost_user_mask_features(const VhostUserDev *dev, uint64_t host_features);
/* Queues the back-end offers (GET_QUEUE_NUM; 1 without MQ). */
uint64_t vhost_user_max_queues(const VhostUserDev *dev);

/* Device configuration space from the back-end (GET_CONFIG). */
bool vhost_user_get_config(VhostUserDev *dev, uint8_t *buf, uint32_t len, Error **errp);
/* Driver writes config bytes [offset, offset+len) (SET_CONFIG). */
bool vhost_user_set_config(VhostUserDev *dev, const uint8_t *data, uint32_t offset,
                           uint32_t len, Error **errp);

/*
 * Hand the rings to the back-end (the driver set DRIVER_OK), or take them
 * back (reset, quit): GET_VRING_BASE stops each ring and its position
 * returns to the device's VirtQueue. A failure marks the device broken.
 */
void vhost_user_start(VhostUserDev *dev);
void vhost_user_stop(VhostUserDev *dev);
/* The device was reset by its driver: in-flight state is void. */
void vhost_user_reset(VhostUserDev *dev);
/*
 * The driver wrote the device status: with DRIVER_OK (and the device not
 * broken) the rings go to the back-end; without it they come back.
 */
void vhost_user_set_status(VhostUserDev *dev);

/* SET_VRING_ENABLE for queue q (net: the pairs the driver uses). */
void vhost_user_enable_queue(VhostUserDev *dev, unsigned q, bool on);

/* Queue q was kicked through vireo (no ioeventfd): pass it on. */
void vhost_user_kick(VhostUserDev *dev, unsigned q);

#endif
