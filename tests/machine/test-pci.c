/*
 * PCI host bridge unit tests: configuration mechanism #1 as a guest uses
 * it, BAR sizing and mapping, INTx sharing, MSI, MSI-X masking and pending
 * bits, and eventfd-driven vectors with and without an irqfd back-end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fakes.h"
#include "hw/pci.h"
#include "memory/address-space.h"
#include "util/osdep.h"

static unsigned test_gsi(unsigned slot, unsigned pin) { return 16 + (slot + pin) % 4; }

typedef struct Fixture {
    PciHost *host;
    PciDevice *dev;
    uint64_t last_offset;       /* what the BAR ops saw */
    uint64_t last_value;
    unsigned writes;
} Fixture;

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
    Fixture *f = opaque;
    f->last_offset = off;
    return 0x1234 + off;
}

static void bar_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
    Fixture *f = opaque;
    f->last_offset = off;
    f->last_value = v;
    f->writes++;
}

static const IoOps bar_ops = { .read = bar_read, .write = bar_write };

static const PciDeviceInfo test_info = {
    .name = "test", .vendor_id = 0x1af4, .device_id = 0x1041, .class_code = 0x020000,
    .intx_pin = 1,
};

static int setup_common(void **state, bool irqfd)
{
    fake_irq_install(irqfd);
    Fixture *f = xzalloc(sizeof(*f));
    PciHostConfig cfg = { .intx_gsi = test_gsi };
    f->host = pci_host_create(&cfg, NULL);
    assert_non_null(f->host);
    f->dev = pci_device_add(f->host, -1, &test_info, f, NULL);
    assert_non_null(f->dev);
    assert_int_equal(pci_device_slot(f->dev), 1);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_common(state, false); }
static int setup_irqfd(void **state) { return setup_common(state, true); }

static int teardown(void **state)
{
    Fixture *f = *state;
    pci_host_destroy(f->host);
    free(f);
    return 0;
}

