/*
 * KVM accelerator for the x86 machine. See machine/kvm.h.
 */
#include "machine/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/lock.h"
#include "core/main-loop.h"
#include "core/runstate.h"
#include "hw/irq.h"
#include "memory/address-space.h"
#include "machine/dump-elf.h"
#include "machine/layout.h"
#include "util/log.h"
#include "util/byteorder.h"
#include "util/osdep.h"
#include "util/seccomp-hook.h"

#include "machine/kvm-int.h"

/* x86 architectural constants used to build the entry state. */
#define CR0_PE      (1ULL << 0)
#define CR0_ET      (1ULL << 4)
#define CR0_PG      (1ULL << 31)
#define CR4_PAE     (1ULL << 5)
#define EFER_LME    (1ULL << 8)
#define EFER_LMA    (1ULL << 10)
#define APIC_BASE_ENABLE (1ULL << 11)
#define APIC_BASE_BSP    (1ULL << 8)
#define APIC_LVT_LINT0   0x350
#define APIC_LVT_LINT1   0x360
#define APIC_MODE_EXTINT 0x700
#define APIC_MODE_NMI    0x400

#define MSR_IA32_TSC            0x10
#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MSR_KVM_SYSTEM_TIME     0x12
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define MSR_KVM_ASYNC_PF_EN     0x4b564d02
#define MSR_KVM_STEAL_TIME      0x4b564d03
#define MSR_KVM_PV_EOI_EN       0x4b564d04
#define MISC_ENABLE_FAST_STRING 1

static int kick_signal(void)
{
    return SIGRTMIN + 4;
}

/* ---- capability checks ---- */

bool kvm_available(Error **errp)
{
    int fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open " KVM_DEVICE);
        return false;
    }
    static const int needed[] = { KVM_CAP_USER_MEMORY, KVM_CAP_IRQCHIP, KVM_CAP_PIT2,
                                  KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SIGNAL_MSI,
                                  KVM_CAP_EXT_CPUID, KVM_CAP_IRQ_ROUTING, KVM_CAP_IRQFD };
    bool ok = ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_EXPECTED;
    if (!ok) {
        error_setg(errp, "KVM API version is not %d", KVM_API_EXPECTED);
    }
    for (size_t i = 0; ok && i < ARRAY_SIZE(needed); i++) {
        if (ioctl(fd, KVM_CHECK_EXTENSION, needed[i]) <= 0) {
            error_set(errp, ERROR_CLASS_KVM_MISSING_CAP,
                      "KVM lacks capability %d", needed[i]);
            ok = false;
        }
    }
    close(fd);
    return ok;
}

/* ---- CPUID ---- */

static struct kvm_cpuid2 *get_supported_cpuid(int kvm_fd, Error **errp)
{
    struct kvm_cpuid2 *c = xzalloc(sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
    c->nent = CPUID_MAX_ENTRIES;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_SUPPORTED_CPUID");
        free(c);
        return NULL;
    }
    return c;
}

static unsigned bits_for(unsigned count)
{
    unsigned bits = 0;
    while ((1u << bits) < count) {
        bits++;
    }
    return bits;
}

/* The supported CPUID with this vCPU's identity and the machine's topology. */
static struct kvm_cpuid2 *cpuid_for_vcpu(const KvmVm *vm, unsigned apic_id)
{
    size_t size = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
    struct kvm_cpuid2 *c = xmalloc(size);
    memcpy(c, vm->cpuid, size);
    unsigned n = vm->nr_vcpus;
    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            e->ebx = (apic_id << 24) | (MIN(n, 255u) << 16) | (8u << 8);  /* 64-byte CLFLUSH */
            e->ecx |= 1u << 31;                             /* running on a hypervisor */
            if (vm->tsc_deadline) {
                e->ecx |= 1u << 24;                         /* emulated by the in-kernel LAPIC */
            }
            e->edx = n > 1 ? e->edx | (1u << 28) : e->edx & ~(1u << 28);   /* HTT */
            break;
        case 0xb:
        case 0x1f:
            /* One thread per core, all cores in one package. */
            if (e->index == 0) {
                e->eax = 0; e->ebx = 1; e->ecx = 0 | (1u << 8);
            } else if (e->index == 1) {
                e->eax = bits_for(n); e->ebx = n; e->ecx = 1 | (2u << 8);
            } else {
                e->eax = e->ebx = 0; e->ecx = e->index;
            }
            e->edx = apic_id;
            break;
        case 4:
            e->eax = (e->eax & 0x3ffffff) | ((n - 1) << 26);
            break;
        case 0x80000008:
            e->ecx = (e->ecx & ~0xffu) | (n - 1);
            break;
        case 0x8000001e:
            e->eax = apic_id;
            break;
        }
    }
    return c;
}

