#include "virtio/vhost.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "memory/guest-memory.h"
#include "util/osdep.h"

struct VhostDev {
    int fd;
    unsigned vq_index, nvqs;
    uint64_t features;          /* what the kernel back-end implements */
    bool started;
    VhostDevInfo info;
};

VhostDev *vhost_dev_open(const char *path, int fd, unsigned vq_index, unsigned nvqs,
                         Error **errp)
{
    if (fd < 0) {
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            error_setg_errno(errp, errno, "vhost: cannot open %s", path);
            return NULL;
        }
    }
    uint64_t features = 0, backend = 0;
    if (ioctl(fd, VHOST_SET_OWNER) < 0 || ioctl(fd, VHOST_GET_FEATURES, &features) < 0) {
        error_setg_errno(errp, errno, "vhost: %s refused its owner set-up", path);
        close(fd);
        return NULL;
    }
    if (ioctl(fd, VHOST_GET_BACKEND_FEATURES, &backend) < 0) {
        backend = 0;            /* older kernels: no back-end capabilities */
    }
    VhostDev *dev = xzalloc(sizeof(*dev));
    dev->fd = fd;
    dev->vq_index = vq_index;
    dev->nvqs = nvqs;
    dev->features = features;
    dev->info = (VhostDevInfo){
        .nvqs = nvqs, .vq_index = vq_index, .features = features,
        .max_queues = 1, .backend_cap = backend, .dev = dev,
    };
    dev->info.vq = xzalloc(nvqs * sizeof(*dev->info.vq));
    return dev;
}

void vhost_dev_close(VhostDev *dev)
{
    if (!dev) {
        return;
    }
    close(dev->fd);
    free(dev->info.vq);
    free(dev);
}

uint64_t vhost_dev_features(const VhostDev *dev)
{
    return dev->features;
}

bool vhost_dev_started(const VhostDev *dev)
{
    return dev && dev->started;
}

VhostDevInfo *vhost_dev_info(VhostDev *dev)
{
    return &dev->info;
}

/* The kernel reads guest RAM through vireo's own mappings of it. */
static bool set_mem_table(VhostDev *dev, const GuestMemory *mem, Error **errp)
{
    size_t size = sizeof(struct vhost_memory) +
                  mem->nr_regions * sizeof(struct vhost_memory_region);
    struct vhost_memory *table = xzalloc(size);
    table->nregions = mem->nr_regions;
    for (int i = 0; i < mem->nr_regions; i++) {
        table->regions[i] = (struct vhost_memory_region){
            .guest_phys_addr = mem->regions[i].gpa,
            .memory_size = mem->regions[i].size,
            .userspace_addr = (uint64_t)(uintptr_t)mem->regions[i].hva,
        };
    }
    bool ok = ioctl(dev->fd, VHOST_SET_MEM_TABLE, table) == 0;
    free(table);
    if (!ok) {
        error_setg_errno(errp, errno, "vhost: memory table refused");
        return false;
    }
    /* Sections in the table, and in the update that built it (one update here). */
    dev->info.n_mem_sections = dev->info.n_tmp_sections = mem->nr_regions;
    return true;
}

/* One ring: size, position, addresses (checked to lie in RAM), eventfds. */
static bool start_ring(VhostDev *dev, VirtIODevice *vdev, unsigned i, Error **errp)
{
    unsigned q = dev->vq_index + i;
    VirtQueue *vq = &vdev->vq[q];
    uint64_t desc_size = 16ULL * vq->num, avail_size = 6 + 2ULL * vq->num,
             used_size = 6 + 8ULL * vq->num;
    void *desc = gmem_ptr(vdev->mem, vq->desc, desc_size);
    void *avail = gmem_ptr(vdev->mem, vq->avail, avail_size);
    void *used = gmem_ptr(vdev->mem, vq->used, used_size);
    if (!desc || !avail || !used) {
        error_setg(errp, "vhost: queue %u rings are outside guest RAM", q);
        return false;
    }
    struct vhost_vring_state num = { .index = i, .num = vq->num };
    struct vhost_vring_state base = { .index = i, .num = vq->last_avail_idx };
    struct vhost_vring_addr addr = {
        .index = i,
        .desc_user_addr = (uint64_t)(uintptr_t)desc,
        .avail_user_addr = (uint64_t)(uintptr_t)avail,
        .used_user_addr = (uint64_t)(uintptr_t)used,
        .log_guest_addr = vq->used,
    };
    int kick = vdev->transport->kick_fd ? vdev->transport->kick_fd(vdev, q, true) : -1;
    int call = vdev->transport->call_fd ? vdev->transport->call_fd(vdev, q) : -1;
    if (kick < 0 || call < 0) {
        error_setg(errp, "vhost: queue %u has no %s eventfd (needs KVM and MSI-X)", q,
                   kick < 0 ? "kick" : "call");
        return false;
    }
    struct vhost_vring_file kick_file = { .index = i, .fd = kick };
    struct vhost_vring_file call_file = { .index = i, .fd = call };
    if (ioctl(dev->fd, VHOST_SET_VRING_NUM, &num) < 0 ||
        ioctl(dev->fd, VHOST_SET_VRING_BASE, &base) < 0 ||
        ioctl(dev->fd, VHOST_SET_VRING_ADDR, &addr) < 0 ||
        ioctl(dev->fd, VHOST_SET_VRING_KICK, &kick_file) < 0 ||
        ioctl(dev->fd, VHOST_SET_VRING_CALL, &call_file) < 0) {
        error_setg_errno(errp, errno, "vhost: queue %u set-up refused", q);
        return false;
    }
    vhost_dev_info_set_queue(&dev->info, i, vq, desc_size, avail_size, used_size);
    return true;
}

