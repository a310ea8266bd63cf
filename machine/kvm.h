/*
 * The KVM accelerator for the x86 machine: one VM with the in-kernel
 * irqchip (PIC, IOAPIC, local APICs), the in-kernel PIT and kvmclock,
 * guest RAM registered as memory slots, and one thread per vCPU.
 *
 * vCPU threads exit to vireo only for port I/O and MMIO (dispatched through
 * machine/address-space.h under the big lock) and for shutdown events.
 * Pausing is by signal plus kvm_run.immediate_exit, so a vCPU busy in the
 * guest stops within one exit.
 */
#ifndef VIREO_MACHINE_KVM_H
#define VIREO_MACHINE_KVM_H

#include <stdbool.h>
#include <stdint.h>

#include "machine/boot-linux.h"
#include "memory/guest-memory.h"
#include "util/error.h"

typedef struct KvmVm KvmVm;

/* Is /dev/kvm usable (API 12 with the capabilities vireo needs)? */
bool kvm_available(Error **errp);

/* Create the VM, its memory slots, irqchip, PIT and (parked) vCPUs. */
KvmVm *kvm_vm_create(const GuestMemory *mem, unsigned nr_vcpus, Error **errp);
/* Where the boot vCPU starts after creation and after every reset. */
void kvm_vm_set_boot_entry(KvmVm *vm, const BootEntry *entry);
/* Install the KVM interrupt back-end (hw/irq.h) and run-state vCPU control. */
void kvm_vm_install_hooks(KvmVm *vm);
/* Start the vCPU threads; they run once the run state says so. */
bool kvm_vm_start_threads(KvmVm *vm, Error **errp);

/*
 * Hold every vCPU outside the guest (nestable), e.g. while a reset
 * rewrites guest RAM; release lets them run again if the VM is running.
 */
void kvm_vm_hold(KvmVm *vm);
void kvm_vm_release(KvmVm *vm);
/* With vCPUs held: reset irqchip and PIT now, each vCPU's state before it next runs. */
void kvm_vm_reset(KvmVm *vm);

/* Does the in-kernel PIT re-inject ticks the guest missed (KVM's default: yes)? */
bool kvm_vm_set_pit_reinject(KvmVm *vm, bool reinject, Error **errp);

/* The host thread id of vCPU index (0 before its thread runs or without one). */
int kvm_vm_vcpu_tid(const KvmVm *vm, unsigned index);

/*
 * The CPUID vCPU index was given (supported false), or the one KVM offers
 * (KVM_GET_SUPPORTED_CPUID, true); a copy to free, NULL without that vCPU.
 */
struct kvm_cpuid2;
struct kvm_cpuid2 *kvm_vm_vcpu_cpuid(const KvmVm *vm, unsigned index, bool supported);

/*
 * For a core dump: how many vCPUs there are, and one's registers (the
 * vCPUs are held outside the guest while they are read).
 */
struct DumpVcpu;
unsigned kvm_vm_nr_vcpus(const KvmVm *vm);
bool kvm_vm_vcpu_dump_regs(KvmVm *vm, unsigned index, struct DumpVcpu *out, Error **errp);

/* Stop and join the vCPU threads, close everything. */
void kvm_vm_destroy(KvmVm *vm);

#endif
