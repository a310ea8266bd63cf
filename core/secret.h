/*
 * -object secret: passwords and keys handed to vireo by management tools,
 * as plain text, base64, or AES-256-CBC encrypted with another secret
 * (keyid=, iv=), the way libvirt passes them. Devices look them up by id.
 */
#ifndef VIREO_CORE_SECRET_H
#define VIREO_CORE_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/keyval.h"

extern const OptParam secret_params[];

/* Create the secret described by "-object secret,..." options. */
bool secret_create(const char *opts, Error **errp);
/* The decoded value of secret id (not NUL-terminated), or NULL with errp set. */
const uint8_t *secret_lookup(const char *id, size_t *len, Error **errp);
bool secret_delete(const char *id, Error **errp);

#endif
