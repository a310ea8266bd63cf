/*
 * device_add and device_del (QMP and HMP): a device made at run time from
 * the same option string -device takes; removal goes through the machine
 * (ACPI PCI hotplug for devices on pci.0).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/qdev.h"
#include "machine/machine.h"
#include "monitor/hmp-commands.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"
#include "util/strbuf.h"

/* A property value as -device would spell it (commas doubled). */
static bool append_value(StrBuf *sb, const char *key, json_object *v, Error **errp)
{
    const char *text;
    char num[32];
    switch (json_object_get_type(v)) {
    case json_type_string:
        text = json_object_get_string(v);
        break;
    case json_type_boolean:
        text = json_object_get_boolean(v) ? "on" : "off";
        break;
    case json_type_int:
        snprintf(num, sizeof(num), "%" PRId64, json_object_get_int64(v));
        text = num;
        break;
    default:
        error_setg(errp, "Parameter '%s' expects a string, number or boolean", key);
        return false;
    }
    strbuf_printf(sb, ",%s=", key);
    for (const char *p = text; *p; p++) {
        strbuf_printf(sb, *p == ',' ? ",," : "%c", *p);
    }
    return true;
}

static bool device_add_opts(const char *opts, Error **errp)
{
    if (strncmp(opts, "driver=", 7) == 0) {
        opts += 7;
    }
    char *driver = xstrndup_safe(opts, strcspn(opts, ","));
    bool ok = machine_device_add(opts, driver, errp);
    free(driver);
    return ok;
}

json_object *qmp_device_add(json_object *args, Error **errp)
{
    json_object *drv;
    if (!json_object_object_get_ex(args, "driver", &drv) ||
        json_object_get_type(drv) != json_type_string) {
        error_setg(errp, "Parameter 'driver' is missing");
        return NULL;
    }
    StrBuf sb = { 0 };
    strbuf_puts(&sb, json_object_get_string(drv));
    bool ok = true;
    json_object_object_foreach(args, key, val) {
        if (strcmp(key, "driver") != 0 && ok) {
            ok = append_value(&sb, key, val, errp);
        }
    }
    ok = ok && device_add_opts(sb.str, errp);
    strbuf_free(&sb);
    return ok ? json_object_new_object() : NULL;
}

/* An id, or a device's path in the object tree, as QEMU accepts both. */
static Device *find_device(const char *id, Error **errp)
{
    Device *d = id[0] == '/' ? qdev_find_by_path(id) : qdev_find_by_id(id);
    if (!d) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", id);
    }
    return d;
}

void qmp_device_del(const char *id, Error **errp)
{
    Device *d = find_device(id, errp);
    if (d) {
        machine_device_del(d, errp);
    }
}

void hmp_device_add(StrBuf *out, int argc, char **argv, Error **errp)
{
    device_add_opts(argv[1], errp);
}

void hmp_device_del(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_device_del(argv[1], errp);
}
