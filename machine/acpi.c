/*
 * ACPI table generation. Layouts and field offsets follow the ACPI 6.x
 * specification; every table is built in a host buffer, checksummed and
 * copied into guest RAM in one go.
 */
#include "machine/acpi.h"

#include <stdlib.h>
#include <string.h>

#include "hw/acpi-pm.h"
#include "hw/pci-hotplug.h"
#include "hw/rtc-mc146818.h"
#include "machine/aml.h"
#include "machine/layout.h"
#include "util/byteorder.h"
#include "util/osdep.h"

#define ACPI_OEM_ID         "VIREO "
#define ACPI_OEM_TABLE_ID   "VIREOPC "
#define ACPI_CREATOR_ID     "VIRO"
#define ACPI_HEADER_LEN     36

#define PCI_CONFIG_PORT     0xcf8
#define PCI_INTX_GSI_BASE   16
#define PCI_INTX_GSI_COUNT  4

/* The tables live in one host buffer mirroring [ACPI_TABLES_ADDR, +SIZE). */
typedef struct TableBuf {
    uint8_t *data;
    size_t used;
} TableBuf;


static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return (uint8_t)-sum;
}

/* Reserve len bytes aligned to align; NULL when the area is full. */
static uint8_t *table_alloc(TableBuf *t, size_t len, size_t align, uint64_t *gpa)
{
    size_t off = ROUND_UP(t->used, align);
    if (off + len > ACPI_TABLES_SIZE) {
        return NULL;
    }
    t->used = off + len;
    *gpa = ACPI_TABLES_ADDR + off;
    return t->data + off;
}

static void fill_header(uint8_t *h, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(h, sig, 4);
    st_le32(h + 4, len);
    h[8] = rev;
    memcpy(h + 10, ACPI_OEM_ID, 6);
    memcpy(h + 16, ACPI_OEM_TABLE_ID, 8);
    st_le32(h + 24, 1);                   /* OEM revision */
    memcpy(h + 28, ACPI_CREATOR_ID, 4);
    st_le32(h + 32, 1);                   /* creator revision */
}

static void finish_table(uint8_t *h, uint32_t len)
{
    h[9] = 0;
    h[9] = checksum(h, len);
}

/* Copy a finished table (header included) into the area. */
static uint64_t add_table(TableBuf *t, const uint8_t *table, uint32_t len)
{
    uint64_t gpa;
    uint8_t *dst = table_alloc(t, len, 16, &gpa);
    if (!dst) {
        return 0;
    }
    memcpy(dst, table, len);
    return gpa;
}

/* ---- DSDT ---- */

unsigned acpi_pci_intx_gsi(unsigned slot, unsigned pin)
{
    /* The usual swizzle, so neighbouring slots spread over the four lines. */
    return PCI_INTX_GSI_BASE + (slot + pin) % PCI_INTX_GSI_COUNT;
}

/* An ACPI device per hotpluggable slot; QEMU's names (S + devfn in hex). */
static void slot_name(char name[5], unsigned slot)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned devfn = slot << 3;
    name[0] = 'S';
    name[1] = hex[devfn >> 4];
    name[2] = hex[devfn & 0xf];
    name[3] = '_';
    name[4] = 0;
}

/*
 * ACPI PCI hotplug: the registers as fields, a device per slot that the
 * guest can eject (_EJ0 writes the slot's bit to the eject register), and
 * PCNT, which the GPE handler calls: Notify(slot, 1) "check" for each bit
 * of the up register, Notify(slot, 3) "eject request" for each bit of down.
 */
static void dsdt_pci_hotplug(Aml *pci0, const AcpiConfig *cfg)
{
    static const char *const updown[] = { "PCIU", "PCID" };
    static const char *const eject[] = { "B0EJ" };
    uint16_t port = cfg->pci_hotplug_port;
    aml_append(pci0, aml_operation_region_io("PCST", port + PCI_HOTPLUG_UP, 8));
    aml_append(pci0, aml_field_dwords("PCST", updown, 2));
    aml_append(pci0, aml_operation_region_io("SEJ_", port + PCI_HOTPLUG_EJECT, 4));
    aml_append(pci0, aml_field_dwords("SEJ_", eject, 1));
    Aml *pcnt = aml_new();
    aml_append(pcnt, aml_store(aml_name("PCIU"), aml_local(0)));
    aml_append(pcnt, aml_store(aml_name("PCID"), aml_local(1)));
    for (unsigned slot = 1; slot < cfg->pci_slots && slot < 32; slot++) {
        char name[5];
        slot_name(name, slot);
        Aml *dev = aml_new();
        aml_append(dev, aml_name_decl("_ADR", aml_int((uint64_t)slot << 16)));
        aml_append(dev, aml_name_decl("_SUN", aml_int(slot)));
        Aml *ej0 = aml_store(aml_int(1u << slot), aml_name("B0EJ"));
        aml_append(dev, aml_method("_EJ0", 1, ej0));
        aml_append(pci0, aml_device(name, dev));
        aml_append(pcnt, aml_if(aml_and(aml_local(0), aml_int(1u << slot)),
                                aml_notify(name, aml_int(1))));
        aml_append(pcnt, aml_if(aml_and(aml_local(1), aml_int(1u << slot)),
                                aml_notify(name, aml_int(3))));
    }
    aml_append(pci0, aml_method("PCNT", 0, pcnt));
}

