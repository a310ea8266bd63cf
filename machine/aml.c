#include "machine/aml.h"

#include <stdlib.h>
#include <string.h>

#include "util/osdep.h"

/* Opcodes from the ACPI specification, chapter "ACPI Machine Language". */
#define AML_ZERO        0x00
#define AML_ONE         0x01
#define AML_NAME        0x08
#define AML_BYTE        0x0a
#define AML_WORD        0x0b
#define AML_DWORD       0x0c
#define AML_STRING      0x0d
#define AML_QWORD       0x0e
#define AML_SCOPE       0x10
#define AML_BUFFER      0x11
#define AML_PACKAGE     0x12
#define AML_EXT         0x5b
#define AML_DEVICE      0x82
#define AML_ROOT        0x5c
#define AML_DUAL_NAME   0x2e
#define AML_MULTI_NAME  0x2f

/* Small and large resource descriptor tags. */
#define RES_IRQ_NOFLAGS 0x22
#define RES_IO          0x47
#define RES_END         0x79
#define RES_DWORD_ADDR  0x87
#define RES_WORD_ADDR   0x88
#define ADDR_TYPE_MEM   0
#define ADDR_TYPE_IO    1
#define ADDR_TYPE_BUS   2
#define ADDR_PRODUCER_FIXED 0x0c    /* producer, positive decode, min and max fixed */

Aml *aml_new(void)
{
    return xzalloc(sizeof(Aml));
}

void aml_free(Aml *a)
{
    if (a) {
        free(a->data);
        free(a);
    }
}

void aml_append_bytes(Aml *a, const void *bytes, size_t len)
{
    if (a->len + len > a->cap) {
        a->cap = MAX(a->cap * 2, a->len + len + 64);
        a->data = xrealloc(a->data, a->cap);
    }
    memcpy(a->data + a->len, bytes, len);
    a->len += len;
}

static void put8(Aml *a, uint8_t b)
{
    aml_append_bytes(a, &b, 1);
}

static void put_le(Aml *a, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++) {
        put8(a, v >> (i * 8));
    }
}

void aml_append(Aml *a, Aml *child)
{
    aml_append_bytes(a, child->data, child->len);
    aml_free(child);
}

/* PkgLength counts itself: pick the encoding size first, then the value. */
static void put_pkg_length(Aml *a, size_t body_len)
{
    if (body_len + 1 < 0x40) {
        put8(a, body_len + 1);
        return;
    }
    unsigned extra = body_len + 2 < (1u << 12) ? 1 : body_len + 3 < (1u << 20) ? 2 : 3;
    size_t total = body_len + 1 + extra;
    put8(a, (extra << 6) | (total & 0x0f));
    for (unsigned i = 0; i < extra; i++) {
        put8(a, total >> (4 + 8 * i));
    }
}

/* One segment, padded with '_' to four characters. */
static void put_name_seg(Aml *a, const char *seg, size_t len)
{
    char buf[4] = { '_', '_', '_', '_' };
    memcpy(buf, seg, MIN(len, (size_t)4));
    aml_append_bytes(a, buf, 4);
}

/* "\\_SB.PCI0" style names: optional root, dot-separated segments. */
static void put_name_string(Aml *a, const char *name)
{
    if (*name == '\\') {
        put8(a, AML_ROOT);
        name++;
    }
    unsigned segs = 1;
    for (const char *p = name; *p; p++) {
        segs += *p == '.';
    }
    if (segs == 2) {
        put8(a, AML_DUAL_NAME);
    } else if (segs > 2) {
        put8(a, AML_MULTI_NAME);
        put8(a, segs);
    }
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        put_name_seg(a, name, len);
        name += len + (dot ? 1 : 0);
    }
}

Aml *aml_int(uint64_t v)
{
    Aml *a = aml_new();
    if (v == 0 || v == 1) {
        put8(a, v ? AML_ONE : AML_ZERO);
    } else if (v <= 0xff) {
        put8(a, AML_BYTE);
        put_le(a, v, 1);
    } else if (v <= 0xffff) {
        put8(a, AML_WORD);
        put_le(a, v, 2);
    } else if (v <= 0xffffffff) {
        put8(a, AML_DWORD);
        put_le(a, v, 4);
    } else {
        put8(a, AML_QWORD);
        put_le(a, v, 8);
    }
    return a;
}