/* ---- VM creation ---- */

static bool vm_ioctl(KvmVm *vm, unsigned long req, void *arg, const char *what, Error **errp)
{
    if (ioctl(vm->vm_fd, req, arg) < 0) {
        error_setg_errno(errp, errno, "KVM: %s", what);
        return false;
    }
    return true;
}

static bool add_memory_slots(KvmVm *vm, Error **errp)
{
    for (int i = 0; i < vm->mem->nr_regions; i++) {
        const GuestRegion *r = &vm->mem->regions[i];
        struct kvm_userspace_memory_region slot = {
            .slot = i, .guest_phys_addr = r->gpa, .memory_size = r->size,
            .userspace_addr = (uintptr_t)r->hva,
        };
        if (!vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot, "adding guest RAM", errp)) {
            return false;
        }
    }
    return true;
}

static bool create_platform(KvmVm *vm, Error **errp)
{
    uint64_t identity = KVM_IDENTITY_MAP_ADDR;
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if (!vm_ioctl(vm, KVM_SET_TSS_ADDR, (void *)(uintptr_t)KVM_TSS_ADDR, "TSS address", errp) ||
        !vm_ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity, "identity map", errp) ||
        !vm_ioctl(vm, KVM_CREATE_IRQCHIP, NULL, "creating the irqchip", errp) ||
        !vm_ioctl(vm, KVM_CREATE_PIT2, &pit, "creating the PIT", errp)) {
        return false;
    }
    /* Keep the power-on state of the interrupt controllers for resets. */
    for (int i = 0; i < 3; i++) {
        vm->chips0[i].chip_id = i;
        if (!vm_ioctl(vm, KVM_GET_IRQCHIP, &vm->chips0[i], "reading the irqchip", errp)) {
            return false;
        }
    }
    return vm_ioctl(vm, KVM_GET_PIT2, &vm->pit0, "reading the PIT", errp);
}

static bool create_vcpu(KvmVm *vm, KvmVcpu *v, unsigned index, Error **errp)
{
    v->vm = vm;
    v->index = index;
    v->reset_pending = true;
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (v->fd < 0) {
        error_setg_errno(errp, errno, "KVM: creating vCPU %u", index);
        return false;
    }
    v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        error_setg_errno(errp, errno, "KVM: mapping vCPU %u", index);
        return false;
    }
    struct kvm_cpuid2 *cpuid = cpuid_for_vcpu(vm, index);
    int r = ioctl(v->fd, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (r < 0 || ioctl(v->fd, KVM_GET_LAPIC, &v->lapic0) < 0) {
        error_setg_errno(errp, errno, "KVM: setting up vCPU %u", index);
        return false;
    }
    return true;
}

static bool check_vcpu_count(KvmVm *vm, unsigned n, Error **errp)
{
    int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max <= 0) {
        max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    }
    /* The MADT and xAPIC ids hold 8 bits; 255 is the broadcast id. */
    unsigned limit = MIN(max > 0 ? (unsigned)max : 1u, 254u);
    if (n == 0 || n > limit) {
        error_setg(errp, "Invalid SMP CPUs %u: this host supports 1 to %u", n, limit);
        return false;
    }
    return true;
}

