/*
 * Guest-physical layout of the vireo x86 machine. One place, so the boot
 * loader, the ACPI tables, the e820 map and the KVM set-up agree.
 *
 *   0x000500  GDT used at entry
 *   0x006000  PVH start_info, module list and memory map
 *   0x007000  Linux zero page (struct boot_params)
 *   0x008ff0  initial stack pointer
 *   0x009000  identity page tables for the 64-bit entry (PML4, PDPT, 4 PDs)
 *   0x020000  kernel command line
 *   0x09fc00  reserved to 1 MiB (EBDA, ACPI tables at 0xe0000, BIOS area)
 *   0x100000  kernel
 *   ...       RAM up to LOWMEM_LIMIT, then the 32-bit PCI hole:
 *   0xc0000000 .. 0xfebfffff  PCI memory window
 *   0xfec00000 IOAPIC, 0xfee00000 local APICs (in KVM)
 *   0xfeffc000 KVM's identity map page and TSS (3 pages)
 *   4 GiB     RAM above LOWMEM_LIMIT continues here
 */
#ifndef VIREO_MACHINE_LAYOUT_H
#define VIREO_MACHINE_LAYOUT_H

#define BOOT_GDT_ADDR           0x500ULL
#define BOOT_PVH_INFO_ADDR      0x6000ULL
#define BOOT_ZERO_PAGE_ADDR     0x7000ULL
#define BOOT_STACK_ADDR         0x8ff0ULL
#define BOOT_PML4_ADDR          0x9000ULL
#define BOOT_PDPT_ADDR          0xa000ULL
#define BOOT_PD_ADDR            0xb000ULL   /* four pages: 4 GiB of 2 MiB pages */
#define BOOT_CMDLINE_ADDR       0x20000ULL
#define BOOT_CMDLINE_MAX        0x10000ULL
#define EBDA_START              0x9fc00ULL
#define ACPI_TABLES_ADDR        0xe0000ULL
#define ACPI_TABLES_SIZE        0x20000ULL
#define HIGH_MEMORY_START       0x100000ULL
#define KERNEL_LOAD_ADDR        HIGH_MEMORY_START

#define LOWMEM_LIMIT            0xc0000000ULL
#define PCI_MMIO_START          0xc0000000ULL
#define PCI_MMIO_END            0xfebfffffULL   /* inclusive */
#define IOAPIC_ADDR             0xfec00000ULL
#define LAPIC_ADDR              0xfee00000ULL
#define KVM_IDENTITY_MAP_ADDR   0xfeffc000ULL
#define KVM_TSS_ADDR            0xfeffd000ULL
#define FOUR_GIB                0x100000000ULL

/* GDT selectors the Linux boot protocol expects. */
#define BOOT_CS_SELECTOR        0x10
#define BOOT_DS_SELECTOR        0x18
#define BOOT_TSS_SELECTOR       0x20

#endif