Aml *aml_string(const char *s)
{
    Aml *a = aml_new();
    put8(a, AML_STRING);
    aml_append_bytes(a, s, strlen(s) + 1);
    return a;
}

/* Compressed EISA id: three letters of 5 bits each and four hex digits, stored big-endian. */
Aml *aml_eisaid(const char *id)
{
    uint32_t v = ((uint32_t)(id[0] - '@') & 0x1f) << 26 |
                 ((uint32_t)(id[1] - '@') & 0x1f) << 21 |
                 ((uint32_t)(id[2] - '@') & 0x1f) << 16 |
                 (uint32_t)strtoul(id + 3, NULL, 16);
    Aml *a = aml_new();
    put8(a, AML_DWORD);
    put_le(a, __builtin_bswap32(v), 4);
    return a;
}

Aml *aml_name_decl(const char *name, Aml *value)
{
    Aml *a = aml_new();
    put8(a, AML_NAME);
    put_name_string(a, name);
    aml_append(a, value);
    return a;
}

static Aml *wrap_named(const uint8_t *op, size_t oplen, const char *name, Aml *body)
{
    Aml *inner = aml_new();
    put_name_string(inner, name);
    aml_append(inner, body);
    Aml *a = aml_new();
    aml_append_bytes(a, op, oplen);
    put_pkg_length(a, inner->len);
    aml_append(a, inner);
    return a;
}

Aml *aml_scope(const char *name, Aml *body)
{
    static const uint8_t op[] = { AML_SCOPE };
    return wrap_named(op, sizeof(op), name, body);
}

Aml *aml_device(const char *name, Aml *body)
{
    static const uint8_t op[] = { AML_EXT, AML_DEVICE };
    return wrap_named(op, sizeof(op), name, body);
}

Aml *aml_package(Aml *elements, unsigned count)
{
    Aml *a = aml_new();
    put8(a, AML_PACKAGE);
    put_pkg_length(a, elements->len + 1);
    put8(a, count);
    aml_append(a, elements);
    return a;
}

Aml *aml_buffer(const void *bytes, size_t len)
{
    Aml *size = aml_int(len);
    Aml *a = aml_new();
    put8(a, AML_BUFFER);
    put_pkg_length(a, size->len + len);
    aml_append(a, size);
    aml_append_bytes(a, bytes, len);
    return a;
}

void aml_res_io(Aml *r, uint16_t base, uint8_t len)
{
    put8(r, RES_IO);
    put8(r, 0x01);              /* 16-bit decode */
    put_le(r, base, 2);         /* minimum */
    put_le(r, base, 2);         /* maximum */
    put8(r, 1);                 /* alignment */
    put8(r, len);
}

void aml_res_irq(Aml *r, unsigned irq)
{
    put8(r, RES_IRQ_NOFLAGS);
    put_le(r, 1u << (irq & 15), 2);
}

static void word_addr(Aml *r, uint8_t type, uint8_t type_flags, uint16_t min, uint16_t max)
{
    put8(r, RES_WORD_ADDR);
    put_le(r, 13, 2);
    put8(r, type);
    put8(r, ADDR_PRODUCER_FIXED);
    put8(r, type_flags);
    put_le(r, 0, 2);            /* granularity */
    put_le(r, min, 2);
    put_le(r, max, 2);
    put_le(r, 0, 2);            /* translation */
    put_le(r, (uint32_t)max - min + 1, 2);
}