KvmVm *kvm_vm_create(const GuestMemory *mem, unsigned nr_vcpus, Error **errp)
{
    if (!kvm_available(errp)) {
        return NULL;
    }
    KvmVm *vm = xzalloc(sizeof(*vm));
    vm->mem = mem;
    vm->vm_fd = -1;
    vm->vm_paused = true;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    vm->kvm_fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        error_setg_errno(errp, errno, "cannot open " KVM_DEVICE);
        goto fail;
    }
    if (!check_vcpu_count(vm, nr_vcpus, errp)) {
        goto fail;
    }
    vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0 || vm->run_size <= 0) {
        error_setg_errno(errp, errno, "KVM: cannot create a VM");
        goto fail;
    }
    vm->tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    vm->cpuid = get_supported_cpuid(vm->kvm_fd, errp);
    if (!vm->cpuid || !create_platform(vm, errp) || !add_memory_slots(vm, errp)) {
        goto fail;
    }
    vm->nr_vcpus = nr_vcpus;
    vm->vcpus = xzalloc(nr_vcpus * sizeof(KvmVcpu));
    for (unsigned i = 0; i < nr_vcpus; i++) {
        vm->vcpus[i].fd = -1;
    }
    for (unsigned i = 0; i < nr_vcpus; i++) {
        if (!create_vcpu(vm, &vm->vcpus[i], i, errp)) {
            goto fail;
        }
    }
    return vm;
fail:
    kvm_vm_destroy(vm);
    return NULL;
}

void kvm_vm_set_boot_entry(KvmVm *vm, const BootEntry *entry)
{
    vm->entry = *entry;
}

/* ---- vCPU reset state ---- */

/* KVM_GET_MSRS/KVM_SET_MSRS of one MSR: struct kvm_msrs ends in a flexible
 * array, so its one entry lives in a buffer sized for both. Returns the
 * number of MSRs KVM handled (1, or 0 for an MSR this host lacks), or -1. */
static int vcpu_msr_io(int vcpu_fd, unsigned long request, uint32_t index, uint64_t *data)
{
    _Alignas(struct kvm_msrs) uint8_t buf[sizeof(struct kvm_msrs) +
                                          sizeof(struct kvm_msr_entry)] = { 0 };
    struct kvm_msrs *msrs = (struct kvm_msrs *)buf;
    msrs->nmsrs = 1;
    msrs->entries[0].index = index;
    msrs->entries[0].data = *data;
    int handled = ioctl(vcpu_fd, request, msrs);
    *data = msrs->entries[0].data;
    return handled;
}

static void set_msr(KvmVcpu *v, uint32_t index, uint64_t value)
{
    /* An MSR this host lacks is simply left alone. */
    vcpu_msr_io(v->fd, KVM_SET_MSRS, index, &value);
}

static void reset_msrs(KvmVcpu *v)
{
    static const uint32_t zeroed[] = {
        MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
        MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK, MSR_KERNEL_GS_BASE,
        /* Paravirtual areas of the previous kernel must not be written any more. */
        MSR_KVM_SYSTEM_TIME, MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_ASYNC_PF_EN,
        MSR_KVM_STEAL_TIME, MSR_KVM_PV_EOI_EN,
    };
    for (size_t i = 0; i < ARRAY_SIZE(zeroed); i++) {
        set_msr(v, zeroed[i], 0);
    }
    set_msr(v, MSR_IA32_TSC, 0);
    set_msr(v, MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING);
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
    return (struct kvm_segment){
        .base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
        .present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64, .g = 1,
    };
}

/* Segments, control registers and paging for the kernel's entry mode. */
static void entry_sregs(const KvmVm *vm, struct kvm_sregs *s)
{
    bool long_mode = vm->entry.mode == BOOT_ENTRY_LINUX64;
    s->cs = long_mode ? flat_segment(BOOT_CS_SELECTOR, 0xb, true)
                      : flat_segment(0x08, 0xb, false);
    s->ds = s->es = s->fs = s->gs = s->ss = flat_segment(BOOT_DS_SELECTOR, 0x3, false);
    s->tr = (struct kvm_segment){ .selector = BOOT_TSS_SELECTOR, .limit = 0x67,
                                  .type = 0xb, .present = 1 };
    s->ldt = (struct kvm_segment){ .type = 0x2, .present = 1, .limit = 0xffff };
    s->gdt.base = BOOT_GDT_ADDR;
    s->gdt.limit = 5 * 8 - 1;
    s->idt.base = 0;
    s->idt.limit = 0;
    s->cr0 = CR0_PE | CR0_ET;
    s->cr4 = 0;
    s->efer = 0;
    if (long_mode) {
        s->cr0 |= CR0_PG;
        s->cr3 = BOOT_PML4_ADDR;
        s->cr4 = CR4_PAE;
        s->efer = EFER_LME | EFER_LMA;
    }
}

