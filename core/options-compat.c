/*
 * Options management tools (libvirt) put on every command line, kept out
 * of core/options.c: each either does what QEMU does with it or, where
 * vireo cannot honour a value, fails with one message naming the option.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"
#include "core/vm-config.h"
#include "machine/kvm.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/osdep.h"
#include "util/strbuf.h"

#include <json-c/json.h>

static const OptParam overcommit_params[] = {
    { "mem-lock", OPT_BOOL, "lock guest RAM in host memory (no balloon discards)", "off" },
    { "cpu-pm", OPT_BOOL, "let the guest idle the host CPU (only off)", "off" },
    { NULL },
};
static const OptParam msg_params[] = {
    { "timestamp", OPT_BOOL, "prefix error messages with the time", "off" },
    { "guest-name", OPT_BOOL, "prefix error messages with the VM name", "off" },
    { NULL },
};
static const OptParam audiodev_params[] = {
    { "driver", OPT_STRING, "audio back-end (only none: vireo has no sound device)" },
    { "id", OPT_STRING, "the back-end's id" },
    { "timer-period", OPT_NUMBER, "timer period in microseconds" },
    { NULL },
};

/* vireo reads no configuration file, so there is nothing to leave out. */
static bool opt_no_user_config(const char *arg, Error **errp)
{
    return true;
}

static bool opt_overcommit(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, NULL, overcommit_params, &kv, errp)) {
        return false;
    }
    bool ok = true;
    vm_config.mem_lock = keyval_get_bool(&kv, "mem-lock", false);
    if (keyval_get_bool(&kv, "cpu-pm", false)) {
        error_setg(errp, "cpu-pm=on is not supported by vireo (vCPUs exit on HLT)");
        ok = false;
    }
    keyval_free(&kv);
    return ok;
}

static bool opt_msg(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, NULL, msg_params, &kv, errp)) {
        return false;
    }
    error_set_timestamps(keyval_get_bool(&kv, "timestamp", false));
    keyval_free(&kv);
    return true;
}

/* vireo has no sound device, so the one back-end it needs is "none". */
static bool opt_audiodev(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, "driver", audiodev_params, &kv, errp)) {
        return false;
    }
    const char *driver = keyval_get(&kv, "driver");
    bool ok = false;
    if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
    } else if (!keyval_get(&kv, "id")) {
        error_setg(errp, "Parameter 'id' is missing");
    } else if (strcmp(driver, "none") != 0) {
        error_setg(errp, "audio driver '%s' is not supported: vireo has no sound device, "
                   "only driver=none", driver);
    } else {
        ok = true;
    }
    keyval_free(&kv);
    return ok;
}

static bool opt_no_acpi(const char *arg, Error **errp)
{
    return compat_set_acpi("off", errp);
}

static bool opt_usb(const char *arg, Error **errp)
{
    error_setg(errp, "vireo has no USB controller (a libvirt domain needs "
               "<controller type='usb' model='none'/>)");
    return false;
}

/* "on", "off" or "auto", as -machine acpi= takes it. */
bool compat_set_acpi(const char *value, Error **errp)
{
    if (!strcmp(value, "on") || !strcmp(value, "auto")) {
        vm_config.no_acpi = false;
        return true;
    }
    if (!strcmp(value, "off")) {
        vm_config.no_acpi = true;
        return true;
    }
    error_setg(errp, "Parameter 'acpi' expects 'on', 'off', or 'auto'");
    return false;
}

bool compat_choose_accel(const char *list, Error **errp)
{
    char *copy = xstrdup(list);
    char *save = NULL;
    bool found = false;
    for (char *name = strtok_r(copy, ":", &save); name && !found;
         name = strtok_r(NULL, ":", &save)) {
        if (!strcmp(name, "kvm")) {
            found = kvm_available(NULL);
        } else if (!strcmp(name, "qtest")) {
            found = true;
        }
        /* tcg, xen, hvf...: vireo has none of them, so try the next name */
        if (found) {
            free(vm_config.accel);
            vm_config.accel = xstrdup(name);
        }
    }
    free(copy);
    if (!found) {
        error_setg(errp, "no accelerator found (vireo has kvm and qtest; KVM is not usable here)");
    }
    return found;
}

bool compat_machine_props(const KeyValList *kv, Error **errp)
{
    if (keyval_get_bool(kv, "usb", false)) {
        error_setg(errp, "usb=on is not supported: vireo has no USB controller");
        return false;
    }
    /* vireo always maps guest RAM with MADV_DONTDUMP */
    if (keyval_get(kv, "dump-guest-core") && keyval_get_bool(kv, "dump-guest-core", true)) {
        error_setg(errp, "dump-guest-core=on is not supported: vireo keeps guest RAM out of "
                   "its core dumps");
        return false;
    }
    const char *acpi = keyval_get(kv, "acpi");
    return !acpi || compat_set_acpi(acpi, errp);
}

/* ---- JSON forms of -device, -object, -netdev ---- */

