/*
 * Guest physical memory.
 *
 * Guest RAM is one memfd (so vhost-user back-ends and ivshmem peers can map
 * it), mapped into vireo in one or more regions of guest-physical space (on
 * x86 RAM above the 32-bit PCI hole continues at 4 GiB). A machine that
 * shares nothing may ask for private anonymous RAM instead: no fd, but the
 * host can back it with transparent huge pages (which shmem usually cannot
 * have), so the guest takes far fewer nested-paging faults.
 *
 * Everything the guest or an image hands us is hostile: an address/length
 * pair from a descriptor, a DMA register, a boot parameter. All access goes
 * through the helpers below, which check the whole range with overflow-safe
 * arithmetic and never touch memory outside a region. A range that crosses
 * from one region into a gap is refused, not truncated.
 */
#ifndef VIREO_MEMORY_GUEST_MEMORY_H
#define VIREO_MEMORY_GUEST_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* A VMM uses one or two; a vhost-user back-end takes up to 32 memory slots. */
#define GUEST_MEMORY_MAX_REGIONS 32

typedef struct GuestRegion {
    uint64_t gpa;           /* first guest-physical address */
    uint64_t size;          /* bytes */
    uint64_t fd_offset;     /* where the region starts inside the memfd */
    uint8_t *hva;           /* host mapping */
    uint8_t *map_base;      /* what to munmap when it is not hva (fd regions) */
    uint64_t map_len;
} GuestRegion;

typedef struct GuestMemory {
    int fd;                 /* the memfd; -1 when not created or private */
    uint64_t ram_size;      /* total RAM bytes */
    int nr_regions;
    GuestRegion regions[GUEST_MEMORY_MAX_REGIONS];
    bool locked;            /* guest_memory_lock(): pages stay, never discarded */
} GuestMemory;

/*
 * Create ram_size bytes of RAM. RAM below 4 GiB stops at lowmem_limit; the
 * rest continues at 4 GiB (lowmem_limit = UINT64_MAX keeps it in one region).
 */
bool guest_memory_create(GuestMemory *mem, uint64_t ram_size,
                         uint64_t lowmem_limit, Error **errp);
/* The same layout on an existing shareable fd (a memory backend's; dup'ed). */
bool guest_memory_create_on_fd(GuestMemory *mem, int fd, uint64_t ram_size,
                               uint64_t lowmem_limit, Error **errp);
/* The same layout in private anonymous memory (fd stays -1), THP-advised. */
bool guest_memory_create_private(GuestMemory *mem, uint64_t ram_size,
                                 uint64_t lowmem_limit, Error **errp);
void guest_memory_destroy(GuestMemory *mem);
/*
 * Keep every page of guest RAM in host memory (-overcommit mem-lock=on):
 * populated and locked now, never swapped, and never given back to the host
 * (a balloon inflate then frees nothing, as with QEMU's locked memory).
 */
bool guest_memory_lock(GuestMemory *mem, Error **errp);

/*
 * Memory handed over by another process as fds (a vhost-user back-end's
 * view of its frontend's guest RAM): start with no regions, then map
 * [mmap_offset, mmap_offset+size) of fd at gpa. A region that wraps,
 * overlaps another, lies past the end of the file or does not fit in the
 * table is refused. The fd is not kept: the caller closes it.
 */
void guest_memory_init_empty(GuestMemory *mem);
bool guest_memory_add_fd_region(GuestMemory *mem, uint64_t gpa, uint64_t size, int fd,
                                uint64_t mmap_offset, Error **errp);
/* Unmap the region that is exactly [gpa, gpa+size). */
bool guest_memory_remove_region(GuestMemory *mem, uint64_t gpa, uint64_t size, Error **errp);

/* Host pointer to [gpa, gpa+len) if it lies wholly inside one region, else NULL. */
void *gmem_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len);

/* The guest address of host range [hva, hva+len) if it lies wholly in one region. */
bool gmem_gpa_of(const GuestMemory *mem, const void *hva, uint64_t len, uint64_t *gpa);

/* Copy to/from guest memory; false (nothing copied) if any byte is outside RAM. */
bool gmem_read(const GuestMemory *mem, uint64_t gpa, void *buf, uint64_t len);
bool gmem_write(const GuestMemory *mem, uint64_t gpa, const void *buf, uint64_t len);
bool gmem_fill(const GuestMemory *mem, uint64_t gpa, uint8_t byte, uint64_t len);
/*
 * Give the host memory behind [gpa, gpa + len) back (the guest reads zeros
 * there afterwards): a hole punched in shared RAM's memfd, dropped pages in
 * private RAM. False, and nothing freed, outside RAM, unaligned to host
 * pages, or when the memory is locked.
 */
bool gmem_discard(const GuestMemory *mem, uint64_t gpa, uint64_t len);

/* Little-endian scalar accessors (the guest is x86). */
bool gmem_read_u16(const GuestMemory *mem, uint64_t gpa, uint16_t *val);
bool gmem_read_u32(const GuestMemory *mem, uint64_t gpa, uint32_t *val);
bool gmem_read_u64(const GuestMemory *mem, uint64_t gpa, uint64_t *val);
bool gmem_write_u16(const GuestMemory *mem, uint64_t gpa, uint16_t val);
bool gmem_write_u32(const GuestMemory *mem, uint64_t gpa, uint32_t val);
bool gmem_write_u64(const GuestMemory *mem, uint64_t gpa, uint64_t val);

#endif