static Aml *dsdt_pci_host(const AcpiConfig *cfg)
{
    Aml *dev = aml_new();
    aml_append(dev, aml_name_decl("_HID", aml_eisaid("PNP0A03")));
    aml_append(dev, aml_name_decl("_UID", aml_int(0)));
    aml_append(dev, aml_name_decl("_SEG", aml_int(0)));
    aml_append(dev, aml_name_decl("_BBN", aml_int(0)));
    aml_append(dev, aml_name_decl("_ADR", aml_int(0)));

    Aml *crs = aml_new();
    aml_res_word_bus(crs, 0, 0);
    aml_res_io(crs, PCI_CONFIG_PORT, 8);
    aml_res_word_io(crs, 0x0000, PCI_CONFIG_PORT - 1);
    aml_res_word_io(crs, 0x0d00, 0xffff);
    aml_res_dword_mem(crs, PCI_MMIO_START, PCI_MMIO_END);
    aml_append(dev, aml_name_decl("_CRS", aml_resource_template(crs)));

    /* _PRT: for each slot and pin, the GSI it is wired to (no link devices). */
    Aml *prt = aml_new();
    unsigned entries = 0;
    for (unsigned slot = 0; slot < cfg->pci_slots; slot++) {
        for (unsigned pin = 0; pin < 4; pin++, entries++) {
            Aml *e = aml_new();
            aml_append(e, aml_int(((uint64_t)slot << 16) | 0xffff));
            aml_append(e, aml_int(pin));
            aml_append(e, aml_int(0));
            aml_append(e, aml_int(acpi_pci_intx_gsi(slot, pin)));
            aml_append(prt, aml_package(e, 4));
        }
    }
    aml_append(dev, aml_name_decl("_PRT", aml_package(prt, entries)));
    if (cfg->pci_hotplug_port) {
        dsdt_pci_hotplug(dev, cfg);
    }
    return aml_device("PCI0", dev);
}

static Aml *dsdt_isa_device(const char *name, Aml *hid, unsigned uid,
                            uint16_t port, uint8_t len, int irq)
{
    Aml *dev = aml_new();
    aml_append(dev, aml_name_decl("_HID", hid));
    aml_append(dev, aml_name_decl("_UID", aml_int(uid)));
    aml_append(dev, aml_name_decl("_STA", aml_int(0x0f)));
    Aml *crs = aml_new();
    aml_res_io(crs, port, len);
    if (irq >= 0) {
        aml_res_irq(crs, irq);
    }
    aml_append(dev, aml_name_decl("_CRS", aml_resource_template(crs)));
    return aml_device(name, dev);
}

/* The i8042's keyboard: data port 0x60, command/status port 0x64, IRQ 1. */
static Aml *dsdt_keyboard(void)
{
    Aml *dev = aml_new();
    aml_append(dev, aml_name_decl("_HID", aml_eisaid("PNP0303")));
    aml_append(dev, aml_name_decl("_STA", aml_int(0x0f)));
    Aml *crs = aml_new();
    aml_res_io(crs, 0x60, 1);
    aml_res_io(crs, 0x64, 1);
    aml_res_irq(crs, 1);
    aml_append(dev, aml_name_decl("_CRS", aml_resource_template(crs)));
    return aml_device("KBD", dev);
}