/* Ring positions come back from the kernel; the used index from the ring. */
static void stop_ring(VhostDev *dev, VirtIODevice *vdev, unsigned i)
{
    unsigned q = dev->vq_index + i;
    VirtQueue *vq = &vdev->vq[q];
    struct vhost_vring_state base = { .index = i };
    if (ioctl(dev->fd, VHOST_GET_VRING_BASE, &base) == 0) {
        vq->last_avail_idx = vq->shadow_avail_idx = base.num;
    }
    uint16_t used_idx;
    if (gmem_read(vdev->mem, vq->used + 2, &used_idx, 2)) {
        vq->used_idx = le16toh(used_idx);
    }
    vq->inuse = 0;
    vq->signalled_used_valid = false;
    if (vdev->transport->kick_fd) {
        vdev->transport->kick_fd(vdev, q, false);
    }
}

bool vhost_dev_start(VhostDev *dev, VirtIODevice *vdev, uint64_t acked_features,
                     Error **errp)
{
    if (dev->vq_index + dev->nvqs > vdev->nvqs) {
        error_setg(errp, "vhost: queues %u..%u do not exist", dev->vq_index,
                   dev->vq_index + dev->nvqs - 1);
        return false;
    }
    uint64_t acked = acked_features & dev->features;
    if (!set_mem_table(dev, vdev->mem, errp)) {
        return false;
    }
    if (ioctl(dev->fd, VHOST_SET_FEATURES, &acked) < 0) {
        error_setg_errno(errp, errno, "vhost: features 0x%llx refused",
                         (unsigned long long)acked);
        return false;
    }
    dev->info.acked_features = acked;
    for (unsigned i = 0; i < dev->nvqs; i++) {
        if (!start_ring(dev, vdev, i, errp)) {
            if (vdev->transport->kick_fd) {     /* the ring that failed half-way */
                vdev->transport->kick_fd(vdev, dev->vq_index + i, false);
            }
            while (i--) {
                stop_ring(dev, vdev, i);
            }
            return false;
        }
    }
    dev->started = true;
    return true;
}

void vhost_dev_stop(VhostDev *dev, VirtIODevice *vdev)
{
    if (!dev->started) {
        return;
    }
    for (unsigned i = 0; i < dev->nvqs; i++) {
        stop_ring(dev, vdev, i);
    }
    dev->started = false;
}

int vhost_dev_last_avail_idx(VhostDev *dev, unsigned q)
{
    struct vhost_vring_state base = { .index = q - dev->vq_index };
    if (!dev->started || q < dev->vq_index || q >= dev->vq_index + dev->nvqs ||
        ioctl(dev->fd, VHOST_GET_VRING_BASE, &base) < 0) {
        return -1;
    }
    return base.num;
}

bool vhost_net_set_backend(VhostDev *dev, int tap_fd, Error **errp)
{
    for (unsigned i = 0; i < dev->nvqs; i++) {
        struct vhost_vring_file f = { .index = i, .fd = tap_fd };
        if (ioctl(dev->fd, VHOST_NET_SET_BACKEND, &f) < 0) {
            error_setg_errno(errp, errno, "vhost-net: cannot %s the tap on queue %u",
                             tap_fd < 0 ? "detach" : "attach", dev->vq_index + i);
            return false;
        }
    }
    return true;
}
