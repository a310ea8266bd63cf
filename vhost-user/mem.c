/*
 * The frontend's guest memory and the dirty log.
 *
 * Regions arrive as fds (SET_MEM_TABLE, ADD_MEM_REG) and are mapped through
 * the checked guest-memory API, so every later access is range-checked. Ring
 * addresses arrive as the frontend's own virtual addresses; they are
 * translated to guest addresses through the same table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/osdep.h"
#include "vhost-user/vhost-user.h"

/* Regions must be distinct in the frontend's address space too, or ring
 * addresses would translate ambiguously. */
static bool uva_overlaps(const VuDev *dev, uint64_t uva, uint64_t size)
{
    for (int i = 0; i < dev->mem.nr_regions; i++) {
        uint64_t s = dev->region_uva[i], e = s + dev->mem.regions[i].size;
        if (uva < e && s < uva + size) {
            return true;
        }
    }
    return false;
}

static bool add_region(VuDev *dev, const VhostUserMemoryRegion *r, int fd, Error **errp)
{
    if (r->userspace_addr + r->memory_size < r->userspace_addr ||
        uva_overlaps(dev, r->userspace_addr, r->memory_size)) {
        error_setg(errp, "memory region at user address 0x%llx wraps or overlaps another",
                   (unsigned long long)r->userspace_addr);
        return false;
    }
    int slot = dev->mem.nr_regions;
    if (!guest_memory_add_fd_region(&dev->mem, r->guest_phys_addr, r->memory_size, fd,
                                    r->mmap_offset, errp)) {
        return false;
    }
    dev->region_uva[slot] = r->userspace_addr;
    return true;
}

/*
 * Before mappings go away: finish requests that point into them and stop
 * the started rings (their host pointers would dangle). *was_started says
 * which to start again once the new table is in place.
 */
static void stop_rings(VuDev *dev, bool *was_started)
{
    if (dev->ops->drain) {
        dev->ops->drain(dev);
    }
    for (unsigned q = 0; q < dev->num_queues; q++) {
        was_started[q] = dev->vring[q].started;
        vu_vring_stop(dev, &dev->vring[q]);
    }
}

/* The ring addresses are unchanged; they are mapped (and checked) again. */
static bool restart_rings(VuDev *dev, const bool *was_started, Error **errp)
{
    for (unsigned q = 0; q < dev->num_queues; q++) {
        if (was_started[q] && !vu_vring_start(dev, &dev->vring[q], errp)) {
            return false;
        }
    }
    return true;
}

static void unmap_all(VuDev *dev)
{
    guest_memory_destroy(&dev->mem);
    guest_memory_init_empty(&dev->mem);
}

bool vu_mem_set_table(VuDev *dev, const VhostUserMemory *m, unsigned size, int *fds,
                      unsigned nfds, Error **errp)
{
    if (size < 8 || m->nregions > VHOST_USER_MAX_MEM_REGIONS ||
        size != 8 + m->nregions * sizeof(VhostUserMemoryRegion) || nfds != m->nregions) {
        error_setg(errp, "memory table of %u bytes with %u regions and %u fds",
                   size, size >= 8 ? m->nregions : 0, nfds);
        return false;
    }
    bool was_started[VU_MAX_QUEUES];
    stop_rings(dev, was_started);
    unmap_all(dev);
    for (unsigned i = 0; i < m->nregions; i++) {
        if (!add_region(dev, &m->regions[i], fds[i], errp)) {
            unmap_all(dev);     /* the rings stay stopped */
            return false;
        }
    }
    return restart_rings(dev, was_started, errp);
}

bool vu_mem_add_region(VuDev *dev, const VhostUserMemRegMsg *m, int fd, Error **errp)
{
    return add_region(dev, &m->region, fd, errp);
}

