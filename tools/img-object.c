/*
 * vireo-img --object: the secrets that encryption options name by id.
 * (Kept apart from tools/img.h, whose option codes clash with keyval's.)
 */
#include <stdlib.h>
#include <string.h>

#include "core/secret.h"
#include "tools/img-opts.h"
#include "util/keyval.h"

bool img_object_add(const char *spec, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(spec, "qom-type", NULL, &kv, errp)) {
        return false;
    }
    const char *type = keyval_get(&kv, "qom-type");
    bool ok = false;
    if (!type) {
        error_setg(errp, "Parameter 'qom-type' is missing");
    } else if (strcmp(type, "secret")) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'", type);
    } else {
        ok = secret_create(spec, errp);
    }
    keyval_free(&kv);
    return ok;
}

bool img_secret_exists(const char *id)
{
    size_t len;
    return secret_lookup(id, &len, NULL) != NULL;
}

const uint8_t *img_secret_data(const char *id, size_t *len)
{
    return secret_lookup(id, len, NULL);
}
