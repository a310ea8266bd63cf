/*
 * Direct Linux boot: no firmware. The loader puts the kernel, initrd,
 * command line, zero page (or PVH start_info) and entry page tables into
 * guest RAM and says where the boot CPU starts and in which mode.
 *
 * Kernels accepted:
 *  - bzImage, Linux x86 boot protocol 2.12 or later with a 64-bit entry
 *    point: entered in long mode at load address + 0x200 with RSI = zero page;
 *  - ELF vmlinux carrying a PVH entry note (Xen note type 18): entered in
 *    32-bit protected mode without paging, EBX = hvm_start_info.
 * The files stay open so a system reset can load them again, since the
 * running kernel overwrote its own image in RAM.
 */
#ifndef VIREO_MACHINE_BOOT_LINUX_H
#define VIREO_MACHINE_BOOT_LINUX_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/guest-memory.h"
#include "util/error.h"

typedef enum BootEntryMode {
    BOOT_ENTRY_LINUX64,     /* long mode, paging on, RSI = arg */
    BOOT_ENTRY_PVH32,       /* protected mode, paging off, EBX = arg */
} BootEntryMode;

typedef struct BootEntry {
    BootEntryMode mode;
    uint64_t entry;         /* first instruction */
    uint64_t arg;           /* zero page or start_info address */
    uint64_t stack;         /* initial stack pointer */
} BootEntry;

#define E820_RAM        1
#define E820_RESERVED   2

typedef struct E820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed)) E820Entry;

#define E820_MAX_ENTRIES 8

/* The e820 map of this machine for mem. Returns the number of entries. */
unsigned boot_e820_map(const GuestMemory *mem, E820Entry *out);

/* GDT and identity page tables at the addresses in machine/layout.h. */
bool boot_write_cpu_tables(const GuestMemory *mem);

typedef struct LinuxLoader LinuxLoader;

/* Open and check the kernel (and initrd); nothing is loaded yet. */
LinuxLoader *linux_loader_open(const char *kernel, const char *initrd,
                               const char *cmdline, Error **errp);
/* (Re)load everything into mem. rsdp_addr is passed to the kernel (0: none). */
bool linux_loader_load(LinuxLoader *l, const GuestMemory *mem, uint64_t rsdp_addr,
                       BootEntry *entry, Error **errp);
void linux_loader_close(LinuxLoader *l);

#endif
