/*
 * info registers [-a] [vcpu]: a vCPU's registers as KVM holds them, in the
 * layout QEMU 7.2 prints for x86 (general registers, flags, segment caches
 * with their decoded type, descriptor tables, control, debug and x87/SSE
 * registers, EFER), so that what people paste from one VMM reads the same
 * from the other.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "machine/dump-elf.h"
#include "monitor/hmp-commands.h"
#include "util/byteorder.h"

#define EFER_LMA        (1u << 10)
#define CR0_PE          1u

/* The descriptor flags word of QEMU's segment cache, from KVM's fields. */
static uint32_t seg_flags(const struct kvm_segment *s)
{
    return (uint32_t)s->type << 8 | (uint32_t)s->s << 12 | (uint32_t)s->dpl << 13 |
           (uint32_t)s->present << 15 | (uint32_t)s->avl << 20 | (uint32_t)s->l << 21 |
           (uint32_t)s->db << 22 | (uint32_t)s->g << 23;
}

static const char *system_type(unsigned type, bool long_mode)
{
    static const char *const legacy[16] = {
        "Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate",
        "IntGate16", "TrapGate16", "Reserved", "TSS32-avl", "Reserved", "TSS32-busy",
        "CallGate32", "Reserved", "IntGate32", "TrapGate32",
    };
    static const char *const lm[16] = {
        "Reserved", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved",
        "Reserved", "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64",
        "Reserved", "IntGate64", "TrapGate64",
    };
    return (long_mode ? lm : legacy)[type & 15];
}

static void print_segment(StrBuf *out, const char *name, const struct kvm_segment *s,
                          bool cs64, bool lma, bool pe)
{
    uint32_t flags = seg_flags(s);
    if (cs64) {
        strbuf_printf(out, "%-3s=%04x %016llx %08x %08x", name, s->selector, s->base,
                      s->limit, flags & 0x00ffff00);
    } else {
        strbuf_printf(out, "%-3s=%04x %08x %08x %08x", name, s->selector, (uint32_t)s->base,
                      s->limit, flags & 0x00ffff00);
    }
    if (pe && s->present) {
        strbuf_printf(out, " DPL=%d ", s->dpl);
        if (!s->s) {
            strbuf_printf(out, "%s", system_type(s->type, lma));
        } else if (s->type & 8) {       /* code */
            strbuf_printf(out, "%s [%c%c%c]", s->l ? "CS64" : s->db ? "CS32" : "CS16",
                          s->type & 4 ? 'C' : '-', s->type & 2 ? 'R' : '-',
                          s->type & 1 ? 'A' : '-');
        } else {
            strbuf_printf(out, "%s [%c%c%c]", s->db || lma ? "DS  " : "DS16",
                          s->type & 4 ? 'E' : '-', s->type & 2 ? 'W' : '-',
                          s->type & 1 ? 'A' : '-');
        }
    }
    strbuf_printf(out, "\n");
}

static void print_flags_line(StrBuf *out, const DumpVcpu *v, bool lma, bool pe)
{
    uint64_t f = v->regs.rflags;
    int cpl = pe ? v->sregs.ss.dpl : 0;
    char bits[8] = {
        f & 0x400 ? 'D' : '-', f & 0x800 ? 'O' : '-', f & 0x80 ? 'S' : '-',
        f & 0x40 ? 'Z' : '-', f & 0x10 ? 'A' : '-', f & 0x4 ? 'P' : '-', f & 0x1 ? 'C' : '-', 0,
    };
    if (lma) {
        strbuf_printf(out, "RIP=%016llx RFL=%08x", (unsigned long long)v->regs.rip, (uint32_t)f);
    } else {
        strbuf_printf(out, "EIP=%08x EFL=%08x", (uint32_t)v->regs.rip, (uint32_t)f);
    }
    strbuf_printf(out, " [%s] CPL=%d II=%d A20=1 SMM=%d HLT=%d\n", bits, cpl,
                  v->interrupt_shadow, v->smm, v->halted);
}

static void print_gprs(StrBuf *out, const struct kvm_regs *r, bool lma)
{
    if (lma) {
        strbuf_printf(out, "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
                      "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
                      "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
                      "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n",
                      r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp,
                      r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15);
    } else {
        strbuf_printf(out, "EAX=%08x EBX=%08x ECX=%08x EDX=%08x\n"
                      "ESI=%08x EDI=%08x EBP=%08x ESP=%08x\n",
                      (uint32_t)r->rax, (uint32_t)r->rbx, (uint32_t)r->rcx, (uint32_t)r->rdx,
                      (uint32_t)r->rsi, (uint32_t)r->rdi, (uint32_t)r->rbp, (uint32_t)r->rsp);
    }
}

