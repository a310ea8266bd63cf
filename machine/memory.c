#include "machine/memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/osdep.h"

#define FOUR_GIB (4ULL << 30)

static bool map_region(GuestMemory *mem, uint64_t gpa, uint64_t size,
                       uint64_t fd_offset, Error **errp)
{
    void *hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                     mem->fd, (off_t)fd_offset);
    if (hva == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map %llu bytes of guest RAM",
                         (unsigned long long)size);
        return false;
    }
    /* Guest RAM is large and mostly untouched: keep it out of core dumps. */
    madvise(hva, size, MADV_DONTDUMP);
    mem->regions[mem->nr_regions++] = (GuestRegion){
        .gpa = gpa, .size = size, .fd_offset = fd_offset, .hva = hva,
    };
    return true;
}

bool guest_memory_create(GuestMemory *mem, uint64_t ram_size,
                         uint64_t lowmem_limit, Error **errp)
{
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
    if (ram_size == 0) {
        error_setg(errp, "guest RAM size must be greater than 0");
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