static Aml *build_dsdt_body(const AcpiConfig *cfg)
{
    Aml *body = aml_new();

    /* \_S5: the SLP_TYP values for soft-off, read by the kernel's power-off path. */
    Aml *s5 = aml_new();
    aml_append(s5, aml_int(ACPI_PM_SLP_TYP_S5));
    aml_append(s5, aml_int(ACPI_PM_SLP_TYP_S5));
    aml_append(s5, aml_int(0));
    aml_append(s5, aml_int(0));
    aml_append(body, aml_name_decl("\\_S5", aml_package(s5, 4)));

    Aml *sb = aml_new();
    if (cfg->has_pci) {
        aml_append(sb, dsdt_pci_host(cfg));
    }
    for (unsigned i = 0; i < cfg->nr_serial; i++) {
        char name[5] = "COM1";
        name[3] = '1' + i;
        aml_append(sb, dsdt_isa_device(name, aml_eisaid("PNP0501"), i + 1,
                                       cfg->serial[i].io_base, 8, cfg->serial[i].irq));
    }
    aml_append(sb, dsdt_isa_device("RTC", aml_eisaid("PNP0B00"), 0, RTC_IO_BASE, 2, 8));
    aml_append(sb, dsdt_keyboard());
    if (cfg->fw_cfg_port) {
        /* Status 0x0b: present, enabled, functioning, not shown in UI. */
        Aml *dev = aml_new();
        aml_append(dev, aml_name_decl("_HID", aml_string("QEMU0002")));
        aml_append(dev, aml_name_decl("_STA", aml_int(0x0b)));
        Aml *crs = aml_new();
        aml_res_io(crs, cfg->fw_cfg_port, 12);
        aml_append(dev, aml_name_decl("_CRS", aml_resource_template(crs)));
        aml_append(sb, aml_device("FWCF", dev));
    }
    aml_append(body, aml_scope("\\_SB", sb));
    if (cfg->has_pci && cfg->pci_hotplug_port) {
        /* GPE0 bit 1: PCI hotplug (hw/acpi-pm.h). */
        Aml *gpe = aml_method("_E01", 0, aml_name("\\_SB.PCI0.PCNT"));
        aml_append(body, aml_scope("\\_GPE", gpe));
    }
    return body;
}

static uint64_t build_dsdt(TableBuf *t, const AcpiConfig *cfg)
{
    Aml *body = build_dsdt_body(cfg);
    uint32_t len = ACPI_HEADER_LEN + body->len;
    uint8_t *tbl = xzalloc(len);
    fill_header(tbl, "DSDT", len, 2);       /* revision 2: 64-bit integers */
    memcpy(tbl + ACPI_HEADER_LEN, body->data, body->len);
    aml_free(body);
    finish_table(tbl, len);
    uint64_t gpa = add_table(t, tbl, len);
    free(tbl);
    return gpa;
}

/* ---- FACS, FADT ---- */

static uint64_t build_facs(TableBuf *t)
{
    uint64_t gpa;
    uint8_t *f = table_alloc(t, 64, 64, &gpa);
    if (f) {
        memcpy(f, "FACS", 4);
        st_le32(f + 4, 64);
        f[32] = 2;                          /* version */
    }
    return f ? gpa : 0;
}

/* Generic Address Structure for an I/O port register. */
static void put_gas_io(uint8_t *p, uint8_t bit_width, uint8_t access_size, uint64_t port)
{
    p[0] = 1;                               /* system I/O space */
    p[1] = bit_width;
    p[2] = 0;
    p[3] = access_size;
    st_le64(p + 4, port);
}

#define FADT_LEN            276
#define FADT_F_WBINVD       (1u << 0)
#define FADT_F_PROC_C1      (1u << 2)
#define FADT_F_SLP_BUTTON   (1u << 5)       /* no fixed sleep button */
#define FADT_F_RESET_REG    (1u << 10)
#define FADT_BOOT_8042      (1u << 1)
#define FADT_BOOT_NO_VGA    (1u << 2)
#define I8042_CMD_PORT      0x64
#define I8042_RESET_CMD     0xfe

static uint64_t build_fadt(TableBuf *t, uint64_t facs, uint64_t dsdt)
{
    uint8_t f[FADT_LEN] = { 0 };
    fill_header(f, "FACP", FADT_LEN, 6);
    st_le32(f + 36, facs);
    st_le32(f + 40, dsdt);
    st_le16(f + 46, ACPI_SCI_GSI);
    /* SMI_CMD = 0: the platform is always in ACPI mode (SCI_EN reads 1). */
    st_le32(f + 56, ACPI_PM_IO_BASE + ACPI_PM1_EVT_OFFSET);
    st_le32(f + 64, ACPI_PM_IO_BASE + ACPI_PM1_CNT_OFFSET);
    st_le32(f + 80, ACPI_GPE0_IO_BASE);
    f[88] = ACPI_PM1_EVT_LEN;
    f[89] = ACPI_PM1_CNT_LEN;
    f[92] = ACPI_GPE0_LEN;
    /* No PM timer (PM_TMR_BLK 0): allowed since ACPI 5, and saves VM exits. */
    st_le16(f + 96, 0x0fff);                  /* C2 not supported */
    st_le16(f + 98, 0x0fff);                  /* C3 not supported */
    f[108] = RTC_REG_CENTURY;
    /* The i8042 with its keyboard is there (hw/i8042.c): the kernel may probe it. */
    st_le16(f + 109, FADT_BOOT_8042 | FADT_BOOT_NO_VGA);
    st_le32(f + 112, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG);
    /* Reset register: the i8042 reset command, the one reset line we have. */
    put_gas_io(f + 116, 8, 1, I8042_CMD_PORT);
    f[128] = I8042_RESET_CMD;
    /* One FACS pointer only (the spec forbids both); DSDT in both, as is usual. */
    st_le64(f + 140, dsdt);
    put_gas_io(f + 220, ACPI_GPE0_LEN * 8, 1, ACPI_GPE0_IO_BASE);    /* X_GPE0_BLK */
    memcpy(f + 268, "VIREO\0\0\0", 8);     /* hypervisor vendor identity */
    finish_table(f, FADT_LEN);
    return add_table(t, f, FADT_LEN);
}