static bool load_boot_state(KvmVcpu *v)
{
    const KvmVm *vm = v->vm;
    struct kvm_sregs sregs;
    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
        return false;
    }
    entry_sregs(vm, &sregs);
    sregs.apic_base = LAPIC_ADDR | APIC_BASE_ENABLE | APIC_BASE_BSP;
    struct kvm_regs regs = { .rflags = 0x2, .rip = vm->entry.entry,
                             .rsp = vm->entry.stack, .rbp = vm->entry.stack };
    if (vm->entry.mode == BOOT_ENTRY_LINUX64) {
        regs.rsi = vm->entry.arg;
    } else {
        regs.rbx = vm->entry.arg;
    }
    struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
    return ioctl(v->fd, KVM_SET_SREGS, &sregs) == 0 &&
           ioctl(v->fd, KVM_SET_REGS, &regs) == 0 &&
           ioctl(v->fd, KVM_SET_FPU, &fpu) == 0;
}

static void set_lapic_lvt(struct kvm_lapic_state *l, unsigned reg, uint32_t value)
{
    memcpy(&l->regs[reg], &value, 4);
}

/* Power-on state for this vCPU; runs on the vCPU's own thread. */
static bool apply_reset(KvmVcpu *v)
{
    bool bsp = v->index == 0;
    struct kvm_vcpu_events events = { 0 };
    ioctl(v->fd, KVM_SET_VCPU_EVENTS, &events);
    reset_msrs(v);

    struct kvm_sregs sregs;
    if (!bsp && ioctl(v->fd, KVM_GET_SREGS, &sregs) == 0) {
        sregs.apic_base = LAPIC_ADDR | APIC_BASE_ENABLE;   /* back to xAPIC mode */
        ioctl(v->fd, KVM_SET_SREGS, &sregs);
    }
    if (bsp && !load_boot_state(v)) {
        return false;
    }
    struct kvm_lapic_state lapic = v->lapic0;
    if (bsp) {
        /* Virtual wire: the PIC reaches the boot CPU through LINT0, NMIs through LINT1. */
        set_lapic_lvt(&lapic, APIC_LVT_LINT0, APIC_MODE_EXTINT);
        set_lapic_lvt(&lapic, APIC_LVT_LINT1, APIC_MODE_NMI);
    }
    struct kvm_mp_state mp = { bsp ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED };
    return ioctl(v->fd, KVM_SET_LAPIC, &lapic) == 0 &&
           ioctl(v->fd, KVM_SET_MP_STATE, &mp) == 0;
}

/* ---- pausing ---- */

static bool may_run(const KvmVcpu *v)
{
    const KvmVm *vm = v->vm;
    return !vm->vm_paused && vm->holds == 0 && !v->stuck;
}

/* Called with vm->lock held: make every running vCPU leave KVM_RUN. */
static void kick_all(KvmVm *vm)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        KvmVcpu *v = &vm->vcpus[i];
        if (v->thread_started && !v->parked) {
            __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
            pthread_kill(v->thread, kick_signal());
        }
    }
}

static bool all_parked(const KvmVm *vm)
{
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        const KvmVcpu *v = &vm->vcpus[i];
        if (v->thread_started && !v->parked && !pthread_equal(v->thread, self)) {
            return false;
        }
    }
    return true;
}

/*
 * Wait until no vCPU is in the guest. A vCPU may be waiting for the big lock
 * to finish an I/O exit, so the lock is let go while waiting.
 */
static void wait_all_parked(KvmVm *vm)
{
    bool had_big_lock = big_lock_held();
    if (had_big_lock) {
        big_unlock();
    }
    pthread_mutex_lock(&vm->lock);
    while (!all_parked(vm)) {
        kick_all(vm);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000 * 1000;     /* re-kick in case a signal raced */
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
    }
    pthread_mutex_unlock(&vm->lock);
    if (had_big_lock) {
        big_lock();
    }
}

