/*
 * qom-list, qom-get, qom-set over vireo's object tree, laid out as QEMU's:
 *   /                          machine, objects
 *   /machine                   peripheral, peripheral-anon, unattached
 *   /machine/peripheral/ID     devices with an id (core/qdev.h), and so on
 *   /machine/vcpu[N]           the vCPUs (monitor/qom-cpu.c)
 *   /objects/ID                -object / object-add objects
 * Every object has "type"; a device also "realized", "hotpluggable" and
 * "parent_bus"; a virtio proxy its "virtio-backend" child. Errors are
 * QEMU's texts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/objects.h"
#include "core/qdev.h"
#include "core/iothread.h"
#include "core/vm-config.h"
#include "machine/machine.h"
#include "monitor/qom-cpu.h"
#include "memory/host-backend.h"
#include "qapi/qapi-commands.h"
#include "util/keyval.h"
#include "virtio/virtio-balloon.h"
#include "util/osdep.h"

typedef enum NodeKind { NODE_ROOT, NODE_MACHINE, NODE_CONTAINER, NODE_OBJECTS, NODE_DEVICE,
                        NODE_BACKEND, NODE_OBJECT } NodeKind;   /* BACKEND: a virtio-backend */

typedef struct Node {
    NodeKind kind;
    const char *container;      /* NODE_CONTAINER: "peripheral", ... */
    Device *dev;
    char *type;                 /* for objects */
} Node;

static const char *const containers[] = { "peripheral", "peripheral-anon", "unattached" };

/* The machine object's type: its board's name, QOM style ("pc-i440fx-7.2-machine"). */
static const char *machine_qom_type(void)
{
    static char buf[64];
    const MachineType *t = machine_type_find(vm_config.machine_type);
    snprintf(buf, sizeof(buf), "%s-machine", t ? t->name : MACHINE_DEFAULT_TYPE);
    return buf;
}

static char *object_type(const char *id)
{
    HostMemBackend *b = host_backend_find(id);
    if (b) {
        return xstrdup(b->type);
    }
    if (iothread_find(id)) {
        return xstrdup("iothread");
    }
    const char *opts = object_find_opts(id);
    KeyValList kv;
    char *type = NULL;
    if (opts && keyval_parse(opts, "qom-type", NULL, &kv, NULL)) {
        const char *t = keyval_get(&kv, "qom-type");
        type = t ? xstrdup(t) : NULL;
        keyval_free(&kv);
    }
    return type;
}

static bool resolve(const char *path, Node *n)
{
    memset(n, 0, sizeof(*n));
    if (!strcmp(path, "/")) {
        n->kind = NODE_ROOT;
        return true;
    }
    if (!strcmp(path, "/machine")) {
        n->kind = NODE_MACHINE;
        return true;
    }
    if (!strcmp(path, "/objects")) {
        n->kind = NODE_OBJECTS;
        return true;
    }
    for (size_t i = 0; i < ARRAY_SIZE(containers); i++) {
        char *p = xasprintf("/machine/%s", containers[i]);
        bool match = !strcmp(p, path);
        free(p);
        if (match) {
            n->kind = NODE_CONTAINER;
            n->container = containers[i];
            return true;
        }
    }
    if (!strncmp(path, "/objects/", 9) && (n->type = object_type(path + 9))) {
        n->kind = NODE_OBJECT;
        return true;
    }
    n->dev = path[0] == '/' ? qdev_find_by_path(path) : qdev_find_by_id(path);
    if (n->dev) {
        n->kind = NODE_DEVICE;
        return true;
    }
    static const char child[] = "/virtio-backend";
    size_t len = strlen(path);
    if (len > strlen(child) && !strcmp(path + len - strlen(child), child)) {
        char *parent = xstrndup_safe(path, len - strlen(child));
        n->dev = qdev_find_by_path(parent);
        free(parent);
        if (n->dev && n->dev->pci_slot >= 0 && !strncmp(n->dev->type, "virtio-", 7)) {
            n->kind = NODE_BACKEND;
            /* "virtio-blk-pci" -> "virtio-blk-device" */
            n->type = xasprintf("%.*s-device", (int)(strlen(n->dev->type) - 4), n->dev->type);
            return true;
        }
    }
    return false;
}

