#include "hw/irq.h"

#include <stddef.h>

static IrqBackend irq_backend;

void irq_set_backend(const IrqBackend *backend)
{
    irq_backend = *backend;
}

void irq_set_level(unsigned gsi, bool level)
{
    if (irq_backend.set_level) {
        irq_backend.set_level(irq_backend.opaque, gsi, level);
    }
}

void irq_pulse(unsigned gsi)
{
    irq_set_level(gsi, true);
    irq_set_level(gsi, false);
}

void msi_send(uint64_t addr, uint32_t data)
{
    if (irq_backend.send_msi) {
        irq_backend.send_msi(irq_backend.opaque, addr, data);
    }
}

bool msi_irqfd_available(void)
{
    return irq_backend.irqfd_add != NULL;
}

int msi_irqfd_add(int eventfd, uint64_t addr, uint32_t data)
{
    if (!irq_backend.irqfd_add) {
        return -1;
    }
    return irq_backend.irqfd_add(irq_backend.opaque, eventfd, addr, data);
}

bool msi_irqfd_update(int handle, uint64_t addr, uint32_t data)
{
    return irq_backend.irqfd_update &&
           irq_backend.irqfd_update(irq_backend.opaque, handle, addr, data);
}

void msi_irqfd_remove(int handle)
{
    if (irq_backend.irqfd_remove && handle >= 0) {
        irq_backend.irqfd_remove(irq_backend.opaque, handle);
    }
}
