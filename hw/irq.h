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
    void *opaque;
} IrqBackend;

void irq_set_backend(const IrqBackend *backend);

void irq_set_level(unsigned gsi, bool level);
static inline void irq_raise(unsigned gsi) { irq_set_level(gsi, true); }
static inline void irq_lower(unsigned gsi) { irq_set_level(gsi, false); }
/* Edge: raise then lower (ISA devices in edge mode). */
void irq_pulse(unsigned gsi);
void msi_send(uint64_t addr, uint32_t data);

#endif
