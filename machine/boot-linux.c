/*
 * Linux direct boot: bzImage (64-bit boot protocol) and PVH ELF kernels.
 * Every number taken from a file is checked before it is used: the files
 * are as hostile as the guest.
 */
#include "machine/boot-linux.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine/layout.h"
#include "util/byteorder.h"
#include "util/osdep.h"

/* Zero page (struct boot_params) offsets from the Linux x86 boot protocol. */
#define BP_ACPI_RSDP_ADDR   0x070
#define BP_E820_ENTRIES     0x1e8
#define BP_HDR_START        0x1f1
#define BP_SETUP_SECTS      0x1f1
#define BP_VID_MODE         0x1fa
#define BP_BOOT_FLAG        0x1fe
#define BP_JUMP             0x200
#define BP_HEADER           0x202
#define BP_VERSION          0x206
#define BP_TYPE_OF_LOADER   0x210
#define BP_LOADFLAGS        0x211
#define BP_RAMDISK_IMAGE    0x218
#define BP_RAMDISK_SIZE     0x21c
#define BP_HEAP_END_PTR     0x224
#define BP_CMD_LINE_PTR     0x228
#define BP_INITRD_ADDR_MAX  0x22c
#define BP_XLOADFLAGS       0x236
#define BP_CMDLINE_SIZE     0x238
#define BP_PREF_ADDRESS     0x258
#define BP_INIT_SIZE        0x260
#define BP_E820_TABLE       0x2d0
#define BP_SIZE             0x1000
#define BP_E820_MAX         128

#define HDRS_MAGIC          0x53726448      /* "HdrS" */
#define BOOT_FLAG_MAGIC     0xaa55
#define LOADED_HIGH         0x01
#define CAN_USE_HEAP        0x80
#define XLF_KERNEL_64       0x0001
#define LOADER_TYPE_UNKNOWN 0xff
#define MIN_PROTOCOL_64BIT  0x020c          /* 2.12: xloadflags exist */
#define PROTOCOL_RSDP       0x020e          /* 2.14: acpi_rsdp_addr */
#define ENTRY_64BIT_OFFSET  0x200
#define LINUX_DEFAULT_PHYS  0x1000000ULL    /* where a relocatable kernel lands */

/* PVH boot ABI (from the Xen public headers: facts, not code). */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_START_MAGIC     0x336ec578

typedef struct __attribute__((packed)) PvhStartInfo {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
} PvhStartInfo;

typedef struct __attribute__((packed)) PvhModule {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
} PvhModule;

typedef struct __attribute__((packed)) PvhMemmapEntry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
} PvhMemmapEntry;

#define PVH_MODLIST_ADDR (BOOT_PVH_INFO_ADDR + 0x40)
#define PVH_MEMMAP_ADDR  (BOOT_PVH_INFO_ADDR + 0x80)

typedef enum KernelFormat { KERNEL_BZIMAGE, KERNEL_PVH_ELF } KernelFormat;

struct LinuxLoader {
    KernelFormat format;
    char *kernel_path;
    int kernel_fd, initrd_fd;   /* initrd_fd -1 when none */
    uint64_t kernel_size, initrd_size;
    char *cmdline;
    /* bzImage */
    uint8_t setup[BP_SIZE];     /* the first bytes of the file (the header) */
    uint64_t setup_size;        /* bytes of real-mode setup before the payload */
    uint16_t protocol;
    /* PVH */
    uint64_t pvh_entry;
    uint64_t kernel_end;        /* first byte above the kernel in RAM */
};


/* ---- e820 ---- */

static unsigned add_e820(E820Entry *out, unsigned n, uint64_t addr, uint64_t end, uint32_t type)
{
    if (end > addr && n < E820_MAX_ENTRIES) {
        out[n++] = (E820Entry){ .addr = addr, .size = end - addr, .type = type };
    }
    return n;
}

