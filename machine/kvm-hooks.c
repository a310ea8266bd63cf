/*
 * The KVM VM as the devices' back-end: interrupt lines and MSIs (with
 * irqfds behind MSI routes), doorbells as ioeventfds, and device RAM (RAM
 * BARs) as extra memory slots. Installed by kvm_vm_install_hooks().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hw/irq.h"
#include "machine/kvm-int.h"
#include "memory/address-space.h"
#include "util/osdep.h"

/* ---- interrupt back-end ---- */

static void kvm_set_irq_level(void *opaque, unsigned gsi, bool level)
{
    KvmVm *vm = opaque;
    struct kvm_irq_level irq = { .irq = gsi, .level = level };
    ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

static void kvm_send_msi(void *opaque, uint64_t addr, uint32_t data)
{
    KvmVm *vm = opaque;
    struct kvm_msi msi = { .address_lo = (uint32_t)addr, .address_hi = addr >> 32,
                           .data = data };
    ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);
}

/*
 * KVM_SET_GSI_ROUTING replaces the whole table, so the default routes of the
 * legacy pins (IOAPIC, and the PICs for ISA IRQs) are restated with the MSIs.
 */
static bool kvm_commit_routes(KvmVm *vm)
{
    size_t max = PIC_IRQS + IOAPIC_PINS + MSI_ROUTES_MAX;
    struct kvm_irq_routing *r = xzalloc(sizeof(*r) + max * sizeof(r->entries[0]));
    unsigned n = 0;
    for (unsigned gsi = 0; gsi < IOAPIC_PINS; gsi++) {
        r->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi } };
        if (gsi < PIC_IRQS) {
            r->entries[n++] = (struct kvm_irq_routing_entry){
                .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                               .pin = gsi % 8 } };
        }
    }
    for (unsigned i = 0; i < MSI_ROUTES_MAX; i++) {
        if (vm->msi_routes[i].used) {
            r->entries[n++] = (struct kvm_irq_routing_entry){
                .gsi = IOAPIC_PINS + i, .type = KVM_IRQ_ROUTING_MSI,
                .u.msi = { .address_lo = (uint32_t)vm->msi_routes[i].addr,
                           .address_hi = vm->msi_routes[i].addr >> 32,
                           .data = vm->msi_routes[i].data } };
        }
    }
    r->nr = n;
    bool ok = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r) == 0;
    free(r);
    return ok;
}

static int kvm_irqfd_add(void *opaque, int eventfd, uint64_t addr, uint32_t data)
{
    KvmVm *vm = opaque;
    for (int i = 0; i < MSI_ROUTES_MAX; i++) {
        if (vm->msi_routes[i].used) {
            continue;
        }
        vm->msi_routes[i].used = true;
        vm->msi_routes[i].fd = eventfd;
        vm->msi_routes[i].addr = addr;
        vm->msi_routes[i].data = data;
        struct kvm_irqfd irqfd = { .fd = eventfd, .gsi = IOAPIC_PINS + i };
        if (!kvm_commit_routes(vm) || ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
            vm->msi_routes[i].used = false;
            kvm_commit_routes(vm);
            return -1;
        }
        return i;
    }
    return -1;
}

static bool kvm_irqfd_update(void *opaque, int handle, uint64_t addr, uint32_t data)
{
    KvmVm *vm = opaque;
    if (handle < 0 || handle >= MSI_ROUTES_MAX || !vm->msi_routes[handle].used) {
        return false;
    }
    vm->msi_routes[handle].addr = addr;
    vm->msi_routes[handle].data = data;
    return kvm_commit_routes(vm);
}

static void kvm_irqfd_remove(void *opaque, int handle)
{
    KvmVm *vm = opaque;
    if (handle < 0 || handle >= MSI_ROUTES_MAX || !vm->msi_routes[handle].used) {
        return;
    }
    struct kvm_irqfd irqfd = { .fd = vm->msi_routes[handle].fd, .gsi = IOAPIC_PINS + handle,
                               .flags = KVM_IRQFD_FLAG_DEASSIGN };
    ioctl(vm->vm_fd, KVM_IRQFD, &irqfd);
    vm->msi_routes[handle].used = false;
    kvm_commit_routes(vm);
}

