#include "machine/dump-elf.h"

#include <elf.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/osdep.h"

/* One PT_LOAD: a piece of one RAM region. */
typedef struct DumpRange {
    uint64_t gpa, size;
    const uint8_t *hva;
} DumpRange;

struct DumpElf {
    uint8_t *head;          /* ELF header, program headers, notes */
    size_t head_len, head_done;
    DumpRange ranges[GUEST_MEMORY_MAX_REGIONS];
    unsigned nr_ranges;
    unsigned cur;           /* range being written */
    uint64_t cur_off;       /* bytes of it written */
    uint64_t total;
    uint64_t completed;     /* read by other threads: atomic */
};

/* ---- notes ---- */

#define NOTE_ALIGN(n) (((n) + 3) & ~(size_t)3)

static size_t note_size(const char *name, size_t desc)
{
    return sizeof(Elf64_Nhdr) + NOTE_ALIGN(strlen(name) + 1) + NOTE_ALIGN(desc);
}

static uint8_t *put_note(uint8_t *p, const char *name, uint32_t type,
                         const void *desc, size_t desc_len)
{
    Elf64_Nhdr nh = { .n_namesz = strlen(name) + 1, .n_descsz = desc_len, .n_type = type };
    memcpy(p, &nh, sizeof(nh));
    p += sizeof(nh);
    memcpy(p, name, nh.n_namesz);   /* the rest of the padding stays zero */
    p += NOTE_ALIGN(nh.n_namesz);
    memcpy(p, desc, desc_len);
    return p + NOTE_ALIGN(desc_len);
}

static void put_u32(uint8_t *buf, size_t off, uint32_t v)
{
    memcpy(buf + off, &v, 4);
}

static void put_u64(uint8_t *buf, size_t off, uint64_t v)
{
    memcpy(buf + off, &v, 8);
}

/*
 * NT_PRSTATUS of x86-64 Linux (struct elf_prstatus): the pid at 32, the
 * general registers (struct user_regs_struct, 27 words) at 112.
 */
static void fill_prstatus(uint8_t *d, const DumpVcpu *v, unsigned index)
{
    const struct kvm_regs *r = &v->regs;
    const struct kvm_sregs *s = &v->sregs;
    const uint64_t regs[27] = {
        r->r15, r->r14, r->r13, r->r12, r->rbp, r->rbx, r->r11, r->r10,
        r->r9, r->r8, r->rax, r->rcx, r->rdx, r->rsi, r->rdi,
        r->rax,                         /* orig_rax: no system call to restart */
        r->rip, s->cs.selector, r->rflags, r->rsp, s->ss.selector,
        s->fs.base, s->gs.base,
        s->ds.selector, s->es.selector, s->fs.selector, s->gs.selector,
    };
    memset(d, 0, DUMP_PRSTATUS_SIZE);
    put_u32(d, 32, index + 1);          /* pr_pid: gdb shows one thread per vCPU */
    for (unsigned i = 0; i < 27; i++) {
        put_u64(d, 112 + 8 * i, regs[i]);
    }
}

/* The attribute bits of a segment descriptor, where its high word has them. */
static uint32_t segment_flags(const struct kvm_segment *seg)
{
    return (uint32_t)seg->type << 8 | (uint32_t)seg->s << 12 | (uint32_t)seg->dpl << 13 |
           (uint32_t)seg->present << 15 | (uint32_t)seg->avl << 20 | (uint32_t)seg->l << 21 |
           (uint32_t)seg->db << 22 | (uint32_t)seg->g << 23;
}

static size_t put_segment(uint8_t *d, size_t off, uint32_t selector, uint32_t limit,
                          uint32_t flags, uint64_t base)
{
    put_u32(d, off, selector);
    put_u32(d, off + 4, limit);
    put_u32(d, off + 8, flags);
    put_u64(d, off + 16, base);
    return off + 24;
}

/*
 * QEMU's "QEMU" note (QEMUCPUState, version 1): version and size, the 16
 * general registers, rip and rflags, ten segments (cs ds es fs gs ss ldt tr
 * gdt idt: selector, limit, flags, padding, base), cr0-cr4 and the kernel
 * GS base.
 */
static void fill_qemu_cpu(uint8_t *d, const DumpVcpu *v)
{
    const struct kvm_regs *r = &v->regs;
    const struct kvm_sregs *s = &v->sregs;
    const uint64_t gpr[18] = {
        r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp, r->rbp,
        r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
        r->rip, r->rflags,
    };
    const struct kvm_segment *segs[8] = {
        &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->ldt, &s->tr,
    };
    size_t off = 8;
    memset(d, 0, DUMP_QEMU_CPU_SIZE);
    put_u32(d, 0, 1);
    put_u32(d, 4, DUMP_QEMU_CPU_SIZE);
    for (unsigned i = 0; i < 18; i++, off += 8) {
        put_u64(d, off, gpr[i]);
    }
    for (unsigned i = 0; i < 8; i++) {
        off = put_segment(d, off, segs[i]->selector, segs[i]->limit,
                          segment_flags(segs[i]), segs[i]->base);
    }
    off = put_segment(d, off, 0, s->gdt.limit, 0, s->gdt.base);
    off = put_segment(d, off, 0, s->idt.limit, 0, s->idt.base);
    const uint64_t cr[5] = { s->cr0, 0, s->cr2, s->cr3, s->cr4 };
    for (unsigned i = 0; i < 5; i++, off += 8) {
        put_u64(d, off, cr[i]);
    }
    put_u64(d, off, v->kernel_gs_base);
}

