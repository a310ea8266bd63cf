/*
 * A vCPU's CPUID as the monitor reports it: see machine/cpuid-info.h.
 */
#include "machine/cpuid-info.h"

#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

enum { R_EAX, R_EBX, R_ECX, R_EDX };
static const char *const reg_names[] = { "EAX", "EBX", "ECX", "EDX" };

/* QEMU 7.2's feature words, in the order its qom-get answers them. */
static const struct {
    uint32_t eax;
    int ecx;                /* -1: the leaf has no sub-leaves */
    int reg;
} words[CPU_FEATURE_WORDS] = {
    { 0xd, 1, R_EDX },          /* XSS, high half */
    { 0xd, 1, R_ECX },          /* XSS, low half */
    { 0x12, 1, R_EAX },         /* SGX attributes */
    { 0x12, 0, R_EBX },
    { 0x12, 0, R_EAX },         /* SGX capabilities */
    { 0x14, 0, R_ECX },         /* processor trace */
    { 0xd, 0, R_EDX },          /* XCR0, high half */
    { 0xd, 0, R_EAX },          /* XCR0, low half */
    { 0x6, -1, R_EAX },         /* thermal and power */
    { 0xd, 1, R_EAX },          /* XSAVE extensions */
    { 0x8000000a, -1, R_EDX },  /* SVM */
    { 0x40000001, -1, R_EDX },  /* KVM hints */
    { 0x40000001, -1, R_EAX },  /* KVM paravirtual features */
    { 0xc0000001, -1, R_EDX },  /* Centaur */
    { 0x80000008, -1, R_EBX },
    { 0x80000007, -1, R_EDX },
    { 0x80000001, -1, R_ECX },
    { 0x80000001, -1, R_EDX },
    { 0x7, 1, R_EAX },
    { 0x7, 0, R_EDX },
    { 0x7, 0, R_ECX },
    { 0x7, 0, R_EBX },
    { 0x1, -1, R_ECX },
    { 0x1, -1, R_EDX },
};

/* The entry for leaf/sub-leaf, NULL when the table has none (all zero). */
static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid2 *c, uint32_t fn,
                                                uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &c->entries[i];
        bool indexed = e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        if (e->function == fn && (!indexed || e->index == index)) {
            return e;
        }
    }
    return NULL;
}

static uint32_t reg_of(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t index, int reg)
{
    const struct kvm_cpuid_entry2 *e = find_leaf(c, fn, index);
    if (!e) {
        return 0;
    }
    const uint32_t r[4] = { e->eax, e->ebx, e->ecx, e->edx };
    return r[reg];
}

static struct kvm_cpuid2 *vcpu_cpuid(unsigned index, bool supported)
{
    return kvm_vm_vcpu_cpuid(machine_kvm_vm(), index, supported);
}

bool machine_cpu_feature_words(unsigned index, bool filtered,
                               CpuFeatureWord out[CPU_FEATURE_WORDS])
{
    struct kvm_cpuid2 *given = vcpu_cpuid(index, false);
    struct kvm_cpuid2 *offered = filtered ? vcpu_cpuid(index, true) : NULL;
    if (!given || (filtered && !offered)) {
        free(given);
        free(offered);
        return false;
    }
    for (size_t i = 0; i < CPU_FEATURE_WORDS; i++) {
        uint32_t ecx = words[i].ecx < 0 ? 0 : (uint32_t)words[i].ecx;
        uint32_t v = reg_of(given, words[i].eax, ecx, words[i].reg);
        if (filtered) {
            v = reg_of(offered, words[i].eax, ecx, words[i].reg) & ~v;
        }
        out[i] = (CpuFeatureWord){ .eax = words[i].eax, .has_ecx = words[i].ecx >= 0,
                                   .ecx = ecx, .reg = reg_names[words[i].reg],
                                   .features = v };
    }
    free(given);
    free(offered);
    return true;
}

static void put_regs(char *dst, const uint32_t *regs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memcpy(dst + 4 * i, &regs[i], 4);
    }
    dst[4 * n] = '\0';
}

bool machine_cpu_identity(unsigned index, CpuIdentity *id)
{
    struct kvm_cpuid2 *c = vcpu_cpuid(index, false);
    if (!c) {
        return false;
    }
    memset(id, 0, sizeof(*id));
    /* vendor: EBX, EDX, ECX of leaf 0 */
    const uint32_t vendor[3] = { reg_of(c, 0, 0, R_EBX), reg_of(c, 0, 0, R_EDX),
                                 reg_of(c, 0, 0, R_ECX) };
    put_regs(id->vendor, vendor, 3);
    uint32_t version = reg_of(c, 1, 0, R_EAX);
    id->family = (version >> 8) & 0xf;
    if (id->family == 0xf) {
        id->family += (version >> 20) & 0xff;
    }
    id->model = ((version >> 4) & 0xf) | (((version >> 16) & 0xf) << 4);
    id->stepping = version & 0xf;
    id->apic_id = reg_of(c, 1, 0, R_EBX) >> 24;
    /* the brand string: leaves 0x80000002..4, 16 bytes each, when present */
    if (reg_of(c, 0x80000000, 0, R_EAX) >= 0x80000004) {
        uint32_t brand[12];
        for (unsigned l = 0; l < 3; l++) {
            for (int r = R_EAX; r <= R_EDX; r++) {
                brand[4 * l + r] = reg_of(c, 0x80000002 + l, 0, r);
            }
        }
        put_regs(id->model_id, brand, 12);
    }
    free(c);
    return true;
}
