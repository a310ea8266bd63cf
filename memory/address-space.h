/*
 * Port I/O and MMIO dispatch: devices register the ranges they decode; the
 * accelerator (KVM exits, or the qtest protocol) dispatches guest accesses.
 *
 * Accesses to addresses no device claims read as all ones and drop writes,
 * as on a PC bus. Regions may not overlap; PCI BARs move with io_region_move.
 * Dispatch runs under the big lock (core/lock.h), so device callbacks never
 * race with each other or with the main loop.
 */
#ifndef VIREO_MEMORY_ADDRESS_SPACE_H
#define VIREO_MEMORY_ADDRESS_SPACE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef enum AddressSpaceId {
    AS_PIO,     /* x86 I/O ports, 0..0xffff */
    AS_MMIO,    /* guest-physical addresses not backed by RAM */
    AS__MAX,
} AddressSpaceId;

typedef struct IoOps {
    /* offset is relative to the region base; size is 1, 2, 4 or 8 */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
} IoOps;

typedef struct IoRegion IoRegion;

IoRegion *io_region_add(AddressSpaceId as, const char *name, uint64_t base,
                        uint64_t size, const IoOps *ops, void *opaque,
                        Error **errp);
/* Move a region (PCI BAR reprogramming); false if the new place overlaps. */
bool io_region_move(IoRegion *r, uint64_t new_base, Error **errp);
/* Enable/disable decoding without forgetting the region (PCI command register). */
void io_region_set_enabled(IoRegion *r, bool enabled);
void io_region_del(IoRegion *r);

uint64_t io_region_base(const IoRegion *r);

/*
 * Perform one guest access. Returns false when no region claims addr (reads
 * then yield all ones in *val). Accesses that straddle the end of a region
 * are refused the same way.
 */
bool io_dispatch_read(AddressSpaceId as, uint64_t addr, unsigned size, uint64_t *val);
bool io_dispatch_write(AddressSpaceId as, uint64_t addr, unsigned size, uint64_t val);

/* For 'info mtree'-like listings: call fn for each enabled region in address order. */
void io_region_foreach(AddressSpaceId as,
                       void (*fn)(void *ctx, const char *name, uint64_t base, uint64_t size),
                       void *ctx);

/*
 * Doorbells without an exit to vireo. A guest write of `size` bytes to
 * `addr` that only has to wake a device (a virtqueue kick) can be completed
 * by the accelerator itself: it signals `eventfd`, which the device watches
 * from the main loop, and the vCPU goes straight back into the guest. KVM
 * does this with KVM_IOEVENTFD; the qtest accelerator has no such path, and
 * writes then reach the region's IoOps as usual. Any value written matches.
 */
typedef struct IoEventfdBackend {
    bool (*add)(void *opaque, AddressSpaceId as, uint64_t addr, unsigned size, int eventfd);
    void (*del)(void *opaque, AddressSpaceId as, uint64_t addr, unsigned size, int eventfd);
    /* Optional: only a write of exactly `data` signals (KVM's datamatch). */
    bool (*add_match)(void *opaque, AddressSpaceId as, uint64_t addr, unsigned size,
                      int eventfd, uint64_t data);
    void (*del_match)(void *opaque, AddressSpaceId as, uint64_t addr, unsigned size,
                      int eventfd, uint64_t data);
    void *opaque;
} IoEventfdBackend;

void io_eventfd_set_backend(const IoEventfdBackend *backend);
bool io_eventfd_available(void);
/* False when there is no back-end or it refused: the caller keeps the IoOps path. */
bool io_eventfd_add(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd);
/* Undo an io_eventfd_add with the same arguments. */
void io_eventfd_del(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd);
/*
 * One register, many doorbells (ivshmem's Doorbell: peer and vector in the
 * value written): each value gets its own eventfd. False without support.
 */
bool io_eventfd_add_match(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd,
                          uint64_t data);
void io_eventfd_del_match(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd,
                          uint64_t data);

/*
 * Host memory placed in guest-physical space (a PCI BAR backed by shared
 * memory). The accelerator maps it as real guest memory, so the guest's
 * accesses never leave the guest (KVM: a memory slot). Without a back-end
 * (qtest) nothing happens here and the BAR's IoOps serve the accesses.
 */
typedef struct RamSlotBackend {
    /* Returns a handle >= 0, or -1 when the accelerator cannot map it. */
    int (*add)(void *opaque, uint64_t gpa, uint64_t size, void *hva);
    void (*del)(void *opaque, int handle);
    void *opaque;
} RamSlotBackend;

void ram_slot_set_backend(const RamSlotBackend *backend);
/* -1 when there is no back-end or it refused: the IoOps path stays in use. */
int ram_slot_add(uint64_t gpa, uint64_t size, void *hva);
/* Undo ram_slot_add; -1 is ignored. */
void ram_slot_del(int handle);

#endif