/* ---- the plan ---- */

DumpElf *dump_elf_new(const GuestMemory *mem, const DumpVcpu *vcpus, unsigned nr_vcpus,
                      bool filter, uint64_t begin, uint64_t length, Error **errp)
{
    DumpElf *d = xzalloc(sizeof(*d));
    uint64_t end = begin + length;
    if (filter && end < begin) {
        end = begin;        /* a range that wraps holds nothing */
    }
    for (int i = 0; mem && i < mem->nr_regions; i++) {
        const GuestRegion *r = &mem->regions[i];
        uint64_t lo = r->gpa, hi = r->gpa + r->size;
        if (filter) {
            lo = lo > begin ? lo : begin;
            hi = hi < end ? hi : end;
        }
        if (lo >= hi) {
            continue;
        }
        d->ranges[d->nr_ranges++] = (DumpRange){ lo, hi - lo, r->hva + (lo - r->gpa) };
        d->total += hi - lo;
    }
    if (!d->nr_ranges) {
        error_setg(errp, "dump: no guest memory to dump");
        free(d);
        return NULL;
    }

    size_t notes = 0;
    if (nr_vcpus) {
        notes = nr_vcpus * (note_size("CORE", DUMP_PRSTATUS_SIZE) +
                            note_size("QEMU", DUMP_QEMU_CPU_SIZE));
    }
    unsigned phnum = d->nr_ranges + (notes ? 1 : 0);
    size_t phoff = sizeof(Elf64_Ehdr);
    size_t notes_off = phoff + phnum * sizeof(Elf64_Phdr);
    d->head_len = notes_off + notes;
    d->head = xzalloc(d->head_len);

    Elf64_Ehdr eh = {
        .e_type = ET_CORE, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
        .e_phoff = phoff, .e_ehsize = sizeof(Elf64_Ehdr),
        .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = phnum,
    };
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
    memcpy(d->head, &eh, sizeof(eh));

    Elf64_Phdr *ph = (Elf64_Phdr *)(d->head + phoff);
    if (notes) {
        *ph++ = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = notes_off,
                              .p_filesz = notes, .p_memsz = notes };
    }
    uint64_t off = d->head_len;
    for (unsigned i = 0; i < d->nr_ranges; i++) {
        const DumpRange *r = &d->ranges[i];
        *ph++ = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = off,
                              .p_vaddr = r->gpa, .p_paddr = r->gpa,
                              .p_filesz = r->size, .p_memsz = r->size };
        off += r->size;
    }

    uint8_t *p = d->head + notes_off;
    uint8_t prstatus[DUMP_PRSTATUS_SIZE], qcpu[DUMP_QEMU_CPU_SIZE];
    for (unsigned i = 0; i < nr_vcpus; i++) {
        fill_prstatus(prstatus, &vcpus[i], i);
        p = put_note(p, "CORE", NT_PRSTATUS, prstatus, sizeof(prstatus));
    }
    for (unsigned i = 0; i < nr_vcpus; i++) {
        fill_qemu_cpu(qcpu, &vcpus[i]);
        p = put_note(p, "QEMU", 0, qcpu, sizeof(qcpu));
    }
    return d;
}

uint64_t dump_elf_total(const DumpElf *d)
{
    return d->total;
}

uint64_t dump_elf_completed(const DumpElf *d)
{
    return __atomic_load_n(&d->completed, __ATOMIC_RELAXED);
}

/* Write some of buf; false with errp set on an error. Waits out EAGAIN. */
static bool write_some(int fd, const uint8_t *buf, size_t len, size_t *done, Error **errp)
{
    ssize_t n = write(fd, buf, len);
    if (n > 0) {
        *done = n;
        return true;
    }
    *done = 0;
    if (n < 0 && errno == EINTR) {
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        poll(&pfd, 1, 1000);
        return true;
    }
    error_setg_errno(errp, n < 0 ? errno : ENOSPC, "dump: failed to save memory");
    return false;
}

int dump_elf_step(DumpElf *d, int fd, uint64_t max_bytes, Error **errp)
{
    size_t done;
    while (d->head_done < d->head_len) {
        if (!write_some(fd, d->head + d->head_done, d->head_len - d->head_done, &done, errp)) {
            return -1;
        }
        d->head_done += done;
    }
    uint64_t budget = max_bytes ? max_bytes : 1;
    while (d->cur < d->nr_ranges && budget) {
        const DumpRange *r = &d->ranges[d->cur];
        uint64_t left = r->size - d->cur_off;
        size_t chunk = left < budget ? left : budget;
        if (chunk > (1u << 30)) {
            chunk = 1u << 30;
        }
        if (!write_some(fd, r->hva + d->cur_off, chunk, &done, errp)) {
            return -1;
        }
        d->cur_off += done;
        budget -= done < budget ? done : budget;
        __atomic_store_n(&d->completed, d->completed + done, __ATOMIC_RELAXED);
        if (d->cur_off == r->size) {
            d->cur++;
            d->cur_off = 0;
        }
    }
    return d->cur == d->nr_ranges ? 1 : 0;
}

void dump_elf_free(DumpElf *d)
{
    if (d) {
        free(d->head);
        free(d);
    }
}