static void add_prop(ObjectPropertyInfoList **list, const char *name, const char *type)
{
    ObjectPropertyInfo *info = xzalloc(sizeof(*info));
    info->name = xstrdup(name);
    info->type = xstrdup(type);
    QAPI_LIST_PREPEND(*list, info);
}

static void add_child(ObjectPropertyInfoList **list, const char *name, const char *type)
{
    char *t = xasprintf("child<%s>", type);
    add_prop(list, name, t);
    free(t);
}

static bool virtio_proxy(const Device *d)
{
    return d->pci_slot >= 0 && !strncmp(d->type, "virtio-", 7);
}

static bool is_balloon(const Device *d)
{
    return !strcmp(d->type, "virtio-balloon-pci");
}

/* QEMU's guest-stats: {"stats": {"stat-...": n, ...}, "last-update": seconds}. */
static json_object *balloon_stats_json(void)
{
    static const char *const names[BALLOON_NR_STATS] = {
        "stat-swap-in", "stat-swap-out", "stat-major-faults", "stat-minor-faults",
        "stat-free-memory", "stat-total-memory", "stat-available-memory", "stat-disk-caches",
        "stat-htlb-pgalloc", "stat-htlb-pgfail",
    };
    int64_t v[BALLOON_NR_STATS], last = 0;
    if (!virtio_balloon_get_stats(v, &last)) {
        return NULL;
    }
    json_object *stats = json_object_new_object();
    for (int i = 0; i < BALLOON_NR_STATS; i++) {
        /* unsigned, as QEMU reports them: one not reported is 2^64 - 1 */
        json_object_object_add(stats, names[i], json_object_new_uint64((uint64_t)v[i]));
    }
    json_object *ret = json_object_new_object();
    json_object_object_add(ret, "stats", stats);
    json_object_object_add(ret, "last-update", json_object_new_int64(last));
    return ret;
}

static void list_objects(ObjectPropertyInfoList **list)
{
    for (const DeviceOption *o = vm_config.objects; o; o = o->next) {
        KeyValList kv;
        if (keyval_parse(o->opts, "qom-type", NULL, &kv, NULL)) {
            const char *id = keyval_get(&kv, "id"), *type = keyval_get(&kv, "qom-type");
            if (id && type) {
                add_child(list, id, type);
            }
            keyval_free(&kv);
        }
    }
}

ObjectPropertyInfoList *qmp_qom_list(const char *path, Error **errp)
{
    Node n;
    unsigned cpu;
    if (qom_cpu_path(path, &cpu)) {
        return qom_cpu_list(cpu);
    }
    if (!resolve(path, &n)) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", path);
        return NULL;
    }
    ObjectPropertyInfoList *list = NULL;
    switch (n.kind) {
    case NODE_ROOT:
        add_child(&list, "objects", "container");
        add_child(&list, "machine", machine_qom_type());
        break;
    case NODE_MACHINE:
        for (size_t i = 0; i < ARRAY_SIZE(containers); i++) {
            add_child(&list, containers[i], "container");
        }
        qom_cpu_children(&list);
        break;
    case NODE_CONTAINER: {
        char *prefix = xasprintf("/machine/%s/", n.container);
        for (Device *d = qdev_first(); d; d = d->next) {
            if (!strncmp(d->path, prefix, strlen(prefix))) {
                add_child(&list, d->path + strlen(prefix), d->type);
            }
        }
        free(prefix);
        break;
    }
    case NODE_OBJECTS:
        list_objects(&list);
        break;
    case NODE_BACKEND:
        add_prop(&list, "parent_bus", "link<bus>");
        add_prop(&list, "realized", "bool");
        if (is_balloon(n.dev)) {
            add_prop(&list, "guest-stats-polling-interval", "int");
            add_prop(&list, "guest-stats", "guest statistics");
        }
        break;
    case NODE_DEVICE:
        if (is_balloon(n.dev)) {
            add_prop(&list, "guest-stats-polling-interval", "int");
            add_prop(&list, "guest-stats", "guest statistics");
        }
        add_prop(&list, "parent_bus", "link<bus>");
        add_prop(&list, "hotpluggable", "bool");
        add_prop(&list, "realized", "bool");
        if (virtio_proxy(n.dev)) {
            char *t = xasprintf("%.*s-device", (int)(strlen(n.dev->type) - 4), n.dev->type);
            add_child(&list, "virtio-backend", t);
            free(t);
        }
        break;
    default:
        break;
    }
    add_prop(&list, "type", "string");
    free(n.type);
    return list;
}

