/*
 * A small AML (ACPI Machine Language) encoder: just what the DSDT of this
 * machine needs. Objects are built into growable byte buffers; a container
 * (Scope, Device, Package, Buffer) is closed by wrapping its finished body.
 */
#ifndef VIREO_MACHINE_AML_H
#define VIREO_MACHINE_AML_H

#include <stddef.h>
#include <stdint.h>

typedef struct Aml {
    uint8_t *data;
    size_t len, cap;
} Aml;

Aml *aml_new(void);
void aml_free(Aml *a);
void aml_append_bytes(Aml *a, const void *bytes, size_t len);
/* Append child and free it. */
void aml_append(Aml *a, Aml *child);

/* Terms; each returns a new buffer. */
Aml *aml_int(uint64_t v);
Aml *aml_string(const char *s);
Aml *aml_eisaid(const char *id);                 /* "PNP0A03" */
Aml *aml_name_decl(const char *name, Aml *value);        /* Name(NAME, value) */
Aml *aml_scope(const char *name, Aml *body);
Aml *aml_device(const char *name, Aml *body);
Aml *aml_package(Aml *elements, unsigned count);
Aml *aml_buffer(const void *bytes, size_t len);

/* Control methods and what their bodies use. */
Aml *aml_method(const char *name, unsigned nargs, Aml *body);
Aml *aml_operation_region_io(const char *name, uint16_t port, uint16_t len);
/* Field(region, DWordAcc, NoLock, WriteAsZeros) { names[0], 32, ... } */
Aml *aml_field_dwords(const char *region, const char *const *names, unsigned count);
Aml *aml_name(const char *name);                 /* a reference (or a call without args) */
Aml *aml_local(unsigned n);                      /* Local0..7 */
Aml *aml_arg(unsigned n);                        /* Arg0..6 */
Aml *aml_store(Aml *src, Aml *dst);              /* Store(src, dst) */
Aml *aml_and(Aml *x, Aml *y);                    /* And(x, y) without a target */
Aml *aml_notify(const char *object, Aml *value); /* Notify(object, value) */
Aml *aml_if(Aml *predicate, Aml *body);

/* Resource templates: append descriptors to r, then aml_resource_template(r). */
void aml_res_io(Aml *r, uint16_t base, uint8_t len);
void aml_res_irq(Aml *r, unsigned irq);          /* IRQNoFlags: ISA edge, high */
void aml_res_word_bus(Aml *r, uint16_t min, uint16_t max);
void aml_res_word_io(Aml *r, uint16_t min, uint16_t max);
void aml_res_dword_mem(Aml *r, uint32_t min, uint32_t max);
Aml *aml_resource_template(Aml *r);              /* adds the end tag, wraps in a Buffer */

#endif
