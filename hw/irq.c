#include "hw/irq.h"

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