json_object *qmp_qom_get(const char *path, const char *property, Error **errp)
{
    Node n;
    unsigned cpu;
    if (qom_cpu_path(path, &cpu)) {
        return qom_cpu_get(cpu, property, errp);
    }
    if (!resolve(path, &n)) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", path);
        return NULL;
    }
    json_object *ret = NULL;
    const char *t = n.kind == NODE_MACHINE ? machine_qom_type() :
                    n.kind == NODE_DEVICE ? n.dev->type :
                    n.kind == NODE_OBJECT || n.kind == NODE_BACKEND ? n.type : "container";
    bool balloon = (n.kind == NODE_DEVICE || n.kind == NODE_BACKEND) && is_balloon(n.dev);
    if (!strcmp(property, "type")) {
        ret = json_object_new_string(t);
    } else if (balloon && !strcmp(property, "guest-stats")) {
        ret = balloon_stats_json();
    } else if (balloon && !strcmp(property, "guest-stats-polling-interval")) {
        ret = json_object_new_int64(virtio_balloon_poll_interval());
    } else if (n.kind == NODE_BACKEND && !strcmp(property, "realized")) {
        ret = json_object_new_boolean(true);
    } else if (n.kind == NODE_DEVICE && !strcmp(property, "realized")) {
        ret = json_object_new_boolean(true);
    } else if (n.kind == NODE_DEVICE && !strcmp(property, "hotpluggable")) {
        ret = json_object_new_boolean(n.dev->ops && n.dev->ops->unplug);
    } else if (n.kind == NODE_DEVICE && !strcmp(property, "parent_bus")) {
        char *bus = !strcmp(n.dev->bus, "pci.0") ? xstrdup("/machine/i440fx/pci.0")
                                                  : xasprintf("/machine/%s", n.dev->bus);
        ret = json_object_new_string(bus);
        free(bus);
    } else {
        error_setg(errp, "Property '%s.%s' not found", t, property);
    }
    free(n.type);
    return ret;
}

void qmp_qom_set(const char *path, const char *property, json_object *value, Error **errp)
{
    Node n;
    if (resolve(path, &n) && (n.kind == NODE_DEVICE || n.kind == NODE_BACKEND) &&
        is_balloon(n.dev) && !strcmp(property, "guest-stats-polling-interval")) {
        free(n.type);
        if (json_object_get_type(value) != json_type_int) {
            error_setg(errp, "Invalid parameter type for '%s', expected: integer", property);
            return;
        }
        virtio_balloon_set_poll_interval(json_object_get_int64(value), errp);
        return;
    }
    free(n.type);
    json_object *cur = qmp_qom_get(path, property, errp);
    if (cur) {
        /* Every property vireo lists is fixed once the object exists. */
        error_setg(errp, "Insufficient permission to perform this operation");
        json_object_put(cur);
    }
}
