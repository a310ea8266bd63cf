/*
 * -global DRIVER.PROP=VALUE (or driver=D,property=P,value=V): a default for
 * property P of every -device D. The devices' own option tables (the ones
 * that parse -device and answer device-list-properties) decide whether P
 * exists; a property the user wrote on the -device itself wins. Devices the
 * board builds itself read their globals through global_value() after
 * globals_check_board() (machine/board-globals.c).
 */
#include <stdlib.h>
#include <string.h>

#include "core/options.h"
#include "core/vm-config.h"
#include "monitor/qom-types.h"
#include "qapi/qapi-commands.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/osdep.h"
#include "util/strbuf.h"

typedef struct Global {
    char *driver, *property, *value;
    struct Global *next;
} Global;

static Global *globals;

static const OptParam global_params[] = {
    { "driver", OPT_STRING, "the device type", NULL },
    { "property", OPT_STRING, "the property", NULL },
    { "value", OPT_STRING, "its value", NULL },
    { NULL },
};

static bool opt_global(const char *arg, Error **errp)
{
    Global *g = xzalloc(sizeof(*g));
    const char *eq = strchr(arg, '=');
    const char *dot = eq ? memchr(arg, '.', eq - arg) : NULL;
    if (dot && !strchr(arg, ',')) {
        g->driver = xstrndup_safe(arg, dot - arg);
        g->property = xstrndup_safe(dot + 1, eq - dot - 1);
        g->value = xstrdup(eq + 1);
    } else {
        KeyValList kv = { 0 };
        if (!keyval_parse(arg, NULL, global_params, &kv, errp)) {
            free(g);
            return false;
        }
        const char *d = keyval_get(&kv, "driver"), *p = keyval_get(&kv, "property");
        const char *v = keyval_get(&kv, "value");
        if (!d || !p || !v) {
            error_setg(errp, "Parameter '%s' is missing", !d ? "driver" : !p ? "property" : "value");
            keyval_free(&kv);
            free(g);
            return false;
        }
        g->driver = xstrdup(d);
        g->property = xstrdup(p);
        g->value = xstrdup(v);
        keyval_free(&kv);
    }
    Global **tail = &globals;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = g;
    return true;
}

const CmdOption global_options[] = {
    { "global", "DRIVER.PROP=VALUE", "set a default for a device property", "global",
      global_params, opt_global },
    { NULL },
};

static bool has_property(const char *driver, const char *prop)
{
    Error *err = NULL;
    ObjectPropertyInfoList *list = qmp_device_list_properties(driver, &err);
    bool found = false;
    for (ObjectPropertyInfoList *l = list; l && !found; l = l->next) {
        found = !strcmp(l->value->name, prop);
    }
    error_free(err);
    qapi_free_ObjectPropertyInfoList(list);
    return found;
}

static bool apply_to(DeviceOption *d, const Global *g, Error **errp)
{
    KeyValList kv = { 0 };
    if (!keyval_parse(d->opts, "driver", NULL, &kv, NULL)) {
        return true;    /* the device's own parser reports its error */
    }
    const char *driver = keyval_get(&kv, "driver");
    bool match = driver && !strcmp(driver, g->driver);
    bool set = keyval_get(&kv, g->property) != NULL;
    keyval_free(&kv);
    if (!match || set) {
        return true;
    }
    if (!has_property(g->driver, g->property)) {
        error_setg(errp, "-device %s: can't apply global %s.%s=%s: Property '%s.%s' not found",
                   d->opts, g->driver, g->property, g->value, g->driver, g->property);
        return false;
    }
    StrBuf sb = { 0 };
    strbuf_printf(&sb, "%s,%s=", d->opts, g->property);
    for (const char *c = g->value; *c; c++) {
        strbuf_printf(&sb, *c == ',' ? ",," : "%c", *c);
    }
    free(d->opts);
    d->opts = strbuf_steal(&sb);
    return true;
}

bool globals_apply(Error **errp)
{
    for (const Global *g = globals; g; g = g->next) {
        if (!qom_type_known(g->driver, NULL)) {
            warn_report("global %s.%s has invalid class name", g->driver, g->property);
            continue;
        }
        for (DeviceOption *d = vm_config.devices; d; d = d->next) {
            if (!apply_to(d, g, errp)) {
                return false;
            }
        }
    }
    return true;
}

bool globals_check_board(const char *driver, const OptParam *params, Error **errp)
{
    for (const Global *g = globals; g; g = g->next) {
        if (strcmp(g->driver, driver) != 0) {
            continue;
        }
        const OptParam *p = params;
        while (p->name && strcmp(p->name, g->property) != 0) {
            p++;
        }
        if (!p->name) {
            error_setg(errp, "can't apply global %s.%s=%s: Property '%s.%s' not found",
                       g->driver, g->property, g->value, g->driver, g->property);
            return false;
        }
    }
    return true;
}

const char *global_value(const char *driver, const char *property)
{
    const char *value = NULL;
    for (const Global *g = globals; g; g = g->next) {
        if (!strcmp(g->driver, driver) && !strcmp(g->property, property)) {
            value = g->value;
        }
    }
    return value;
}
