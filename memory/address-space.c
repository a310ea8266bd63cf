#include "memory/address-space.h"

#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

struct IoRegion {
    AddressSpaceId as;
    char *name;
    uint64_t base;
    uint64_t size;
    bool enabled;
    const IoOps *ops;
    void *opaque;
    IoRegion *next;
};

/* A few dozen regions at most: a list kept in address order is enough. */
static IoRegion *spaces[AS__MAX];

static bool overlaps(const IoRegion *r, uint64_t base, uint64_t size)
{
    return base < r->base + r->size && r->base < base + size;
}

static IoRegion *find_overlap(AddressSpaceId as, uint64_t base, uint64_t size,
                              const IoRegion *ignore)
{
    for (IoRegion *r = spaces[as]; r; r = r->next) {
        if (r != ignore && r->enabled && overlaps(r, base, size)) {
            return r;
        }
    }
    return NULL;
}

static void unlink_region(IoRegion *r)
{
    for (IoRegion **p = &spaces[r->as]; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

static void link_sorted(IoRegion *r)
{
    IoRegion **p = &spaces[r->as];
    while (*p && (*p)->base < r->base) {
        p = &(*p)->next;
    }
    r->next = *p;
    *p = r;
}

static bool check_range(uint64_t base, uint64_t size, Error **errp)
{
    if (size == 0 || base + size < base) {
        error_setg(errp, "invalid I/O region [0x%llx, +0x%llx)",
                   (unsigned long long)base, (unsigned long long)size);
        return false;
    }
    return true;
}

IoRegion *io_region_add(AddressSpaceId as, const char *name, uint64_t base,
                        uint64_t size, const IoOps *ops, void *opaque,
                        Error **errp)
{
    if (!check_range(base, size, errp)) {
        return NULL;
    }
    IoRegion *other = find_overlap(as, base, size, NULL);
    if (other) {
        error_setg(errp, "I/O region %s at 0x%llx overlaps %s", name,
                   (unsigned long long)base, other->name);
        return NULL;
    }
    IoRegion *r = xzalloc(sizeof(*r));
    *r = (IoRegion){ .as = as, .name = xstrdup(name), .base = base,
                     .size = size, .enabled = true, .ops = ops, .opaque = opaque };
    link_sorted(r);
    return r;
}

bool io_region_move(IoRegion *r, uint64_t new_base, Error **errp)
{
    if (!check_range(new_base, r->size, errp)) {
        return false;
    }
    IoRegion *other = r->enabled ? find_overlap(r->as, new_base, r->size, r) : NULL;
    if (other) {
        error_setg(errp, "I/O region %s at 0x%llx would overlap %s", r->name,
                   (unsigned long long)new_base, other->name);
        return false;
    }
    unlink_region(r);
    r->base = new_base;
    link_sorted(r);
    return true;
}

void io_region_set_enabled(IoRegion *r, bool enabled)
{
    r->enabled = enabled;
}

void io_region_del(IoRegion *r)
{
    if (!r) {
        return;
    }
    unlink_region(r);
    free(r->name);
    free(r);
}

uint64_t io_region_base(const IoRegion *r)
{
    return r->base;
}

static IoRegion *lookup(AddressSpaceId as, uint64_t addr, unsigned size)
{
    for (IoRegion *r = spaces[as]; r; r = r->next) {
        if (r->enabled && addr >= r->base && range_within(addr - r->base, size, r->size)) {
            return r;
        }
        if (r->base > addr) {
            break;
        }
    }
    return NULL;
}

static bool valid_size(unsigned size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

bool io_dispatch_read(AddressSpaceId as, uint64_t addr, unsigned size, uint64_t *val)
{
    IoRegion *r = valid_size(size) ? lookup(as, addr, size) : NULL;
    if (!r || !r->ops->read) {
        *val = size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
        return false;
    }
    *val = r->ops->read(r->opaque, addr - r->base, size);
    return true;
}

bool io_dispatch_write(AddressSpaceId as, uint64_t addr, unsigned size, uint64_t val)
{
    IoRegion *r = valid_size(size) ? lookup(as, addr, size) : NULL;
    if (!r) {
        return false;
    }
    if (r->ops->write) {
        r->ops->write(r->opaque, addr - r->base, val, size);
    }
    return true;
}

void io_region_foreach(AddressSpaceId as,
                       void (*fn)(void *ctx, const char *name, uint64_t base, uint64_t size),
                       void *ctx)
{
    for (IoRegion *r = spaces[as]; r; r = r->next) {
        if (r->enabled) {
            fn(ctx, r->name, r->base, r->size);
        }
    }
}

/* ---- doorbells completed by the accelerator ---- */

static IoEventfdBackend eventfd_backend;

void io_eventfd_set_backend(const IoEventfdBackend *backend)
{
    eventfd_backend = backend ? *backend : (IoEventfdBackend){ 0 };
}

bool io_eventfd_available(void)
{
    return eventfd_backend.add != NULL;
}

bool io_eventfd_add(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd)
{
    return eventfd_backend.add &&
           eventfd_backend.add(eventfd_backend.opaque, as, addr, size, eventfd);
}

void io_eventfd_del(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd)
{
    if (eventfd_backend.del) {
        eventfd_backend.del(eventfd_backend.opaque, as, addr, size, eventfd);
    }
}

bool io_eventfd_add_match(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd,
                          uint64_t data)
{
    return eventfd_backend.add_match &&
           eventfd_backend.add_match(eventfd_backend.opaque, as, addr, size, eventfd, data);
}

void io_eventfd_del_match(AddressSpaceId as, uint64_t addr, unsigned size, int eventfd,
                          uint64_t data)
{
    if (eventfd_backend.del_match) {
        eventfd_backend.del_match(eventfd_backend.opaque, as, addr, size, eventfd, data);
    }
}

/* ---- host memory mapped as guest memory ---- */

static RamSlotBackend ram_slot_backend;

void ram_slot_set_backend(const RamSlotBackend *backend)
{
    ram_slot_backend = backend ? *backend : (RamSlotBackend){ 0 };
}

int ram_slot_add(uint64_t gpa, uint64_t size, void *hva)
{
    return ram_slot_backend.add ? ram_slot_backend.add(ram_slot_backend.opaque, gpa, size, hva)
                                : -1;
}

void ram_slot_del(int handle)
{
    if (handle >= 0 && ram_slot_backend.del) {
        ram_slot_backend.del(ram_slot_backend.opaque, handle);
    }
}