static uint32_t cfg_read(unsigned slot, unsigned reg, unsigned size)
{
    uint64_t v;
    io_dispatch_write(AS_PIO, 0xcf8, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
    io_dispatch_read(AS_PIO, 0xcfc + (reg & 3), size, &v);
    return v;
}

static void cfg_write(unsigned slot, unsigned reg, unsigned size, uint32_t v)
{
    io_dispatch_write(AS_PIO, 0xcf8, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
    io_dispatch_write(AS_PIO, 0xcfc + (reg & 3), size, v);
}

static void test_enumeration(void **state)
{
    assert_int_equal(cfg_read(0, 0, 4), 0x00081b36);
    assert_int_equal(cfg_read(1, 0, 4), 0x10411af4);
    assert_int_equal(cfg_read(1, 0x0a, 2), 0x0200);
    assert_int_equal(cfg_read(2, 0, 4), 0xffffffff);
    assert_int_equal(cfg_read(1, PCI_INTERRUPT_PIN, 1), 1);
    /* Address latch off (bit 31 clear): nothing answers. */
    io_dispatch_write(AS_PIO, 0xcf8, 4, 1 << 11);
    uint64_t v;
    io_dispatch_read(AS_PIO, 0xcfc, 4, &v);
    assert_int_equal(v, 0xffffffff);
    /* Extended offsets (bits 27:24) do not alias onto the header. */
    io_dispatch_write(AS_PIO, 0xcf8, 4, 0x81000000u | 1 << 11);
    io_dispatch_read(AS_PIO, 0xcfc, 4, &v);
    assert_int_equal(v, 0xffffffff);
    /* Read-only identity survives writes. */
    cfg_write(1, 0, 4, 0);
    assert_int_equal(cfg_read(1, 0, 4), 0x10411af4);
}

static void test_bar_sizing_and_mapping(void **state)
{
    Fixture *f = *state;
    assert_true(pci_bar_register(f->dev, 0, PCI_BAR_IO, false, 32, &bar_ops, f, NULL));
    assert_true(pci_bar_register(f->dev, 1, PCI_BAR_MEM32, false, 0x1000, &bar_ops, f, NULL));
    assert_true(pci_bar_register(f->dev, 2, PCI_BAR_MEM64, true, 0x4000, &bar_ops, f, NULL));
    assert_false(pci_bar_register(f->dev, 3, PCI_BAR_MEM32, false, 0x1000, &bar_ops, f, NULL));
    assert_false(pci_bar_register(f->dev, 4, PCI_BAR_MEM32, false, 3000, &bar_ops, f, NULL));

    /* Sizing: all ones in, size mask and type bits out. */
    for (unsigned i = 0; i < 6; i++) {
        cfg_write(1, 0x10 + i * 4, 4, 0xffffffff);
    }
    assert_int_equal(cfg_read(1, 0x10, 4), 0xffffffe1);
    assert_int_equal(cfg_read(1, 0x14, 4), 0xfffff000);
    assert_int_equal(cfg_read(1, 0x18, 4), 0xffffc00c);
    assert_int_equal(cfg_read(1, 0x1c, 4), 0xffffffff);
    assert_int_equal(cfg_read(1, 0x20, 4), 0);
    /* Nothing decodes while the command register is off. */
    assert_int_equal(pci_bar_address(f->dev, 1), PCI_BAR_UNMAPPED);

    cfg_write(1, 0x10, 4, 0xc000);
    cfg_write(1, 0x14, 4, 0xc0001000);
    cfg_write(1, 0x18, 4, 0x00000000);
    cfg_write(1, 0x1c, 4, 0x00000001);                  /* 64-bit BAR above 4 GiB */
    cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    assert_int_equal(pci_bar_address(f->dev, 0), 0xc000);
    assert_int_equal(pci_bar_address(f->dev, 1), 0xc0001000);
    assert_int_equal(pci_bar_address(f->dev, 2), 0x100000000ULL);

    uint64_t v;
    assert_true(io_dispatch_read(AS_MMIO, 0xc0001010, 4, &v));
    assert_int_equal(f->last_offset, 0x10);
    assert_true(io_dispatch_write(AS_PIO, 0xc004, 2, 0xbeef));
    assert_int_equal(f->last_offset, 4);
    assert_int_equal(f->last_value, 0xbeef);
    assert_true(io_dispatch_read(AS_MMIO, 0x100003ff8ULL, 8, &v));

    /* Moving a BAR unmaps the old place; disabling memory unmaps all. */
    cfg_write(1, 0x14, 4, 0xc0008000);
    assert_false(io_dispatch_read(AS_MMIO, 0xc0001010, 4, &v));
    assert_true(io_dispatch_read(AS_MMIO, 0xc0008010, 4, &v));
    cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_IO);
    assert_false(io_dispatch_read(AS_MMIO, 0xc0008010, 4, &v));
    assert_true(io_dispatch_read(AS_PIO, 0xc000, 1, &v));
}

static void test_bar_overlap_and_garbage(void **state)
{
    Fixture *f = *state;
    static const IoOps none = { 0 };
    IoRegion *other = io_region_add(AS_PIO, "other", 0x3f8, 8, &none, NULL, NULL);
    assert_true(pci_bar_register(f->dev, 0, PCI_BAR_IO, false, 16, &bar_ops, f, NULL));
    cfg_write(1, 0x10, 4, 0x3f0);                       /* over another region */
    cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_IO);
    assert_int_equal(pci_bar_address(f->dev, 0), PCI_BAR_UNMAPPED);
    cfg_write(1, 0x10, 4, 0x10000);                     /* past the port space */
    assert_int_equal(pci_bar_address(f->dev, 0), PCI_BAR_UNMAPPED);
    /* Random writes over all of configuration space, every width. */
    srand(3);
    for (int i = 0; i < 5000; i++) {
        unsigned size = 1u << (rand() % 3);
        cfg_write(rand() % 4, rand() % 256 & ~(size - 1), size, rand());
    }
    assert_int_equal(cfg_read(1, 0, 4), 0x10411af4);
    io_region_del(other);
}

