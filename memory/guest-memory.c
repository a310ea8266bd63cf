#include "memory/guest-memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/osdep.h"

#define FOUR_GIB (4ULL << 30)

#define HUGE_PAGE_SIZE (2ULL << 20)

/*
 * An address range of `size` bytes starting on a 2 MiB boundary. Huge pages
 * (and KVM's 2 MiB nested mappings, which need the host and guest addresses
 * to agree modulo 2 MiB) are only possible on such boundaries.
 */
static void *reserve_aligned(uint64_t size)
{
    uint64_t span = size + HUGE_PAGE_SIZE;
    uint8_t *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return MAP_FAILED;
    }
    uint8_t *start = (uint8_t *)ROUND_UP((uintptr_t)p, HUGE_PAGE_SIZE);
    if (start > p) {
        munmap(p, start - p);
    }
    munmap(start + size, (p + span) - (start + size));
    return start;
}

static bool map_region(GuestMemory *mem, uint64_t gpa, uint64_t size,
                       uint64_t fd_offset, Error **errp)
{
    void *hva = reserve_aligned(size);
    if (hva != MAP_FAILED) {
        hva = mem->fd >= 0
            ? mmap(hva, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mem->fd,
                   (off_t)fd_offset)
            : mmap(hva, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    }
    if (hva == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map %llu bytes of guest RAM",
                         (unsigned long long)size);
        return false;
    }
    /* Guest RAM is large and mostly untouched: keep it out of core dumps. */
    madvise(hva, size, MADV_DONTDUMP);
    if (mem->fd < 0) {
        madvise(hva, size, MADV_HUGEPAGE);  /* best effort: THP may be off */
    }
    mem->regions[mem->nr_regions++] = (GuestRegion){
        .gpa = gpa, .size = size, .fd_offset = fd_offset, .hva = hva,
    };
    return true;
}

static bool map_layout(GuestMemory *mem, uint64_t ram_size, uint64_t lowmem_limit,
                       Error **errp)
{
    mem->ram_size = ram_size;
    uint64_t low = MIN(ram_size, lowmem_limit);
    if (!map_region(mem, 0, low, 0, errp)) {
        guest_memory_destroy(mem);
        return false;
    }
    if (ram_size > low &&
        !map_region(mem, FOUR_GIB, ram_size - low, low, errp)) {
        guest_memory_destroy(mem);
        return false;
    }
    return true;
}

static bool start_empty(GuestMemory *mem, uint64_t ram_size, Error **errp)
{
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
    if (ram_size == 0) {
        error_setg(errp, "guest RAM size must be greater than 0");
        return false;
    }
    return true;
}

bool guest_memory_create(GuestMemory *mem, uint64_t ram_size,
                         uint64_t lowmem_limit, Error **errp)
{
    if (!start_empty(mem, ram_size, errp)) {
        return false;
    }
    int fd = memfd_create("vireo-guest-ram", MFD_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "memfd_create");
        return false;
    }
    if (ftruncate(fd, (off_t)ram_size) < 0) {
        error_setg_errno(errp, errno, "cannot size guest RAM to %llu bytes",
                         (unsigned long long)ram_size);
        close(fd);
        return false;
    }
    mem->fd = fd;
    return map_layout(mem, ram_size, lowmem_limit, errp);
}

bool guest_memory_create_private(GuestMemory *mem, uint64_t ram_size,
                                 uint64_t lowmem_limit, Error **errp)
{
    if (!start_empty(mem, ram_size, errp)) {
        return false;
    }
    return map_layout(mem, ram_size, lowmem_limit, errp);
}

void guest_memory_destroy(GuestMemory *mem)
{
    for (int i = 0; i < mem->nr_regions; i++) {
        munmap(mem->regions[i].hva, mem->regions[i].size);
    }
    if (mem->fd >= 0) {
        close(mem->fd);
    }
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
}

void *gmem_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    for (int i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (gpa >= r->gpa && range_within(gpa - r->gpa, len, r->size)) {
            return r->hva + (gpa - r->gpa);
        }
    }
    return NULL;
}

bool gmem_read(const GuestMemory *mem, uint64_t gpa, void *buf, uint64_t len)
{
    void *p = gmem_ptr(mem, gpa, len);
    if (!p) {
        return false;
    }
    memcpy(buf, p, len);
    return true;
}

bool gmem_write(const GuestMemory *mem, uint64_t gpa, const void *buf, uint64_t len)
{
    void *p = gmem_ptr(mem, gpa, len);
    if (!p) {
        return false;
    }
    memcpy(p, buf, len);
    return true;
}

bool gmem_fill(const GuestMemory *mem, uint64_t gpa, uint8_t byte, uint64_t len)
{
    void *p = gmem_ptr(mem, gpa, len);
    if (!p) {
        return false;
    }
    memset(p, byte, len);
    return true;
}

/* x86 hosts and guests are both little-endian: plain copies are the LE encoding. */
#define GMEM_SCALAR(bits)                                                    \
    bool gmem_read_u##bits(const GuestMemory *mem, uint64_t gpa,             \
                           uint##bits##_t *val)                              \
    {                                                                        \
        return gmem_read(mem, gpa, val, sizeof(*val));                       \
    }                                                                        \
    bool gmem_write_u##bits(const GuestMemory *mem, uint64_t gpa,            \
                            uint##bits##_t val)                              \
    {                                                                        \
        return gmem_write(mem, gpa, &val, sizeof(val));                      \
    }

GMEM_SCALAR(16)
GMEM_SCALAR(32)
GMEM_SCALAR(64)