static bool append_json(StrBuf *sb, const char *key, json_object *v, Error **errp)
{
    if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, k, child) {
            char *sub = xasprintf("%s.%s", key, k);
            bool ok = append_json(sb, sub, child, errp);
            free(sub);
            if (!ok) {
                return false;
            }
        }
        return true;
    }
    const char *text;
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        text = json_object_get_boolean(v) ? "on" : "off";
        break;
    case json_type_int:
    case json_type_double:
    case json_type_string:
        text = json_object_get_string(v);
        break;
    default:
        error_setg(errp, "Parameter '%s': lists and null are not supported", key);
        return false;
    }
    strbuf_printf(sb, "%s%s=", sb->len ? "," : "", key);
    for (const char *p = text; *p; p++) {
        strbuf_printf(sb, *p == ',' ? ",," : "%c", *p);
    }
    return true;
}

char *compat_json_to_keyval(const char *option, const char *arg, Error **errp)
{
    const char *implied = !strcmp(option, "device") ? "driver" :
                          !strcmp(option, "object") ? "qom-type" :
                          !strcmp(option, "netdev") ? "type" :
                          !strcmp(option, "audiodev") ? "driver" : NULL;
    if (!implied || arg[0] != '{') {
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    json_object *obj = json_tokener_parse_ex(tok, arg, (int)strlen(arg));
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == strlen(arg);
    json_tokener_free(tok);
    if (!obj || !complete || !json_object_is_type(obj, json_type_object)) {
        error_setg(errp, "-%s: invalid JSON object", option);
        json_object_put(obj);
        return NULL;
    }
    StrBuf sb = { 0 };
    json_object *first = NULL;
    bool ok = json_object_object_get_ex(obj, implied, &first) &&
              json_object_is_type(first, json_type_string);
    if (!ok) {
        error_setg(errp, "Parameter '%s' is missing", implied);
    } else {
        /* the type first and bare, as the key=value form writes it */
        for (const char *p = json_object_get_string(first); *p; p++) {
            strbuf_printf(&sb, *p == ',' ? ",," : "%c", *p);
        }
        json_object_object_foreach(obj, k, v) {
            if (strcmp(k, implied) != 0 && !append_json(&sb, k, v, errp)) {
                ok = false;
                break;
            }
        }
    }
    json_object_put(obj);
    if (!ok) {
        strbuf_free(&sb);
        return NULL;
    }
    return strbuf_steal(&sb);
}

/* ---- -device isa-serial: the board's 16550 UARTs under QEMU's name ---- */

static const OptParam isa_serial_params[] = {
    { "driver", OPT_STRING, "isa-serial" },
    { "id", OPT_STRING, "device id" },
    { "chardev", OPT_STRING, "id of the character device behind the port" },
    { "index", OPT_NUMBER, "port number: 0 to 3 (COM1 to COM4, their usual I/O ports)" },
    { NULL },
};

const OptParam *isa_serial_params_table(void)
{
    return isa_serial_params;
}

int compat_device(const char *arg, Error **errp)
{
    size_t n = strcspn(arg, ",");
    if (!(n == 10 && !strncmp(arg, "isa-serial", 10)) && strncmp(arg, "driver=isa-serial,", 18)) {
        return 0;
    }
    KeyValList kv;
    if (!keyval_parse(arg, "driver", isa_serial_params, &kv, errp)) {
        return -1;
    }
    const char *chardev = keyval_get(&kv, "chardev");
    uint64_t index = keyval_get_number(&kv, "index", UINT64_MAX);
    if (index == UINT64_MAX) {
        for (index = 0; index < VM_MAX_SERIAL && vm_config.serial[index]; index++) {
        }
    }
    int rc = -1;
    if (!chardev) {
        error_setg(errp, "isa-serial: Property 'chardev' is required");
    } else if (index >= VM_MAX_SERIAL) {
        error_setg(errp, "Max. supported number of ISA serial ports is %d", VM_MAX_SERIAL);
    } else if (vm_config.serial[index]) {
        error_setg(errp, "isa-serial: index %llu is already in use",
                   (unsigned long long)index);
    } else {
        vm_config.serial[index] = xasprintf("chardev:%s", chardev);
        if ((int)index >= vm_config.nr_serial) {
            vm_config.nr_serial = (int)index + 1;
        }
        rc = 1;
    }
    keyval_free(&kv);
    return rc;
}

const CmdOption compat_options[] = {
    { "no-user-config", NULL, "read no configuration file (vireo never reads one)", NULL, NULL,
      opt_no_user_config },
    { "overcommit", "[mem-lock=off][,cpu-pm=off]", "host memory and CPU overcommit (only off)",
      "overcommit", overcommit_params, opt_overcommit },
    { "msg", "[timestamp=on|off]", "how error messages are written", "msg", msg_params,
      opt_msg },
    { "audiodev", "none,id=ID", "audio back-end (only none)", "audiodev", audiodev_params,
      opt_audiodev },
    { "no-acpi", NULL, "no ACPI (only with machine none: vireo-pc needs ACPI)", NULL, NULL,
      opt_no_acpi },
    { "usb", NULL, "USB controller (not available: refused)", NULL, NULL, opt_usb },
    { NULL },
};