static void set_paused(KvmVm *vm, bool paused)
{
    pthread_mutex_lock(&vm->lock);
    vm->vm_paused = paused;
    if (paused) {
        kick_all(vm);
    }
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    if (paused) {
        wait_all_parked(vm);
    }
}

static void vcpu_control_pause(void *opaque)
{
    KvmVm *vm = opaque;
    set_paused(vm, true);
    vm->clock_saved = ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->clock_at_stop) == 0;
}

static void vcpu_control_resume(void *opaque)
{
    KvmVm *vm = opaque;
    if (vm->clock_saved) {
        struct kvm_clock_data data = { .clock = vm->clock_at_stop.clock };
        ioctl(vm->vm_fd, KVM_SET_CLOCK, &data);
        vm->clock_saved = false;
    }
    set_paused(vm, false);
}

void kvm_vm_hold(KvmVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->holds++;
    kick_all(vm);
    pthread_mutex_unlock(&vm->lock);
    wait_all_parked(vm);
}

void kvm_vm_release(KvmVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->holds) {
        vm->holds--;
    }
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

void kvm_vm_reset(KvmVm *vm)
{
    for (int i = 0; i < 3; i++) {
        ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &vm->chips0[i]);
    }
    ioctl(vm->vm_fd, KVM_SET_PIT2, &vm->pit0);
    pthread_mutex_lock(&vm->lock);
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        vm->vcpus[i].reset_pending = true;
        vm->vcpus[i].stuck = false;
    }
    pthread_mutex_unlock(&vm->lock);
}

/* ---- the vCPU thread ---- */

/* Park until allowed to run; false when the VM is going away. */
static bool wait_until_runnable(KvmVcpu *v, bool *reset)
{
    KvmVm *vm = v->vm;
    pthread_mutex_lock(&vm->lock);
    while (!vm->quit && !may_run(v)) {
        v->parked = true;
        pthread_cond_broadcast(&vm->cond);
        pthread_cond_wait(&vm->cond, &vm->lock);
    }
    v->parked = false;
    *reset = v->reset_pending;
    v->reset_pending = false;
    /* Cleared under the lock: a later pause sets it again before kicking. */
    v->run->immediate_exit = 0;
    bool quit = vm->quit;
    pthread_mutex_unlock(&vm->lock);
    return !quit;
}

static void mark_stuck(KvmVcpu *v)
{
    pthread_mutex_lock(&v->vm->lock);
    v->stuck = true;
    pthread_mutex_unlock(&v->vm->lock);
}

static void handle_pio(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;
    big_lock();
    /* String I/O (rep ins/outs) arrives as count items in a row. */
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        uint64_t val = 0;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            memcpy(&val, data, size);
            io_dispatch_write(AS_PIO, run->io.port, size, val);
        } else {
            io_dispatch_read(AS_PIO, run->io.port, size, &val);
            memcpy(data, &val, size);
        }
    }
    big_unlock();
}

static void handle_mmio(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    unsigned len = MIN(run->mmio.len, 8u);
    uint64_t val = 0;
    big_lock();
    if (run->mmio.is_write) {
        memcpy(&val, run->mmio.data, len);
        io_dispatch_write(AS_MMIO, run->mmio.phys_addr, len, val);
    } else {
        io_dispatch_read(AS_MMIO, run->mmio.phys_addr, len, &val);
        memcpy(run->mmio.data, &val, len);
    }
    big_unlock();
}

static void stop_for_internal_error(void *opaque)
{
    vm_stop(RUN_STATE_INTERNAL_ERROR);
}

static void report_fatal_exit(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    struct kvm_regs regs;
    unsigned long long rip = ioctl(v->fd, KVM_GET_REGS, &regs) == 0 ? regs.rip : 0;
    /* Guest-triggered, and a vCPU thread must not wait on stderr. */
    LOG_GUEST_WARN("KVM: vCPU %u stopped: exit reason %u (suberror %u, hardware reason "
                   "0x%llx) at rip 0x%llx", v->index, run->exit_reason,
                   run->exit_reason == KVM_EXIT_INTERNAL_ERROR ? run->internal.suberror : 0,
                   run->exit_reason == KVM_EXIT_FAIL_ENTRY ?
                       (unsigned long long)run->fail_entry.hardware_entry_failure_reason : 0ULL,
                   rip);
    mark_stuck(v);
    main_loop_schedule(stop_for_internal_error, NULL);
}

