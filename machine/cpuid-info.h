/*
 * What a vCPU's CPUID says, for the monitor's view of the CPU object
 * (qom-get on the qom-path query-cpus-fast gives): QEMU 7.2's CPUID
 * feature words, and the identity fields (vendor, family, model, stepping,
 * model-id) it derives from leaves 0, 1 and 0x80000002..4.
 *
 * vireo's only CPU model is the host's: a vCPU gets what KVM reports in
 * KVM_GET_SUPPORTED_CPUID, adjusted by vireo for the machine's topology and
 * identity (machine/kvm.c). The "filtered" words are the bits the host model
 * asks for (KVM's supported set) that the vCPU does not get.
 */
#ifndef VIREO_MACHINE_CPUID_INFO_H
#define VIREO_MACHINE_CPUID_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "machine/kvm.h"

/* QEMU 7.2 reports 24 CPUID feature words, in a fixed order. */
#define CPU_FEATURE_WORDS 24

typedef struct CpuFeatureWord {
    uint32_t eax;           /* CPUID leaf */
    bool has_ecx;           /* the leaf has sub-leaves: ecx is the one meant */
    uint32_t ecx;
    const char *reg;        /* "EAX", "EBX", "ECX" or "EDX" */
    uint32_t features;
} CpuFeatureWord;

typedef struct CpuIdentity {
    char vendor[13];
    char model_id[49];
    unsigned family, model, stepping;
    uint32_t apic_id;
} CpuIdentity;

/*
 * The feature words of vCPU index: what it was given (filtered false), or
 * what the host model asks for and it does not get (true). False when no
 * such vCPU runs under KVM (none machine, qtest).
 */
bool machine_cpu_feature_words(unsigned index, bool filtered,
                               CpuFeatureWord out[CPU_FEATURE_WORDS]);
/* vCPU index's identity from its CPUID; false as above. */
bool machine_cpu_identity(unsigned index, CpuIdentity *id);

/* The board's KVM VM, NULL under qtest or without vCPUs (machine/pc.c). */
KvmVm *machine_kvm_vm(void);

#endif