unsigned boot_e820_map(const GuestMemory *mem, E820Entry *out)
{
    uint64_t low_end = mem->nr_regions ? mem->regions[0].size : 0;
    unsigned n = 0;
    n = add_e820(out, n, 0, MIN(low_end, EBDA_START), E820_RAM);
    n = add_e820(out, n, EBDA_START, HIGH_MEMORY_START, E820_RESERVED);
    n = add_e820(out, n, HIGH_MEMORY_START, low_end, E820_RAM);
    n = add_e820(out, n, KVM_IDENTITY_MAP_ADDR, KVM_IDENTITY_MAP_ADDR + 0x4000, E820_RESERVED);
    for (int i = 1; i < mem->nr_regions; i++) {
        n = add_e820(out, n, mem->regions[i].gpa,
                     mem->regions[i].gpa + mem->regions[i].size, E820_RAM);
    }
    return n;
}

/* ---- file helpers ---- */

/* Copy [off, off+len) of fd into guest RAM at gpa. */
static bool load_file_range(int fd, uint64_t off, uint64_t len, const GuestMemory *mem,
                            uint64_t gpa, const char *what, Error **errp)
{
    uint8_t *dst = gmem_ptr(mem, gpa, len);
    if (!dst) {
        error_setg(errp, "%s (%llu bytes at 0x%llx) does not fit in guest RAM",
                   what, (unsigned long long)len, (unsigned long long)gpa);
        return false;
    }
    while (len) {
        ssize_t n = pread(fd, dst, MIN(len, (uint64_t)1 << 30), (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "cannot read %s", what);
            return false;
        }
        dst += n;
        off += n;
        len -= n;
    }
    return true;
}

static int open_regular(const char *path, uint64_t *size, const char *what, Error **errp)
{
    int fd = vireo_open(path, O_RDONLY, 0, errp);
    if (fd < 0) {
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        error_setg(errp, "%s '%s' is not a regular file", what, path);
        close(fd);
        return -1;
    }
    *size = st.st_size;
    return fd;
}

/* ---- bzImage ---- */

static bool probe_bzimage(LinuxLoader *l, Error **errp)
{
    const uint8_t *h = l->setup;
    if (ld_le16(h + BP_BOOT_FLAG) != BOOT_FLAG_MAGIC || ld_le32(h + BP_HEADER) != HDRS_MAGIC) {
        error_setg(errp, "'%s' is not a Linux kernel: no bzImage header and no "
                   "ELF PVH entry", l->kernel_path);
        return false;
    }
    l->protocol = ld_le16(h + BP_VERSION);
    if (l->protocol < MIN_PROTOCOL_64BIT || !(ld_le16(h + BP_XLOADFLAGS) & XLF_KERNEL_64)) {
        error_setg(errp, "kernel '%s' has no 64-bit entry point (boot protocol "
                   "%u.%02u; 2.12 or later with a 64-bit kernel is needed)",
                   l->kernel_path, l->protocol >> 8, l->protocol & 0xff);
        return false;
    }
    if (!(h[BP_LOADFLAGS] & LOADED_HIGH)) {
        error_setg(errp, "kernel '%s' is not a bzImage", l->kernel_path);
        return false;
    }
    unsigned sects = h[BP_SETUP_SECTS] ? h[BP_SETUP_SECTS] : 4;
    l->setup_size = (uint64_t)(sects + 1) * 512;
    if (l->setup_size >= l->kernel_size) {
        error_setg(errp, "kernel '%s' is truncated", l->kernel_path);
        return false;
    }
    uint64_t payload = l->kernel_size - l->setup_size;
    uint64_t init_size = ld_le32(h + BP_INIT_SIZE);
    /* The kernel decompresses itself at its preferred address (16 MiB by default). */
    uint64_t pref = ld_le64(h + BP_PREF_ADDRESS);
    uint64_t run_at = MAX(pref ? pref : LINUX_DEFAULT_PHYS, KERNEL_LOAD_ADDR);
    l->kernel_end = MAX(KERNEL_LOAD_ADDR + payload, run_at + init_size);
    return true;
}

static void write_e820_zero_page(uint8_t *bp, const GuestMemory *mem)
{
    E820Entry map[E820_MAX_ENTRIES];
    unsigned n = boot_e820_map(mem, map);
    bp[BP_E820_ENTRIES] = n;
    memcpy(bp + BP_E820_TABLE, map, n * sizeof(E820Entry));
}