/* ---- doorbells (KVM_IOEVENTFD) ---- */

static bool kvm_ioeventfd(KvmVm *vm, AddressSpaceId as, uint64_t addr, unsigned size,
                          int eventfd, bool assign)
{
    struct kvm_ioeventfd req = {
        .addr = addr, .len = size, .fd = eventfd,
        .flags = (as == AS_PIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &req) == 0;
}

static bool kvm_ioeventfd_add(void *opaque, AddressSpaceId as, uint64_t addr, unsigned size,
                              int eventfd)
{
    return kvm_ioeventfd(opaque, as, addr, size, eventfd, true);
}

static void kvm_ioeventfd_del(void *opaque, AddressSpaceId as, uint64_t addr, unsigned size,
                              int eventfd)
{
    kvm_ioeventfd(opaque, as, addr, size, eventfd, false);
}

static bool kvm_ioeventfd_match(KvmVm *vm, AddressSpaceId as, uint64_t addr, unsigned size,
                                int eventfd, uint64_t data, bool assign)
{
    struct kvm_ioeventfd req = {
        .datamatch = data, .addr = addr, .len = size, .fd = eventfd,
        .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (as == AS_PIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &req) == 0;
}

static bool kvm_ioeventfd_add_match(void *opaque, AddressSpaceId as, uint64_t addr,
                                    unsigned size, int eventfd, uint64_t data)
{
    return kvm_ioeventfd_match(opaque, as, addr, size, eventfd, data, true);
}

static void kvm_ioeventfd_del_match(void *opaque, AddressSpaceId as, uint64_t addr,
                                    unsigned size, int eventfd, uint64_t data)
{
    kvm_ioeventfd_match(opaque, as, addr, size, eventfd, data, false);
}

/* ---- device RAM as memory slots (RAM BARs) ---- */

static bool set_extra_slot(KvmVm *vm, int i, uint64_t gpa, uint64_t size, void *hva)
{
    struct kvm_userspace_memory_region slot = {
        .slot = EXTRA_SLOT_FIRST + i, .guest_phys_addr = gpa, .memory_size = size,
        .userspace_addr = (uintptr_t)hva,
    };
    return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) == 0;
}

static int kvm_ram_slot_add(void *opaque, uint64_t gpa, uint64_t size, void *hva)
{
    KvmVm *vm = opaque;
    for (int i = 0; i < EXTRA_SLOTS_MAX; i++) {
        if (!vm->extra_slots[i]) {
            /* KVM refuses overlaps with guest RAM: the BAR then stays trapped. */
            if (!set_extra_slot(vm, i, gpa, size, hva)) {
                return -1;
            }
            vm->extra_slots[i] = true;
            return i;
        }
    }
    return -1;
}

static void kvm_ram_slot_del(void *opaque, int handle)
{
    KvmVm *vm = opaque;
    if (handle >= 0 && handle < EXTRA_SLOTS_MAX && vm->extra_slots[handle]) {
        set_extra_slot(vm, handle, 0, 0, NULL);     /* size 0 deletes the slot */
        vm->extra_slots[handle] = false;
    }
}

/* Hand the interrupt, doorbell and RAM-slot back-ends of @vm to the devices. */
void kvm_vm_install_device_hooks(KvmVm *vm)
{
    IoEventfdBackend doorbells = { .add = kvm_ioeventfd_add, .del = kvm_ioeventfd_del,
                                   .add_match = kvm_ioeventfd_add_match,
                                   .del_match = kvm_ioeventfd_del_match, .opaque = vm };
    io_eventfd_set_backend(&doorbells);
    RamSlotBackend slots = { .add = kvm_ram_slot_add, .del = kvm_ram_slot_del, .opaque = vm };
    ram_slot_set_backend(&slots);
    IrqBackend irq = { .set_level = kvm_set_irq_level, .send_msi = kvm_send_msi,
                       .irqfd_add = kvm_irqfd_add, .irqfd_update = kvm_irqfd_update,
                       .irqfd_remove = kvm_irqfd_remove, .opaque = vm };
    irq_set_backend(&irq);
}
