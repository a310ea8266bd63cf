/*
 * An ELF core file of guest memory, as QEMU's dump-guest-memory writes it
 * without paging: an ELF64 header, one PT_NOTE with an NT_PRSTATUS note per
 * vCPU followed by a "QEMU" note per vCPU (the registers and control state
 * crash and gdb read from it), and one PT_LOAD per guest RAM region whose
 * p_paddr (and p_vaddr) is the region's guest-physical address. A dump
 * may be limited to the RAM in [begin, begin + length).
 *
 * The plan (headers, notes, ranges) is made at once; the memory is written
 * in steps, so a caller can spread a large dump over main-loop turns.
 */
#ifndef VIREO_MACHINE_DUMP_ELF_H
#define VIREO_MACHINE_DUMP_ELF_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "memory/guest-memory.h"
#include "util/error.h"

/* One vCPU's state as a dump records it. */
typedef struct DumpVcpu {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint64_t kernel_gs_base;
    bool halted;                /* waiting in HLT for an interrupt */
    bool interrupt_shadow;      /* right after STI or MOV SS */
    bool smm;
    struct kvm_debugregs debugregs;
    struct kvm_fpu fpu;
} DumpVcpu;

typedef struct DumpElf DumpElf;

/*
 * Plan a dump of mem with the given vCPU states (none under qtest). With
 * filter, only RAM inside [begin, begin + length) is dumped. Fails with
 * "dump: no guest memory to dump" when no RAM is left.
 */
DumpElf *dump_elf_new(const GuestMemory *mem, const DumpVcpu *vcpus, unsigned nr_vcpus,
                      bool filter, uint64_t begin, uint64_t length, Error **errp);
/* Guest RAM bytes the dump holds, and how many of them are written. */
uint64_t dump_elf_total(const DumpElf *d);
uint64_t dump_elf_completed(const DumpElf *d);
/*
 * Write the next part (the headers first, then up to max_bytes of RAM) to
 * fd, whose file position the dump owns. Returns 1 when the dump is done,
 * 0 when more remains, -1 with errp set on a write error.
 */
int dump_elf_step(DumpElf *d, int fd, uint64_t max_bytes, Error **errp);
void dump_elf_free(DumpElf *d);

/*
 * The machine's vCPUs as a dump records them (machine/pc.c): a new array
 * in *out (NULL when there are none, as under qtest).
 */
bool machine_dump_vcpus(DumpVcpu **out, unsigned *nr, Error **errp);

/* The bytes of one vCPU's notes, for tests of the layout. */
#define DUMP_PRSTATUS_SIZE  336     /* struct elf_prstatus, x86-64 */
#define DUMP_QEMU_CPU_SIZE  0x1b8   /* QEMUCPUState version 1 */

#endif
