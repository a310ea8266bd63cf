/*
 * The object types vireo implements (monitor/qom-types.c), for the
 * commands that describe a type's properties (monitor/qom-props.c).
 */
#ifndef VIREO_MONITOR_QOM_TYPES_H
#define VIREO_MONITOR_QOM_TYPES_H

#include <stdbool.h>

/* Is name a type qom-list-types lists? *abstract (if non-NULL) says whether it is abstract. */
bool qom_type_known(const char *name, bool *abstract);
/* Is name ancestor or derived from it? */
bool qom_type_is_a(const char *name, const char *ancestor);

#endif