/* Act on one exit from KVM_RUN. */
static void handle_exit(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_pio(v);
        break;
    case KVM_EXIT_MMIO:
        handle_mmio(v);
        break;
    case KVM_EXIT_INTR:
        break;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault: a PC resets. */
        mark_stuck(v);
        system_reset_request(SHUTDOWN_CAUSE_GUEST_RESET);
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        mark_stuck(v);
        if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
            system_reset_request(SHUTDOWN_CAUSE_GUEST_RESET);
        } else {
            system_shutdown_request(SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
        }
        break;
    default:
        report_fatal_exit(v);
        break;
    }
}

static void *vcpu_thread(void *opaque)
{
    KvmVcpu *v = opaque;
    __atomic_store_n(&v->tid, (int)gettid(), __ATOMIC_RELEASE);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    bool reset;
    while (wait_until_runnable(v, &reset)) {
        seccomp_thread_enter(SANDBOX_VCPU);     /* once the sandbox is on */
        if (reset && !apply_reset(v)) {
            LOG_GUEST_WARN("KVM: cannot reset vCPU %u: %s", v->index, strerror(errno));
            mark_stuck(v);
            main_loop_schedule(stop_for_internal_error, NULL);
            continue;
        }
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno != EINTR && errno != EAGAIN) {
                LOG_GUEST_WARN("KVM: vCPU %u: KVM_RUN: %s", v->index, strerror(errno));
                mark_stuck(v);
                main_loop_schedule(stop_for_internal_error, NULL);
            }
            continue;
        }
        handle_exit(v);
    }
    return NULL;
}

static void kick_handler(int sig)
{
    /* Nothing: the signal only makes KVM_RUN return with EINTR. */
}

bool kvm_vm_start_threads(KvmVm *vm, Error **errp)
{
    struct sigaction sa = { .sa_handler = kick_handler };
    sigemptyset(&sa.sa_mask);
    sigaction(kick_signal(), &sa, NULL);

    /* vCPU threads take no process signals but the kick. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bool ok = true;
    for (unsigned i = 0; i < vm->nr_vcpus && ok; i++) {
        KvmVcpu *v = &vm->vcpus[i];
        int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
        if (r) {
            error_setg_errno(errp, r, "cannot create vCPU thread %u", i);
            ok = false;
        }
        v->thread_started = !r;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* query-cpus-fast reports thread ids from now on: wait (briefly) for them. */
    for (unsigned i = 0; i < vm->nr_vcpus && ok; i++) {
        for (int tries = 0; tries < 5000 && !kvm_vm_vcpu_tid(vm, i); tries++) {
            usleep(1000);
        }
    }
    return ok;
}

struct kvm_cpuid2 *kvm_vm_vcpu_cpuid(const KvmVm *vm, unsigned index, bool supported)
{
    if (!vm || index >= vm->nr_vcpus) {
        return NULL;
    }
    if (supported) {
        size_t size = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
        struct kvm_cpuid2 *c = xmalloc(size);
        memcpy(c, vm->cpuid, size);
        return c;
    }
    return cpuid_for_vcpu(vm, index);
}

bool kvm_vm_set_pit_reinject(KvmVm *vm, bool reinject, Error **errp)
{
    struct kvm_reinject_control rc = { .pit_reinject = reinject };
    return vm_ioctl(vm, KVM_REINJECT_CONTROL, &rc, "PIT tick re-injection", errp);
}

int kvm_vm_vcpu_tid(const KvmVm *vm, unsigned index)
{
    if (!vm || index >= vm->nr_vcpus) {
        return 0;
    }
    return __atomic_load_n(&vm->vcpus[index].tid, __ATOMIC_ACQUIRE);
}

void kvm_vm_install_hooks(KvmVm *vm)
{
    kvm_vm_install_device_hooks(vm);
    VcpuControl ctl = { .pause_all = vcpu_control_pause,
                        .resume_all = vcpu_control_resume, .opaque = vm };
    runstate_set_vcpu_control(&ctl);
}

/* ---- teardown ---- */