bool vu_mem_rem_region(VuDev *dev, const VhostUserMemRegMsg *m, Error **errp)
{
    const VhostUserMemoryRegion *r = &m->region;
    for (int i = 0; i < dev->mem.nr_regions; i++) {
        const GuestRegion *g = &dev->mem.regions[i];
        if (g->gpa != r->guest_phys_addr || g->size != r->memory_size ||
            dev->region_uva[i] != r->userspace_addr) {
            continue;
        }
        bool was_started[VU_MAX_QUEUES];
        stop_rings(dev, was_started);
        memmove(&dev->region_uva[i], &dev->region_uva[i + 1],
                (size_t)(dev->mem.nr_regions - i - 1) * sizeof(uint64_t));
        return guest_memory_remove_region(&dev->mem, r->guest_phys_addr, r->memory_size,
                                          errp) && restart_rings(dev, was_started, errp);
    }
    error_setg(errp, "no memory region 0x%llx+0x%llx at user address 0x%llx",
               (unsigned long long)r->guest_phys_addr, (unsigned long long)r->memory_size,
               (unsigned long long)r->userspace_addr);
    return false;
}

bool vu_uva_to_gpa(const VuDev *dev, uint64_t uva, uint64_t *gpa)
{
    for (int i = 0; i < dev->mem.nr_regions; i++) {
        uint64_t s = dev->region_uva[i];
        if (uva >= s && uva - s < dev->mem.regions[i].size) {
            *gpa = dev->mem.regions[i].gpa + (uva - s);
            return true;
        }
    }
    return false;
}

void vu_mem_reset(VuDev *dev)
{
    guest_memory_destroy(&dev->mem);
    guest_memory_init_empty(&dev->mem);
    memset(dev->region_uva, 0, sizeof(dev->region_uva));
}

/* ---- dirty log ---- */

void vu_log_reset(VuDev *dev)
{
    if (dev->log_map) {
        munmap(dev->log_map, dev->log_map_len);
    }
    dev->log_map = dev->log_base = NULL;
    dev->log_size = dev->log_map_len = 0;
    if (dev->log_call_fd >= 0) {
        close(dev->log_call_fd);
    }
    dev->log_call_fd = -1;
}

bool vu_log_set_base(VuDev *dev, const VhostUserLog *log, int fd, Error **errp)
{
    struct stat st;
    if (log->mmap_size == 0 || log->mmap_offset > UINT64_MAX - log->mmap_size ||
        fstat(fd, &st) < 0 ||
        (S_ISREG(st.st_mode) && log->mmap_offset + log->mmap_size > (uint64_t)st.st_size)) {
        error_setg(errp, "log area of %llu bytes at offset %llu does not fit its file",
                   (unsigned long long)log->mmap_size, (unsigned long long)log->mmap_offset);
        return false;
    }
    uint64_t len = log->mmap_offset + log->mmap_size;
    uint8_t *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map the dirty log");
        return false;
    }
    int call_fd = dev->log_call_fd;
    dev->log_call_fd = -1;
    vu_log_reset(dev);
    dev->log_call_fd = call_fd;
    dev->log_map = map;
    dev->log_map_len = len;
    dev->log_base = map + log->mmap_offset;
    dev->log_size = log->mmap_size;
    return true;
}

bool vu_logging(const VuDev *dev)
{
    return dev->log_base && (dev->acked_features >> VHOST_F_LOG_ALL & 1);
}

/* Mark every 4 KiB page of [gpa, gpa+len) dirty; the frontend reads concurrently. */
void vu_log_write(VuDev *dev, uint64_t gpa, uint64_t len)
{
    if (!vu_logging(dev) || len == 0) {
        return;
    }
    uint64_t first = gpa / VHOST_LOG_PAGE, last = (gpa + len - 1) / VHOST_LOG_PAGE;
    for (uint64_t page = first; page <= last; page++) {
        if (page / 8 >= dev->log_size) {
            /* The frontend sized the log too small: that is its bug, not a reason
             * to write outside the area. */
            return;
        }
        uint8_t bit = (uint8_t)(1u << (page % 8));
        if (!(__atomic_fetch_or(&dev->log_base[page / 8], bit, __ATOMIC_RELAXED) & bit)) {
            dev->log_pages_marked++;
        }
    }
}