/* x87 and SSE state; KVM's ftwx is the abridged tag word QEMU prints. */
static void print_fpu(StrBuf *out, const struct kvm_fpu *f, bool lma)
{
    strbuf_printf(out, "FCW=%04x FSW=%04x [ST=%d] FTW=%02x MXCSR=%08x\n", f->fcw, f->fsw,
                  (f->fsw >> 11) & 7, f->ftwx, f->mxcsr);
    for (int i = 0; i < 8; i++) {
        uint16_t exp = (uint16_t)(f->fpr[i][8] | f->fpr[i][9] << 8);
        strbuf_printf(out, "FPR%d=%016" PRIx64 " %04x%s", i, ld_le64(f->fpr[i]), exp,
                      i & 1 ? "\n" : " ");
    }
    for (int i = 0; i < (lma ? 16 : 8); i++) {
        strbuf_printf(out, "XMM%02d=%016" PRIx64 " %016" PRIx64 "%s", i, ld_le64(f->xmm[i] + 8),
                      ld_le64(f->xmm[i]), i & 1 ? "\n" : " ");
    }
}

static void print_vcpu(StrBuf *out, const DumpVcpu *v)
{
    const struct kvm_sregs *s = &v->sregs;
    bool lma = s->efer & EFER_LMA;
    bool pe = s->cr0 & CR0_PE;
    bool cs64 = lma && s->cs.l;
    print_gprs(out, &v->regs, lma);
    print_flags_line(out, v, lma, pe);
    const struct { const char *name; const struct kvm_segment *seg; } segs[] = {
        { "ES", &s->es }, { "CS", &s->cs }, { "SS", &s->ss }, { "DS", &s->ds },
        { "FS", &s->fs }, { "GS", &s->gs }, { "LDT", &s->ldt }, { "TR", &s->tr },
    };
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
        print_segment(out, segs[i].name, segs[i].seg, cs64, lma, pe);
    }
    if (cs64) {
        strbuf_printf(out, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n",
                      s->gdt.base, s->gdt.limit, s->idt.base, s->idt.limit);
        strbuf_printf(out, "CR0=%08x CR2=%016llx CR3=%016llx CR4=%08x\n", (uint32_t)s->cr0,
                      s->cr2, s->cr3, (uint32_t)s->cr4);
    } else {
        strbuf_printf(out, "GDT=     %08x %08x\nIDT=     %08x %08x\n", (uint32_t)s->gdt.base,
                      s->gdt.limit, (uint32_t)s->idt.base, s->idt.limit);
        strbuf_printf(out, "CR0=%08x CR2=%08x CR3=%08x CR4=%08x\n", (uint32_t)s->cr0,
                      (uint32_t)s->cr2, (uint32_t)s->cr3, (uint32_t)s->cr4);
    }
    const struct kvm_debugregs *d = &v->debugregs;
    for (int i = 0; i < 4; i++) {
        strbuf_printf(out, "DR%d=%016llx ", i, d->db[i]);
    }
    strbuf_printf(out, "\nDR6=%016llx DR7=%016llx\n", d->dr6, d->dr7);
    strbuf_printf(out, "EFER=%016llx\n", s->efer);
    print_fpu(out, &v->fpu, lma);
}

void hmp_info_registers(StrBuf *out, int argc, char **argv, Error **errp)
{
    bool all = false;
    long only = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "-a")) {
            all = true;
            continue;
        }
        only = strtol(argv[i], &end, 10);
        if (*end || end == argv[i] || only < 0) {
            error_setg(errp, "Parameter 'vcpu' expects an integer");
            return;
        }
    }
    DumpVcpu *vcpus = NULL;
    unsigned n = 0;
    if (!machine_dump_vcpus(&vcpus, &n, errp)) {
        return;
    }
    /* QEMU prints these as the command's output, not as errors. */
    if (!n) {
        strbuf_printf(out, "No CPU available\n");
    } else if (!all && (unsigned long)only >= n) {
        strbuf_printf(out, "CPU#%ld not available\n", only);
    }
    for (unsigned i = 0; i < n; i++) {
        if (all) {
            strbuf_printf(out, "\nCPU#%u\n", i);
            print_vcpu(out, &vcpus[i]);
        } else if (i == (unsigned long)only) {
            print_vcpu(out, &vcpus[i]);
        }
    }
    free(vcpus);
}