void kvm_vm_destroy(KvmVm *vm)
{
    if (!vm) {
        return;
    }
    /* Devices outlive the VM during teardown: they must not reach it any more. */
    io_eventfd_set_backend(NULL);
    ram_slot_set_backend(NULL);
    irq_set_backend(&(IrqBackend){ 0 });
    pthread_mutex_lock(&vm->lock);
    vm->quit = true;
    kick_all(vm);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);

    bool had_big_lock = big_lock_held();
    if (had_big_lock) {
        big_unlock();           /* a vCPU may need it to finish its exit */
    }
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        KvmVcpu *v = &vm->vcpus[i];
        if (v->thread_started) {
            pthread_join(v->thread, NULL);
        }
        if (v->run) {
            munmap(v->run, vm->run_size);
        }
        if (v->fd >= 0) {
            close(v->fd);
        }
    }
    if (had_big_lock) {
        big_lock();
    }
    if (vm->vm_fd >= 0) {
        close(vm->vm_fd);
    }
    if (vm->kvm_fd >= 0) {
        close(vm->kvm_fd);
    }
    free(vm->vcpus);
    free(vm->cpuid);
    pthread_mutex_destroy(&vm->lock);
    pthread_cond_destroy(&vm->cond);
    free(vm);
}

unsigned kvm_vm_nr_vcpus(const KvmVm *vm)
{
    return vm ? vm->nr_vcpus : 0;
}

/*
 * x87/SSE state from the XSAVE area's legacy (FXSAVE-format) part, which
 * KVM fills for every feature, where KVM_GET_FPU can leave MXCSR zero.
 */
static void read_fpu(int fd, struct kvm_fpu *fpu)
{
    memset(fpu, 0, sizeof(*fpu));
    struct kvm_xsave *xs = xzalloc(sizeof(*xs));
    if (ioctl(fd, KVM_GET_XSAVE, xs) == 0) {
        const uint8_t *p = (const uint8_t *)xs->region;
        fpu->fcw = ld_le16(p);
        fpu->fsw = ld_le16(p + 2);
        fpu->ftwx = p[4];
        fpu->last_opcode = ld_le16(p + 6);
        fpu->mxcsr = ld_le32(p + 24);
        memcpy(fpu->fpr, p + 32, sizeof(fpu->fpr));
        memcpy(fpu->xmm, p + 160, sizeof(fpu->xmm));
    } else if (ioctl(fd, KVM_GET_FPU, fpu) < 0) {
        memset(fpu, 0, sizeof(*fpu));
    }
    free(xs);
}

bool kvm_vm_vcpu_dump_regs(KvmVm *vm, unsigned index, DumpVcpu *out, Error **errp)
{
    bool ok;
    if (!vm || index >= vm->nr_vcpus) {
        error_setg(errp, "No vCPU %u", index);
        return false;
    }
    KvmVcpu *v = &vm->vcpus[index];
    kvm_vm_hold(vm);
    ok = ioctl(v->fd, KVM_GET_REGS, &out->regs) == 0 &&
         ioctl(v->fd, KVM_GET_SREGS, &out->sregs) == 0;
    if (!ok) {
        error_setg_errno(errp, errno, "dump: cannot read the registers of vCPU %u", index);
    } else {
        uint64_t gs_base = 0;
        out->kernel_gs_base = vcpu_msr_io(v->fd, KVM_GET_MSRS, MSR_KERNEL_GS_BASE, &gs_base) == 1
                              ? gs_base : 0;
        struct kvm_mp_state mp = { 0 };
        out->halted = ioctl(v->fd, KVM_GET_MP_STATE, &mp) == 0 && mp.mp_state == KVM_MP_STATE_HALTED;
        struct kvm_vcpu_events ev = { 0 };
        bool have_ev = ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) == 0;
        out->interrupt_shadow = have_ev && ev.interrupt.shadow;
        out->smm = have_ev && ev.smi.smm;
        if (ioctl(v->fd, KVM_GET_DEBUGREGS, &out->debugregs) < 0) {
            memset(&out->debugregs, 0, sizeof(out->debugregs));
        }
        read_fpu(v->fd, &out->fpu);
    }
    kvm_vm_release(vm);
    return ok;
}