/* ---- MADT ---- */

#define MADT_LOCAL_APIC     0
#define MADT_IO_APIC        1
#define MADT_INT_OVERRIDE   2
#define MADT_LAPIC_NMI      4
#define MADT_PCAT_COMPAT    1
#define MPS_LEVEL_HIGH      0x000d          /* active high, level triggered */

static uint64_t build_madt(TableBuf *t, const AcpiConfig *cfg)
{
    uint32_t len = ACPI_HEADER_LEN + 8 + cfg->nr_cpus * 8 + 12 + 10 + 6;
    uint8_t *m = xzalloc(len);
    uint8_t *p = m + ACPI_HEADER_LEN;
    fill_header(m, "APIC", len, 5);
    st_le32(p, LAPIC_ADDR);
    st_le32(p + 4, MADT_PCAT_COMPAT);
    p += 8;
    for (unsigned i = 0; i < cfg->nr_cpus; i++, p += 8) {
        p[0] = MADT_LOCAL_APIC;
        p[1] = 8;
        p[2] = i;                           /* processor UID */
        p[3] = i;                           /* APIC id */
        st_le32(p + 4, 1);                    /* enabled */
    }
    p[0] = MADT_IO_APIC;
    p[1] = 12;
    p[2] = 0;                               /* IOAPIC id */
    st_le32(p + 4, IOAPIC_ADDR);
    st_le32(p + 8, 0);                        /* GSI base */
    p += 12;
    /* ISA IRQs map 1:1 to GSIs, as KVM routes them; only the SCI is level. */
    p[0] = MADT_INT_OVERRIDE;
    p[1] = 10;
    p[3] = ACPI_SCI_GSI;
    st_le32(p + 4, ACPI_SCI_GSI);
    st_le16(p + 8, MPS_LEVEL_HIGH);
    p += 10;
    p[0] = MADT_LAPIC_NMI;
    p[1] = 6;
    p[2] = 0xff;                            /* all processors */
    p[5] = 1;                               /* LINT1 */
    finish_table(m, len);
    uint64_t gpa = add_table(t, m, len);
    free(m);
    return gpa;
}

/* ---- XSDT, RSDP ---- */

static uint64_t build_xsdt(TableBuf *t, const uint64_t *tables, unsigned n)
{
    uint32_t len = ACPI_HEADER_LEN + n * 8;
    uint8_t x[ACPI_HEADER_LEN + 8 * 8] = { 0 };
    fill_header(x, "XSDT", len, 1);
    for (unsigned i = 0; i < n; i++) {
        st_le64(x + ACPI_HEADER_LEN + i * 8, tables[i]);
    }
    finish_table(x, len);
    return add_table(t, x, len);
}

static void fill_rsdp(uint8_t *r, uint64_t xsdt)
{
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, ACPI_OEM_ID, 6);
    r[15] = 2;                              /* ACPI 2.0+: has an XSDT */
    st_le32(r + 20, 36);
    st_le64(r + 24, xsdt);
    r[8] = checksum(r, 20);
    r[32] = checksum(r, 36);
}

uint64_t acpi_build_tables(const AcpiConfig *cfg, const GuestMemory *mem, Error **errp)
{
    TableBuf t = { .data = xzalloc(ACPI_TABLES_SIZE) };
    uint64_t rsdp;
    /* The RSDP goes first: at 0xe0000 the legacy scan finds it too. */
    uint8_t *r = table_alloc(&t, 36, 16, &rsdp);
    uint64_t facs = build_facs(&t);
    uint64_t dsdt = build_dsdt(&t, cfg);
    uint64_t tables[2] = { build_fadt(&t, facs, dsdt), build_madt(&t, cfg) };
    uint64_t xsdt = build_xsdt(&t, tables, 2);
    if (!facs || !dsdt || !tables[0] || !tables[1] || !xsdt) {
        error_setg(errp, "ACPI tables do not fit in %llu bytes",
                   (unsigned long long)ACPI_TABLES_SIZE);
        free(t.data);
        return 0;
    }
    fill_rsdp(r, xsdt);
    bool ok = gmem_write(mem, ACPI_TABLES_ADDR, t.data, t.used);
    free(t.data);
    if (!ok) {
        error_setg(errp, "guest RAM is too small for the ACPI tables");
        return 0;
    }
    return rsdp;
}
