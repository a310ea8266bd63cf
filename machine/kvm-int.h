/*
 * What the KVM accelerator's files share (kvm.c: the VM and its vCPU
 * threads; kvm-hooks.c: interrupts, doorbells and RAM slots for devices).
 * Only machine/kvm*.c include this; everyone else uses machine/kvm.h.
 */
#ifndef VIREO_MACHINE_KVM_INT_H
#define VIREO_MACHINE_KVM_INT_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "machine/kvm.h"

#define KVM_DEVICE          "/dev/kvm"
#define KVM_API_EXPECTED    12
#define CPUID_MAX_ENTRIES   256
#define IOAPIC_PINS         24
#define PIC_IRQS            16
#define MSI_ROUTES_MAX      256     /* irqfd-bound MSI messages, GSIs 24.. */
#define EXTRA_SLOT_FIRST    16      /* device RAM (ram_slot_add) after guest RAM's slots */
#define EXTRA_SLOTS_MAX     32

typedef struct KvmVcpu {
    struct KvmVm *vm;
    unsigned index;         /* also its APIC id */
    int fd;
    struct kvm_run *run;    /* shared with the kernel */
    pthread_t thread;
    bool thread_started;
    int tid;                /* host thread id, set by the thread itself (atomic) */
    /* Under vm->lock: */
    bool parked;            /* waiting outside KVM_RUN */
    bool stuck;             /* stopped by a fatal exit until the next reset */
    bool reset_pending;     /* load the reset state before running again */
    struct kvm_lapic_state lapic0;  /* local APIC right after creation */
} KvmVcpu;

struct KvmVm {
    int kvm_fd, vm_fd;
    const GuestMemory *mem;
    int run_size;
    unsigned nr_vcpus;
    KvmVcpu *vcpus;
    struct kvm_cpuid2 *cpuid;   /* supported CPUID, adjusted per vCPU */
    BootEntry entry;
    struct kvm_irqchip chips0[3];   /* PIC master, PIC slave, IOAPIC at creation */
    struct kvm_pit_state2 pit0;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool tsc_deadline;      /* the in-kernel LAPIC offers the TSC-deadline timer */
    bool vm_paused;         /* the run state is not "running" */
    unsigned holds;         /* kvm_vm_hold nesting */
    bool quit;
    /* MSI routes behind irqfds (KVM GSIs IOAPIC_PINS + index). */
    struct { bool used; int fd; uint64_t addr; uint32_t data; } msi_routes[MSI_ROUTES_MAX];
    /* Guest time stands still while the VM is stopped, as on QEMU. */
    struct kvm_clock_data clock_at_stop;
    bool clock_saved;
    /* Memory slots EXTRA_SLOT_FIRST + i in use for device RAM (RAM BARs). */
    bool extra_slots[EXTRA_SLOTS_MAX];
};

/* Hand the interrupt, doorbell and RAM-slot back-ends of @vm to the devices. */
void kvm_vm_install_device_hooks(KvmVm *vm);

#endif