static void test_intx_shared_line(void **state)
{
    Fixture *f = *state;
    /* Slot 5 INTA and slot 1 INTA both land on GSI 17 with this wiring. */
    PciDevice *d2 = pci_device_add(f->host, 5, &test_info, NULL, NULL);
    unsigned gsi = test_gsi(1, 0);
    assert_int_equal(test_gsi(5, 0), gsi);
    assert_int_equal(cfg_read(1, PCI_INTERRUPT_LINE, 1), gsi);
    pci_set_irq(f->dev, true);
    assert_true(fake_irq.level[gsi]);
    assert_true(cfg_read(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    pci_set_irq(d2, true);
    pci_set_irq(f->dev, false);
    assert_true(fake_irq.level[gsi]);               /* d2 still holds it */
    pci_set_irq(d2, false);
    assert_false(fake_irq.level[gsi]);
    /* INTX_DISABLE masks the pin. */
    cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    pci_set_irq(f->dev, true);
    assert_false(fake_irq.level[gsi]);
    cfg_write(1, PCI_COMMAND, 2, 0);
    assert_true(fake_irq.level[gsi]);
}

static void test_msi(void **state)
{
    Fixture *f = *state;
    assert_true(pci_msi_init(f->dev, NULL));
    unsigned cap = cfg_read(1, PCI_CAPABILITY_LIST, 1);
    assert_int_equal(cfg_read(1, cap, 1), PCI_CAP_ID_MSI);
    cfg_write(1, cap + 4, 4, 0xfee01000);
    cfg_write(1, cap + 8, 4, 0);
    cfg_write(1, cap + 12, 2, 0x4041);
    pci_msi_notify(f->dev);
    assert_int_equal(fake_irq.nr_msi, 0);           /* not enabled */
    cfg_write(1, cap + 2, 2, 1);
    pci_msi_notify(f->dev);
    assert_int_equal(fake_irq.nr_msi, 0);           /* no bus mastering */
    cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
    pci_msi_notify(f->dev);
    assert_int_equal(fake_irq.nr_msi, 1);
    assert_int_equal(fake_irq.msi_addr[0], 0xfee01000);
    assert_int_equal(fake_irq.msi_data[0], 0x4041);
}

/* Program MSI-X: table in BAR 1 at 0xc0000000, enabled, bus master on. */
static unsigned msix_setup(Fixture *f, unsigned vectors)
{
    assert_true(pci_msix_init(f->dev, vectors, 1, NULL));
    unsigned cap = cfg_read(1, PCI_CAPABILITY_LIST, 1);
    assert_int_equal(cfg_read(1, cap, 1), PCI_CAP_ID_MSIX);
    assert_int_equal(cfg_read(1, cap + 2, 2) & 0x7ff, vectors - 1);
    cfg_write(1, 0x14, 4, 0xc0000000);
    cfg_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cfg_write(1, cap + 2, 2, 0x8000);
    for (unsigned v = 0; v < vectors; v++) {
        io_dispatch_write(AS_MMIO, 0xc0000000 + v * 16, 4, 0xfee00000 + v * 0x1000);
        io_dispatch_write(AS_MMIO, 0xc0000000 + v * 16 + 4, 4, 0);
        io_dispatch_write(AS_MMIO, 0xc0000000 + v * 16 + 8, 4, 0x30 + v);
    }
    return cap;
}

static uint64_t pba(void)
{
    uint64_t v;
    io_dispatch_read(AS_MMIO, 0xc0000800, 8, &v);
    return v;
}

static void unmask(unsigned v, bool on)
{
    io_dispatch_write(AS_MMIO, 0xc0000000 + v * 16 + 12, 4, on ? 0 : 1);
}

static void test_msix_mask_and_pending(void **state)
{
    Fixture *f = *state;
    unsigned cap = msix_setup(f, 3);
    /* Vectors start masked: a notification only sets the pending bit. */
    pci_msix_notify(f->dev, 1);
    assert_int_equal(fake_irq.nr_msi, 0);
    assert_int_equal(pba(), 1 << 1);
    unmask(1, true);
    assert_int_equal(fake_irq.nr_msi, 1);
    assert_int_equal(fake_irq.msi_addr[0], 0xfee01000);
    assert_int_equal(fake_irq.msi_data[0], 0x31);
    assert_int_equal(pba(), 0);
    /* Function mask holds everything back; clearing it delivers. */
    cfg_write(1, cap + 2, 2, 0xc000);
    pci_msix_notify(f->dev, 1);
    assert_int_equal(fake_irq.nr_msi, 1);
    cfg_write(1, cap + 2, 2, 0x8000);
    assert_int_equal(fake_irq.nr_msi, 2);
    /* Bad vector numbers and writes to the PBA do nothing. */
    pci_msix_notify(f->dev, 99);
    io_dispatch_write(AS_MMIO, 0xc0000800, 8, ~0ULL);
    assert_int_equal(pba(), 0);
    assert_int_equal(fake_irq.nr_msi, 2);
}

static void test_msix_eventfd_without_irqfd(void **state)
{
    Fixture *f = *state;
    msix_setup(f, 2);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(pci_msix_set_eventfd(f->dev, 0, efd, NULL));
    assert_true(fake_fd_watched(efd));
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, 8), 8);
    fake_fd_dispatch();
    assert_int_equal(pba(), 1);                         /* masked: pending */
    unmask(0, true);
    assert_int_equal(fake_irq.nr_msi, 1);
    assert_int_equal(write(efd, &one, 8), 8);
    fake_fd_dispatch();
    assert_int_equal(fake_irq.nr_msi, 2);
    assert_true(pci_msix_set_eventfd(f->dev, 0, -1, NULL));
    assert_false(fake_fd_watched(efd));
    assert_false(pci_msix_set_eventfd(f->dev, 7, efd, NULL));
    close(efd);
}

