/*
 * User-creatable objects at run time (object-add, object-del); see
 * core/objects.c. The QMP handlers are declared by the generated
 * qapi/qapi-commands.h.
 */
#ifndef VIREO_CORE_OBJECTS_H
#define VIREO_CORE_OBJECTS_H

#include <stdbool.h>

#include "qapi/qapi-commands.h"
#include "util/error.h"

/* Create from a -object option string whose type and id are given. */
bool object_add_opts(const char *type, const char *id, const char *opts, Error **errp);
/* The -object / object-add option string of the object with this id (not memory backends). */
const char *object_find_opts(const char *id);

#endif