void aml_res_word_bus(Aml *r, uint16_t min, uint16_t max)
{
    word_addr(r, ADDR_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(Aml *r, uint16_t min, uint16_t max)
{
    word_addr(r, ADDR_TYPE_IO, 0x03 /* entire range */, min, max);
}

void aml_res_dword_mem(Aml *r, uint32_t min, uint32_t max)
{
    put8(r, RES_DWORD_ADDR);
    put_le(r, 23, 2);
    put8(r, ADDR_TYPE_MEM);
    put8(r, ADDR_PRODUCER_FIXED);
    put8(r, 0x01);              /* read-write, non-cacheable */
    put_le(r, 0, 4);
    put_le(r, min, 4);
    put_le(r, max, 4);
    put_le(r, 0, 4);
    put_le(r, (uint64_t)max - min + 1, 4);
}

Aml *aml_resource_template(Aml *r)
{
    put8(r, RES_END);
    put8(r, 0);                 /* checksum 0: "treat as correct" */
    Aml *buf = aml_buffer(r->data, r->len);
    aml_free(r);
    return buf;
}

/* ---- methods and the statements the hotplug code needs ---- */

#define AML_METHOD      0x14
#define AML_LOCAL0      0x60
#define AML_ARG0        0x68
#define AML_STORE       0x70
#define AML_AND         0x7b
#define AML_NOTIFY      0x86
#define AML_IF          0xa0
#define AML_EXT_OPREGION 0x80
#define AML_EXT_FIELD   0x81

Aml *aml_method(const char *name, unsigned nargs, Aml *body)
{
    Aml *inner = aml_new();
    put_name_string(inner, name);
    put8(inner, nargs & 7);             /* not serialized, sync level 0 */
    aml_append(inner, body);
    Aml *a = aml_new();
    put8(a, AML_METHOD);
    put_pkg_length(a, inner->len);
    aml_append(a, inner);
    return a;
}

Aml *aml_operation_region_io(const char *name, uint16_t port, uint16_t len)
{
    Aml *a = aml_new();
    put8(a, AML_EXT);
    put8(a, AML_EXT_OPREGION);
    put_name_string(a, name);
    put8(a, 1);                         /* SystemIO */
    aml_append(a, aml_int(port));
    aml_append(a, aml_int(len));
    return a;
}

Aml *aml_field_dwords(const char *region, const char *const *names, unsigned count)
{
    Aml *inner = aml_new();
    put_name_string(inner, region);
    put8(inner, 0x43);                  /* DWordAcc, NoLock, WriteAsZeros */
    for (unsigned i = 0; i < count; i++) {
        put_name_seg(inner, names[i], strlen(names[i]));
        put8(inner, 32);                /* bits */
    }
    Aml *a = aml_new();
    put8(a, AML_EXT);
    put8(a, AML_EXT_FIELD);
    put_pkg_length(a, inner->len);
    aml_append(a, inner);
    return a;
}

Aml *aml_name(const char *name)
{
    Aml *a = aml_new();
    put_name_string(a, name);
    return a;
}

Aml *aml_local(unsigned n)
{
    Aml *a = aml_new();
    put8(a, AML_LOCAL0 + (n & 7));
    return a;
}

Aml *aml_arg(unsigned n)
{
    Aml *a = aml_new();
    put8(a, AML_ARG0 + (n % 7));
    return a;
}

Aml *aml_store(Aml *src, Aml *dst)
{
    Aml *a = aml_new();
    put8(a, AML_STORE);
    aml_append(a, src);
    aml_append(a, dst);
    return a;
}

Aml *aml_and(Aml *x, Aml *y)
{
    Aml *a = aml_new();
    put8(a, AML_AND);
    aml_append(a, x);
    aml_append(a, y);
    put8(a, AML_ZERO);                  /* no target */
    return a;
}

Aml *aml_notify(const char *object, Aml *value)
{
    Aml *a = aml_new();
    put8(a, AML_NOTIFY);
    put_name_string(a, object);
    aml_append(a, value);
    return a;
}

Aml *aml_if(Aml *predicate, Aml *body)
{
    Aml *inner = aml_new();
    aml_append(inner, predicate);
    aml_append(inner, body);
    Aml *a = aml_new();
    put8(a, AML_IF);
    put_pkg_length(a, inner->len);
    aml_append(a, inner);
    return a;
}
