/*
 * Interrupt delivery from devices to the guest, independent of the
 * accelerator. Devices raise and lower GSIs (the inputs of the platform's
 * interrupt controllers: ISA IRQs 0-15 and PCI INTx lines) and send MSIs.
 * The accelerator installs the back-end: KVM turns these into
 * KVM_IRQ_LINE / KVM_SIGNAL_MSI (or irqfd on fast paths); qtest reports them
 * to the test as "IRQ raise N" / "IRQ lower N" lines.
 */
#ifndef VIREO_HW_IRQ_H
#define VIREO_HW_IRQ_H

#include <stdbool.h>
#include <stdint.h>

typedef struct IrqBackend {
    void (*set_level)(void *opaque, unsigned gsi, bool level);
    void (*send_msi)(void *opaque, uint64_t addr, uint32_t data);
    /*
     * Optional fast path (KVM irqfd): signalling eventfd delivers the MSI
     * in the kernel without waking vireo. add returns a handle >= 0 or -1.
     */
    int (*irqfd_add)(void *opaque, int eventfd, uint64_t addr, uint32_t data);
    bool (*irqfd_update)(void *opaque, int handle, uint64_t addr, uint32_t data);
    void (*irqfd_remove)(void *opaque, int handle);
    void *opaque;
} IrqBackend;

void irq_set_backend(const IrqBackend *backend);

void irq_set_level(unsigned gsi, bool level);
static inline void irq_raise(unsigned gsi) { irq_set_level(gsi, true); }
static inline void irq_lower(unsigned gsi) { irq_set_level(gsi, false); }
/* Edge: raise then lower (ISA devices in edge mode). */
void irq_pulse(unsigned gsi);
void msi_send(uint64_t addr, uint32_t data);

/*
 * Bind an eventfd to an MSI message in the back-end (irqfd). Returns a
 * handle, or -1 when the back-end has no such path (qtest) or is out of
 * routes: the caller then watches the eventfd itself and uses msi_send.
 * PCI devices normally use pci_msix_set_eventfd() instead (hw/pci.h),
 * which also follows masking and message changes.
 */
/* Does the back-end deliver MSIs from eventfds in the kernel (KVM)? */
bool msi_irqfd_available(void);
int msi_irqfd_add(int eventfd, uint64_t addr, uint32_t data);
bool msi_irqfd_update(int handle, uint64_t addr, uint32_t data);
void msi_irqfd_remove(int handle);

#endif
