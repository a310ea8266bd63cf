/*
 * ivshmem: inter-VM shared memory as a PCI device (Red Hat 1af4:1110,
 * revision 1, class RAM memory), in QEMU's two flavours:
 *
 *   -device ivshmem-plain,memdev=ID        shared memory only, from a host
 *                                          memory backend (memory/host-backend.h)
 *   -device ivshmem-doorbell,chardev=ID,vectors=N
 *                                          shared memory and interrupts, both
 *                                          handed out by an ivshmem server
 *
 * BAR0 holds four 32-bit registers (Interrupt Mask, Interrupt Status,
 * IVPosition, Doorbell), BAR1 the MSI-X table and PBA (doorbell only),
 * BAR2 the shared memory: 64-bit, prefetchable, a KVM memory slot on KVM.
 */
#ifndef VIREO_HW_IVSHMEM_H
#define VIREO_HW_IVSHMEM_H

#include <stdbool.h>

#include "hw/pci.h"
#include "util/error.h"

/* Create the device a -device option string describes (either type). */
bool ivshmem_create(const char *opts, PciHost *pci, Error **errp);
/* At machine teardown, before the PCI host goes: close every descriptor. */
void ivshmem_destroy_all(void);

#endif