static bool fill_zero_page(LinuxLoader *l, const GuestMemory *mem, uint64_t initrd_addr,
                           uint64_t rsdp_addr, Error **errp)
{
    uint8_t *bp = gmem_ptr(mem, BOOT_ZERO_PAGE_ADDR, BP_SIZE);
    if (!bp) {
        error_setg(errp, "guest RAM is too small for the zero page");
        return false;
    }
    memset(bp, 0, BP_SIZE);
    /* The setup header is copied as the kernel wrote it; its length is in the jump. */
    size_t hdr_end = MIN((size_t)BP_HEADER + l->setup[BP_JUMP + 1], (size_t)BP_E820_TABLE);
    memcpy(bp + BP_HDR_START, l->setup + BP_HDR_START, hdr_end - BP_HDR_START);
    st_le16(bp + BP_VID_MODE, 0xffff);             /* "normal" text mode */
    bp[BP_TYPE_OF_LOADER] = LOADER_TYPE_UNKNOWN;
    bp[BP_LOADFLAGS] |= CAN_USE_HEAP;
    st_le16(bp + BP_HEAP_END_PTR, 0xfe00);
    st_le32(bp + BP_CMD_LINE_PTR, BOOT_CMDLINE_ADDR);
    if (l->initrd_fd >= 0) {
        st_le32(bp + BP_RAMDISK_IMAGE, initrd_addr);
        st_le32(bp + BP_RAMDISK_SIZE, l->initrd_size);
    }
    if (rsdp_addr && l->protocol >= PROTOCOL_RSDP) {
        st_le64(bp + BP_ACPI_RSDP_ADDR, rsdp_addr);
    }
    write_e820_zero_page(bp, mem);
    return true;
}

/* ---- PVH ELF ---- */

static bool read_exact(int fd, void *buf, size_t len, uint64_t off)
{
    return pread(fd, buf, len, (off_t)off) == (ssize_t)len;
}

/* Look for the PVH entry note inside one PT_NOTE segment. */
static bool find_pvh_note(int fd, uint64_t off, uint64_t size, uint64_t *entry)
{
    if (size > (1u << 20)) {
        return false;
    }
    uint8_t *notes = xmalloc(size ? size : 1);
    bool found = false;
    if (read_exact(fd, notes, size, off)) {
        uint64_t pos = 0;
        while (!found && pos + 12 <= size) {
            uint32_t namesz = ld_le32(notes + pos), descsz = ld_le32(notes + pos + 4);
            uint32_t type = ld_le32(notes + pos + 8);
            uint64_t name_off = pos + 12;
            uint64_t desc_off = name_off + ROUND_UP((uint64_t)namesz, 4);
            uint64_t next = desc_off + ROUND_UP((uint64_t)descsz, 4);
            if (next > size || next <= pos) {
                break;
            }
            if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
                memcmp(notes + name_off, "Xen", 4) == 0 && (descsz == 4 || descsz == 8)) {
                *entry = descsz == 4 ? ld_le32(notes + desc_off) : ld_le64(notes + desc_off);
                found = true;
            }
            pos = next;
        }
    }
    free(notes);
    return found;
}

/* Program headers of either ELF class, as 64-bit values. */
typedef struct ElfSeg { uint32_t type; uint64_t off, paddr, filesz, memsz; } ElfSeg;