static void test_msix_eventfd_with_irqfd(void **state)
{
    Fixture *f = *state;
    unsigned cap = msix_setup(f, 2);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(pci_msix_set_eventfd(f->dev, 1, efd, NULL));
    /* Masked: vireo watches, no kernel route yet. */
    assert_int_equal(fake_irq.irqfd_adds, 0);
    assert_true(fake_fd_watched(efd));
    unmask(1, true);
    assert_int_equal(fake_irq.irqfd_adds, 1);
    assert_false(fake_fd_watched(efd));
    assert_int_equal(fake_irq.irqfd_fd[0], efd);
    assert_int_equal(fake_irq.irqfd_data[0], 0x31);
    /* The guest retargets the vector: the route follows. */
    io_dispatch_write(AS_MMIO, 0xc0000000 + 16 + 8, 4, 0x77);
    assert_int_equal(fake_irq.irqfd_data[0], 0x77);
    assert_true(fake_irq.irqfd_updates >= 1);
    /* Disabling MSI-X takes the route down and signals become vireo's again. */
    cfg_write(1, cap + 2, 2, 0);
    assert_int_equal(fake_irq.irqfd_removes, 1);
    assert_true(fake_fd_watched(efd));
    cfg_write(1, cap + 2, 2, 0x8000);
    assert_int_equal(fake_irq.irqfd_adds, 2);
    pci_device_remove(f->dev);
    f->dev = NULL;
    assert_int_equal(fake_irq.irqfd_removes, 2);
    assert_false(fake_fd_watched(efd));
    close(efd);
}

static void test_reset(void **state)
{
    Fixture *f = *state;
    msix_setup(f, 1);
    pci_set_irq(f->dev, true);
    pci_host_reset(f->host);
    assert_int_equal(cfg_read(1, PCI_COMMAND, 2), 0);
    assert_int_equal(cfg_read(1, 0x14, 4), 0);
    assert_int_equal(pci_bar_address(f->dev, 1), PCI_BAR_UNMAPPED);
    assert_false(fake_irq.level[test_gsi(1, 0)]);
    assert_false(pci_msix_enabled(f->dev));
    assert_true(pci_msix_masked(f->dev, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enumeration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing_and_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_overlap_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intx_shared_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_mask_and_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_eventfd_without_irqfd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_eventfd_with_irqfd, setup_irqfd, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
