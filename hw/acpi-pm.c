#include "hw/acpi-pm.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hw/irq.h"
#include "memory/address-space.h"
#include "util/osdep.h"

/* PM1 status/enable bits. */
#define PM1_TMR     0x0001
#define PM1_GBL     0x0020
#define PM1_PWRBTN  0x0100
#define PM1_SLPBTN  0x0200
#define PM1_RTC     0x0400
#define PM1_WAK_STS 0x8000
#define PM1_SCI_SOURCES (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC)

/* PM1 control bits. */
#define CNT_SCI_EN      0x0001
#define CNT_SLP_TYP_SHIFT 10
#define CNT_SLP_TYP_MASK  (7u << CNT_SLP_TYP_SHIFT)
#define CNT_SLP_EN      0x2000

struct AcpiPm {
    IoRegion *io;
    IoRegion *gpe_io;
    unsigned sci_gsi;
    AcpiPmOps ops;
    uint16_t sts, en, cnt;
    uint8_t gpe_sts[ACPI_GPE0_LEN / 2], gpe_en[ACPI_GPE0_LEN / 2];
    bool sci_level;
};

static bool gpe_pending(const AcpiPm *pm)
{
    for (unsigned i = 0; i < sizeof(pm->gpe_sts); i++) {
        if (pm->gpe_sts[i] & pm->gpe_en[i]) {
            return true;
        }
    }
    return false;
}

static void update_sci(AcpiPm *pm)
{
    bool level = (pm->sts & pm->en & PM1_SCI_SOURCES) != 0 || gpe_pending(pm);
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_set_level(pm->sci_gsi, level);
    }
}

/* The window as a little-endian byte array, for accesses of any width. */
static uint8_t read_byte(AcpiPm *pm, unsigned off)
{
    switch (off) {
    case 0: return pm->sts;
    case 1: return pm->sts >> 8;
    case 2: return pm->en;
    case 3: return pm->en >> 8;
    case 4: return pm->cnt;
    case 5: return (pm->cnt & ~CNT_SLP_EN) >> 8;
    default: return 0;
    }
}

static uint64_t pm_read(void *opaque, uint64_t offset, unsigned size)
{
    AcpiPm *pm = opaque;
    uint64_t val = 0;
    for (unsigned i = 0; i < size; i++) {
        val |= (uint64_t)read_byte(pm, offset + i) << (i * 8);
    }
    return val;
}

static void write_cnt(AcpiPm *pm, uint16_t val)
{
    /* SCI_EN stays on: there is no legacy (non-ACPI) mode to return to. */
    pm->cnt = (val & ~CNT_SLP_EN) | CNT_SCI_EN;
    if (!(val & CNT_SLP_EN)) {
        return;
    }
    unsigned typ = (val & CNT_SLP_TYP_MASK) >> CNT_SLP_TYP_SHIFT;
    if (typ == ACPI_PM_SLP_TYP_S5 && pm->ops.power_off) {
        pm->ops.power_off(pm->ops.opaque);
    }
    /* Other sleep states are not offered in the DSDT: ignore them. */
}

static void pm_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    AcpiPm *pm = opaque;
    for (unsigned i = 0; i < size; i++) {
        unsigned off = offset + i;
        uint8_t b = value >> (i * 8);
        switch (off) {
        case 0: pm->sts &= ~(uint16_t)b; break;             /* write 1 to clear */
        case 1: pm->sts &= ~(uint16_t)(b << 8); break;
        case 2: pm->en = (pm->en & 0xff00) | b; break;
        case 3: pm->en = (pm->en & 0x00ff) | (uint16_t)(b << 8); break;
        case 4: write_cnt(pm, (pm->cnt & 0xff00) | b); break;
        case 5: write_cnt(pm, (pm->cnt & 0x00ff) | (uint16_t)(b << 8)); break;
        default: break;
        }
    }
    update_sci(pm);
}

static const IoOps pm_ops = { .read = pm_read, .write = pm_write };

/* GPE0: status bytes (write 1 to clear), then enable bytes. */
static uint64_t gpe_read(void *opaque, uint64_t offset, unsigned size)
{
    AcpiPm *pm = opaque;
    const unsigned half = ACPI_GPE0_LEN / 2;
    uint64_t val = 0;
    for (unsigned i = 0; i < size && offset + i < ACPI_GPE0_LEN; i++) {
        unsigned off = offset + i;
        uint8_t b = off < half ? pm->gpe_sts[off] : pm->gpe_en[off - half];
        val |= (uint64_t)b << (i * 8);
    }
    return val;
}

static void gpe_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    AcpiPm *pm = opaque;
    const unsigned half = ACPI_GPE0_LEN / 2;
    for (unsigned i = 0; i < size && offset + i < ACPI_GPE0_LEN; i++) {
        unsigned off = offset + i;
        uint8_t b = value >> (i * 8);
        if (off < half) {
            pm->gpe_sts[off] &= ~b;
        } else {
            pm->gpe_en[off - half] = b;
        }
    }
    update_sci(pm);
}

static const IoOps gpe_ops = { .read = gpe_read, .write = gpe_write };

void acpi_pm_gpe_raise(AcpiPm *pm, unsigned bit)
{
    if (bit < 8 * sizeof(pm->gpe_sts)) {
        pm->gpe_sts[bit / 8] |= 1u << (bit % 8);
        update_sci(pm);
    }
}

void acpi_pm_reset(AcpiPm *pm)
{
    pm->sts = 0;
    pm->en = 0;
    pm->cnt = CNT_SCI_EN;
    memset(pm->gpe_sts, 0, sizeof(pm->gpe_sts));
    memset(pm->gpe_en, 0, sizeof(pm->gpe_en));
    update_sci(pm);
}

void acpi_pm_power_button(AcpiPm *pm)
{
    pm->sts |= PM1_PWRBTN;
    update_sci(pm);
}

AcpiPm *acpi_pm_create(uint16_t io_base, unsigned sci_gsi, const AcpiPmOps *ops,
                       Error **errp)
{
    AcpiPm *pm = xzalloc(sizeof(*pm));
    pm->sci_gsi = sci_gsi;
    pm->ops = *ops;
    pm->io = io_region_add(AS_PIO, "acpi-pm", io_base, ACPI_PM_IO_SIZE, &pm_ops, pm, errp);
    pm->gpe_io = pm->io ? io_region_add(AS_PIO, "acpi-gpe0", ACPI_GPE0_IO_BASE, ACPI_GPE0_LEN,
                                        &gpe_ops, pm, errp) : NULL;
    if (!pm->gpe_io) {
        io_region_del(pm->io);
        free(pm);
        return NULL;
    }
    acpi_pm_reset(pm);
    return pm;
}

void acpi_pm_destroy(AcpiPm *pm)
{
    if (!pm) {
        return;
    }
    io_region_del(pm->io);
    io_region_del(pm->gpe_io);
    free(pm);
}