static bool read_phdr(LinuxLoader *l, bool is64, uint64_t phoff, unsigned i, ElfSeg *seg)
{
    if (is64) {
        Elf64_Phdr p;
        if (!read_exact(l->kernel_fd, &p, sizeof(p), phoff + (uint64_t)i * sizeof(p))) {
            return false;
        }
        *seg = (ElfSeg){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
    } else {
        Elf32_Phdr p;
        if (!read_exact(l->kernel_fd, &p, sizeof(p), phoff + (uint64_t)i * sizeof(p))) {
            return false;
        }
        *seg = (ElfSeg){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
    }
    return true;
}

/*
 * Copy one PT_LOAD segment into guest RAM and zero its tail past the file
 * data. The whole segment is checked against RAM first: a memsz that
 * leaves RAM must fail with its own error, not half-loaded and silent.
 */
static bool load_elf_segment(LinuxLoader *l, const ElfSeg *s, unsigned i,
                             const GuestMemory *mem, Error **errp)
{
    uint8_t *dst = gmem_ptr(mem, s->paddr, s->memsz);
    if (!dst) {
        error_setg(errp, "kernel '%s': ELF segment %u (%llu bytes at 0x%llx) does not "
                   "fit in guest RAM", l->kernel_path, i, (unsigned long long)s->memsz,
                   (unsigned long long)s->paddr);
        return false;
    }
    if (!load_file_range(l->kernel_fd, s->off, s->filesz, mem, s->paddr, "kernel", errp)) {
        error_prepend(errp, "kernel '%s': ", l->kernel_path);
        return false;
    }
    memset(dst + s->filesz, 0, s->memsz - s->filesz);
    return true;
}

/* Walk the program headers; with mem != NULL also load the PT_LOAD segments. */
static bool walk_elf(LinuxLoader *l, const GuestMemory *mem, Error **errp)
{
    const uint8_t *e = l->setup;
    bool is64 = e[EI_CLASS] == ELFCLASS64;
    uint64_t phoff = is64 ? ld_le64(e + offsetof(Elf64_Ehdr, e_phoff))
                          : ld_le32(e + offsetof(Elf32_Ehdr, e_phoff));
    unsigned phnum = ld_le16(e + (is64 ? offsetof(Elf64_Ehdr, e_phnum) : offsetof(Elf32_Ehdr, e_phnum)));
    bool have_entry = false;

    l->kernel_end = HIGH_MEMORY_START;
    for (unsigned i = 0; i < phnum; i++) {
        ElfSeg s;
        if (!read_phdr(l, is64, phoff, i, &s)) {
            error_setg(errp, "kernel '%s': bad ELF program header", l->kernel_path);
            return false;
        }
        if (s.type == PT_NOTE && find_pvh_note(l->kernel_fd, s.off, s.filesz, &l->pvh_entry)) {
            have_entry = true;
        }
        if (s.type != PT_LOAD) {
            continue;
        }
        if (s.filesz > s.memsz || !range_within(s.off, s.filesz, l->kernel_size) ||
            s.paddr < HIGH_MEMORY_START || !range_within(s.paddr, s.memsz, UINT64_MAX)) {
            error_setg(errp, "kernel '%s': ELF segment %u is invalid", l->kernel_path, i);
            return false;
        }
        l->kernel_end = MAX(l->kernel_end, s.paddr + s.memsz);
        if (mem && !load_elf_segment(l, &s, i, mem, errp)) {
            return false;
        }
    }
    if (!have_entry) {
        error_setg(errp, "kernel '%s' is an ELF file without a PVH entry note", l->kernel_path);
        return false;
    }
    return true;
}

static bool probe_elf(LinuxLoader *l, Error **errp)
{
    const uint8_t *e = l->setup;
    bool is64 = e[EI_CLASS] == ELFCLASS64;
    uint16_t machine = ld_le16(e + offsetof(Elf64_Ehdr, e_machine));
    if ((!is64 && e[EI_CLASS] != ELFCLASS32) || e[EI_DATA] != ELFDATA2LSB ||
        (machine != EM_X86_64 && machine != EM_386)) {
        error_setg(errp, "kernel '%s' is not an x86 ELF file", l->kernel_path);
        return false;
    }
    l->format = KERNEL_PVH_ELF;
    return walk_elf(l, NULL, errp);
}

static bool write_pvh_info(LinuxLoader *l, const GuestMemory *mem, uint64_t initrd_addr,
                           uint64_t rsdp_addr, Error **errp)
{
    E820Entry map[E820_MAX_ENTRIES];
    unsigned n = boot_e820_map(mem, map);
    PvhStartInfo info = {
        .magic = PVH_START_MAGIC, .version = 1,
        .cmdline_paddr = BOOT_CMDLINE_ADDR, .rsdp_paddr = rsdp_addr,
        .memmap_paddr = PVH_MEMMAP_ADDR, .memmap_entries = n,
    };
    bool ok = true;
    for (unsigned i = 0; i < n; i++) {
        PvhMemmapEntry m = { map[i].addr, map[i].size, map[i].type, 0 };
        ok &= gmem_write(mem, PVH_MEMMAP_ADDR + i * sizeof(m), &m, sizeof(m));
    }
    if (l->initrd_fd >= 0) {
        PvhModule mod = { .paddr = initrd_addr, .size = l->initrd_size };
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST_ADDR;
        ok &= gmem_write(mem, PVH_MODLIST_ADDR, &mod, sizeof(mod));
    }
    ok &= gmem_write(mem, BOOT_PVH_INFO_ADDR, &info, sizeof(info));
    if (!ok) {
        error_setg(errp, "guest RAM is too small for the PVH start info");
    }
    return ok;
}

/* ---- entry-time CPU tables ---- */

/* Flat descriptors: null, 32-bit code (PVH), 64-bit code, data, 32-bit TSS. */
static const uint64_t boot_gdt[] = {
    0,
    0x00cf9b000000ffffULL,
    0x00af9b000000ffffULL,
    0x00cf93000000ffffULL,
    0x0000890000000067ULL,
};

#define PTE_PRESENT_RW 0x3ULL
#define PTE_LARGE      0x80ULL

bool boot_write_cpu_tables(const GuestMemory *mem)
{
    bool ok = gmem_write(mem, BOOT_GDT_ADDR, boot_gdt, sizeof(boot_gdt));
    /* Identity map of the first 4 GiB with 2 MiB pages. */
    ok &= gmem_write_u64(mem, BOOT_PML4_ADDR, BOOT_PDPT_ADDR | PTE_PRESENT_RW);
    for (uint64_t i = 0; i < 4; i++) {
        uint64_t pd = BOOT_PD_ADDR + i * 0x1000;
        ok &= gmem_write_u64(mem, BOOT_PDPT_ADDR + i * 8, pd | PTE_PRESENT_RW);
        for (uint64_t j = 0; j < 512; j++) {
            uint64_t addr = (i << 30) | (j << 21);
            ok &= gmem_write_u64(mem, pd + j * 8, addr | PTE_PRESENT_RW | PTE_LARGE);
        }
    }
    return ok;
}

/* ---- common ---- */

LinuxLoader *linux_loader_open(const char *kernel, const char *initrd,
                               const char *cmdline, Error **errp)
{
    LinuxLoader *l = xzalloc(sizeof(*l));
    l->kernel_path = xstrdup(kernel);
    l->kernel_fd = l->initrd_fd = -1;
    l->cmdline = xstrdup(cmdline ? cmdline : "");
    l->kernel_fd = open_regular(kernel, &l->kernel_size, "kernel", errp);
    if (l->kernel_fd < 0) {
        goto fail;
    }
    if (l->kernel_size < 1024) {
        error_setg(errp, "'%s' is not a Linux kernel: too small", kernel);
        goto fail;
    }
    size_t head = MIN(l->kernel_size, (uint64_t)sizeof(l->setup));
    if (!read_exact(l->kernel_fd, l->setup, head, 0)) {
        error_setg_errno(errp, errno, "cannot read kernel '%s'", kernel);
        goto fail;
    }
    bool ok = memcmp(l->setup, ELFMAG, SELFMAG) == 0 ? probe_elf(l, errp) : probe_bzimage(l, errp);
    if (!ok) {
        goto fail;
    }
    if (strlen(l->cmdline) + 1 > BOOT_CMDLINE_MAX) {
        error_setg(errp, "kernel command line is too long");
        goto fail;
    }
    /* cmdline_size counts the bytes before the terminating NUL. */
    if (l->format == KERNEL_BZIMAGE && strlen(l->cmdline) > ld_le32(l->setup + BP_CMDLINE_SIZE)) {
        error_setg(errp, "kernel command line is too long: this kernel takes at most %u bytes",
                   ld_le32(l->setup + BP_CMDLINE_SIZE));
        goto fail;
    }
    if (initrd) {
        l->initrd_fd = open_regular(initrd, &l->initrd_size, "initrd", errp);
        if (l->initrd_fd < 0) {
            goto fail;
        }
    }
    return l;
fail:
    linux_loader_close(l);
    return NULL;
}

/* Highest page-aligned place for the initrd below limit, above the kernel. */
static bool place_initrd(LinuxLoader *l, const GuestMemory *mem, uint64_t *addr, Error **errp)
{
    uint64_t top = mem->regions[0].size;           /* end of RAM below 4 GiB */
    if (l->format == KERNEL_BZIMAGE) {
        uint64_t max = (uint64_t)ld_le32(l->setup + BP_INITRD_ADDR_MAX);
        top = MIN(top, (max ? max : 0x37ffffff) + 1);
    }
    if (l->initrd_size > top || ((top - l->initrd_size) & ~0xfffULL) < l->kernel_end) {
        error_setg(errp, "initrd (%llu bytes) does not fit in guest RAM (%llu bytes) "
                   "together with the kernel", (unsigned long long)l->initrd_size,
                   (unsigned long long)mem->ram_size);
        return false;
    }
    *addr = (top - l->initrd_size) & ~0xfffULL;
    return true;
}

/* Place and copy the initrd, if there is one (*addr stays 0 without). */
static bool load_initrd(LinuxLoader *l, const GuestMemory *mem, uint64_t *addr, Error **errp)
{
    *addr = 0;
    return l->initrd_fd < 0 ||
           (place_initrd(l, mem, addr, errp) &&
            load_file_range(l->initrd_fd, 0, l->initrd_size, mem, *addr, "initrd", errp));
}

static bool load_bzimage(LinuxLoader *l, const GuestMemory *mem, uint64_t rsdp_addr,
                         BootEntry *entry, Error **errp)
{
    uint64_t payload = l->kernel_size - l->setup_size;
    if (l->kernel_end > mem->regions[0].size) {
        error_setg(errp, "guest RAM (%llu bytes) is too small for kernel '%s' "
                   "(needs %llu bytes)", (unsigned long long)mem->ram_size,
                   l->kernel_path, (unsigned long long)l->kernel_end);
        return false;
    }
    if (!load_file_range(l->kernel_fd, l->setup_size, payload, mem, KERNEL_LOAD_ADDR,
                         "kernel", errp)) {
        return false;
    }
    uint64_t initrd_addr;
    if (!load_initrd(l, mem, &initrd_addr, errp)) {
        return false;
    }
    if (!fill_zero_page(l, mem, initrd_addr, rsdp_addr, errp)) {
        return false;
    }
    *entry = (BootEntry){ .mode = BOOT_ENTRY_LINUX64,
                          .entry = KERNEL_LOAD_ADDR + ENTRY_64BIT_OFFSET,
                          .arg = BOOT_ZERO_PAGE_ADDR, .stack = BOOT_STACK_ADDR };
    return true;
}

static bool load_pvh(LinuxLoader *l, const GuestMemory *mem, uint64_t rsdp_addr,
                     BootEntry *entry, Error **errp)
{
    if (!walk_elf(l, mem, errp)) {
        return false;
    }
    uint64_t initrd_addr;
    if (!load_initrd(l, mem, &initrd_addr, errp)) {
        return false;
    }
    if (!write_pvh_info(l, mem, initrd_addr, rsdp_addr, errp)) {
        return false;
    }
    *entry = (BootEntry){ .mode = BOOT_ENTRY_PVH32, .entry = l->pvh_entry,
                          .arg = BOOT_PVH_INFO_ADDR, .stack = BOOT_STACK_ADDR };
    return true;
}

bool linux_loader_load(LinuxLoader *l, const GuestMemory *mem, uint64_t rsdp_addr,
                       BootEntry *entry, Error **errp)
{
    if (mem->nr_regions < 1 || mem->regions[0].size < HIGH_MEMORY_START * 2) {
        error_setg(errp, "guest RAM is too small to boot a kernel");
        return false;
    }
    if (!boot_write_cpu_tables(mem) ||
        !gmem_write(mem, BOOT_CMDLINE_ADDR, l->cmdline, strlen(l->cmdline) + 1)) {
        error_setg(errp, "guest RAM is too small for the command line");
        return false;
    }
    return l->format == KERNEL_BZIMAGE ? load_bzimage(l, mem, rsdp_addr, entry, errp)
                                       : load_pvh(l, mem, rsdp_addr, entry, errp);
}

void linux_loader_close(LinuxLoader *l)
{
    if (!l) {
        return;
    }
    if (l->kernel_fd >= 0) {
        close(l->kernel_fd);
    }
    if (l->initrd_fd >= 0) {
        close(l->initrd_fd);
    }
    free(l->kernel_path);
    free(l->cmdline);
    free(l);
}
