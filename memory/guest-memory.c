#include "memory/guest-memory.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

bool guest_memory_create_on_fd(GuestMemory *mem, int fd, uint64_t ram_size,
                               uint64_t lowmem_limit, Error **errp)
{
    if (!start_empty(mem, ram_size, errp)) {
        return false;
    }
    mem->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (mem->fd < 0) {
        error_setg_errno(errp, errno, "cannot duplicate the guest RAM descriptor");
        return false;
    }
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

/* The system call itself: ASan's mlock() wrapper returns 0 and locks nothing. */
static int lock_range(void *p, size_t len)
{
    return (int)syscall(SYS_mlock, p, len);
}

bool guest_memory_lock(GuestMemory *mem, Error **errp)
{
    for (int i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (lock_range(r->hva, r->size) < 0) {
            error_setg_errno(errp, errno, "mem-lock=on: cannot lock %llu bytes of guest RAM "
                             "(RLIMIT_MEMLOCK, or CAP_IPC_LOCK)",
                             (unsigned long long)r->size);
            for (int j = 0; j < i; j++) {
                munlock(mem->regions[j].hva, mem->regions[j].size);
            }
            return false;
        }
    }
    mem->locked = true;
    return true;
}

static void unmap_region(GuestRegion *r)
{
    if (r->map_base) {
        munmap(r->map_base, r->map_len);
    } else {
        munmap(r->hva, r->size);
    }
}

void guest_memory_destroy(GuestMemory *mem)
{
    for (int i = 0; i < mem->nr_regions; i++) {
        unmap_region(&mem->regions[i]);
    }
    if (mem->fd >= 0) {
        close(mem->fd);
    }
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
}

void guest_memory_init_empty(GuestMemory *mem)
{
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
}

static bool region_overlaps(const GuestMemory *mem, uint64_t gpa, uint64_t size)
{
    for (int i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size) {
            return true;
        }
    }
    return false;
}

/* Refuse what cannot be mapped safely: touching a page past EOF is SIGBUS. */
static bool fd_region_valid(const GuestMemory *mem, uint64_t gpa, uint64_t size, int fd,
                            uint64_t mmap_offset, Error **errp)
{
    struct stat st;
    if (mem->nr_regions >= GUEST_MEMORY_MAX_REGIONS) {
        error_setg(errp, "no free memory slot (%d in use)", mem->nr_regions);
        return false;
    }
    if (size == 0 || gpa + size < gpa || mmap_offset + size < mmap_offset ||
        mmap_offset > INT64_MAX - size) {
        error_setg(errp, "memory region 0x%llx+0x%llx (offset 0x%llx) is empty or wraps",
                   (unsigned long long)gpa, (unsigned long long)size,
                   (unsigned long long)mmap_offset);
        return false;
    }
    if (region_overlaps(mem, gpa, size)) {
        error_setg(errp, "memory region 0x%llx+0x%llx overlaps another",
                   (unsigned long long)gpa, (unsigned long long)size);
        return false;
    }
    if (fstat(fd, &st) < 0 || (S_ISREG(st.st_mode) &&
                               mmap_offset + size > (uint64_t)st.st_size)) {
        error_setg(errp, "memory region 0x%llx+0x%llx ends past its file",
                   (unsigned long long)gpa, (unsigned long long)size);
        return false;
    }
    return true;
}

bool guest_memory_add_fd_region(GuestMemory *mem, uint64_t gpa, uint64_t size, int fd,
                                uint64_t mmap_offset, Error **errp)
{
    if (!fd_region_valid(mem, gpa, size, fd, mmap_offset, errp)) {
        return false;
    }
    /* mmap wants a page-aligned file offset; the region may start inside a page. */
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t skew = mmap_offset % page;
    uint64_t len = size + skew;
    uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
                         (off_t)(mmap_offset - skew));
    if (base == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map memory region 0x%llx+0x%llx",
                         (unsigned long long)gpa, (unsigned long long)size);
        return false;
    }
    madvise(base, len, MADV_DONTDUMP);
    mem->regions[mem->nr_regions++] = (GuestRegion){
        .gpa = gpa, .size = size, .fd_offset = mmap_offset, .hva = base + skew,
        .map_base = base, .map_len = len,
    };
    mem->ram_size += size;
    return true;
}

bool guest_memory_remove_region(GuestMemory *mem, uint64_t gpa, uint64_t size, Error **errp)
{
    for (int i = 0; i < mem->nr_regions; i++) {
        GuestRegion *r = &mem->regions[i];
        if (r->gpa == gpa && r->size == size) {
            unmap_region(r);
            mem->ram_size -= size;
            memmove(r, r + 1, (size_t)(mem->nr_regions - i - 1) * sizeof(*r));
            mem->nr_regions--;
            return true;
        }
    }
    error_setg(errp, "no memory region 0x%llx+0x%llx", (unsigned long long)gpa,
               (unsigned long long)size);
    return false;
}

bool gmem_gpa_of(const GuestMemory *mem, const void *hva, uint64_t len, uint64_t *gpa)
{
    uintptr_t p = (uintptr_t)hva;
    for (int i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        uintptr_t start = (uintptr_t)r->hva;
        if (p >= start && range_within(p - start, len, r->size)) {
            *gpa = r->gpa + (p - start);
            return true;
        }
    }
    return false;
}

/* The region holding all of [gpa, gpa + len), or NULL. */
static const GuestRegion *region_of(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    for (int i = 0; i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (gpa >= r->gpa && range_within(gpa - r->gpa, len, r->size)) {
            return r;
        }
    }
    return NULL;
}

void *gmem_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    const GuestRegion *r = region_of(mem, gpa, len);
    return r ? r->hva + (gpa - r->gpa) : NULL;
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

bool gmem_discard(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const GuestRegion *r = region_of(mem, gpa, len);
    if (!r || mem->locked || len % page) {
        return false;
    }
    uint64_t off = gpa - r->gpa;
    if ((uintptr_t)(r->hva + off) % page) {
        return false;
    }
    if (mem->fd < 0) {
        return madvise(r->hva + off, len, MADV_DONTNEED) == 0;
    }
    /* Shared pages live in the memfd: unmapping ours would leave them there. */
    return fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     (off_t)(r->fd_offset + off), (off_t)len) == 0;
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
