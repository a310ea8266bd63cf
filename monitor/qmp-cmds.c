/*
 * Monitor commands that belong to the monitor itself: the protocol,
 * versions, descriptor passing and fd sets, the HMP bridge.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "util/fdset.h"
#include "util/osdep.h"

/* The QEMU interface level vireo speaks; clients compare it like a QEMU version. */
#define QMP_LEVEL_MAJOR 7
#define QMP_LEVEL_MINOR 2
#define QMP_LEVEL_MICRO 0

/* The session records the capabilities it turned on (monitor/qmp.c). */
void qmp_qmp_capabilities(bool has_enable, QMPCapabilityList *enable, Error **errp)
{
}

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = xzalloc(sizeof(*info));
    info->qemu = xzalloc(sizeof(*info->qemu));
    info->qemu->major = QMP_LEVEL_MAJOR;
    info->qemu->minor = QMP_LEVEL_MINOR;
    info->qemu->micro = QMP_LEVEL_MICRO;
    info->package = xstrdup("vireo " VIREO_VERSION);
    return info;
}

json_object *qmp_version_json(void);
json_object *qmp_version_json(void)
{
    VersionInfo *info = qmp_query_version(NULL);
    json_object *j = qapi_value_to_json(&qapi_type_VersionInfo, &info);
    qapi_free_VersionInfo(info);
    return j;
}

CommandInfoList *qmp_query_commands(Error **errp)
{
    CommandInfoList *list = NULL;
    for (int i = qmp_nr_commands - 1; i >= 0; i--) {
        CommandInfo *info = xzalloc(sizeof(*info));
        info->name = xstrdup(qmp_commands[i].name);
        QAPI_LIST_PREPEND(list, info);
    }
    return list;
}

json_object *qmp_query_qmp_schema(json_object *args, Error **errp)
{
    static json_object *schema;
    if (!schema) {
        schema = json_tokener_parse(qapi_introspection_json);
    }
    return json_object_get(schema);
}

/* ---- named descriptors (getfd/closefd) ---- */

typedef struct NamedFd {
    ChardevConn *owner;
    char *name;
    int fd;
    struct NamedFd *next;
} NamedFd;

static NamedFd *named_fds;

static NamedFd **find_named_fd(ChardevConn *owner, const char *name)
{
    for (NamedFd **p = &named_fds; *p; p = &(*p)->next) {
        if ((*p)->owner == owner && !strcmp((*p)->name, name)) {
            return p;
        }
    }
    return NULL;
}

static void drop_named_fd(NamedFd **p)
{
    NamedFd *n = *p;
    *p = n->next;
    close(n->fd);
    free(n->name);
    free(n);
}

void monitor_forget_conn_fds(ChardevConn *conn);
void monitor_forget_conn_fds(ChardevConn *conn)
{
    NamedFd **p = &named_fds;
    while (*p) {
        if ((*p)->owner == conn) {
            drop_named_fd(p);
        } else {
            p = &(*p)->next;
        }
    }
}

static int take_passed_fd(Error **errp)
{
    ChardevConn *conn = monitor_current_conn();
    int fd = conn ? chardev_conn_take_fd(conn) : -1;
    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
    }
    return fd;
}

void qmp_getfd(const char *fdname, Error **errp)
{
    int fd = take_passed_fd(errp);
    if (fd < 0) {
        return;
    }
    if (fdname[0] >= '0' && fdname[0] <= '9') {
        error_setg(errp, "Parameter 'fdname' name may not start with a digit");
        close(fd);
        return;
    }
    ChardevConn *conn = monitor_current_conn();
    NamedFd **old = find_named_fd(conn, fdname);
    if (old) {
        drop_named_fd(old);
    }
    NamedFd *n = xzalloc(sizeof(*n));
    n->owner = conn;
    n->name = xstrdup(fdname);
    n->fd = fd;
    n->next = named_fds;
    named_fds = n;
}

void qmp_closefd(const char *fdname, Error **errp)
{
    NamedFd **p = find_named_fd(monitor_current_conn(), fdname);
    if (!p) {
        error_setg(errp, "File descriptor named '%s' not found", fdname);
        return;
    }
    drop_named_fd(p);
}

int monitor_take_named_fd(const char *name, Error **errp)
{
    NamedFd **p = find_named_fd(monitor_current_conn(), name);
    if (!p) {
        error_setg(errp, "File descriptor named '%s' has not been found", name);
        return -1;
    }
    NamedFd *n = *p;
    int fd = n->fd;
    *p = n->next;
    free(n->name);
    free(n);
    return fd;
}

/* ---- fd sets ---- */

AddfdInfo *qmp_add_fd(bool has_fdset_id, int64_t fdset_id, bool has_opaque,
                      const char *opaque, Error **errp)
{
    int fd = take_passed_fd(errp);
    if (fd < 0) {
        return NULL;
    }
    if (has_fdset_id && fdset_id < 0) {
        error_setg(errp, "Parameter 'fdset-id' expects a non-negative value");
        close(fd);
        return NULL;
    }
    int64_t id;
    if (!fdset_add(has_fdset_id ? fdset_id : -1, fd, has_opaque ? opaque : NULL, &id, errp)) {
        close(fd);
        return NULL;
    }
    AddfdInfo *info = xzalloc(sizeof(*info));
    info->fdset_id = id;
    info->fd = fd;
    return info;
}

void qmp_remove_fd(int64_t fdset_id, bool has_fd, int64_t fd, Error **errp)
{
    fdset_remove(fdset_id, has_fd ? fd : -1, errp);
}

FdsetInfoList *qmp_query_fdsets(Error **errp)
{
    FdsetInfoList *list = NULL, **tail = &list;
    for (const Fdset *set = fdset_list(); set; set = set->next) {
        FdsetInfo *info = xzalloc(sizeof(*info));
        info->fdset_id = set->id;
        FdsetFdInfoList **ftail = &info->fds;
        for (const FdsetEntry *e = set->fds; e; e = e->next) {
            FdsetFdInfo *fi = xzalloc(sizeof(*fi));
            fi->fd = e->fd;
            if (e->opaque) {
                fi->has_opaque = true;
                fi->opaque = xstrdup(e->opaque);
            }
            QAPI_LIST_APPEND(ftail, fi);
        }
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}

/* ---- clients and HMP ---- */

void qmp_add_client(const char *protocol, const char *fdname, bool has_skipauth,
                    bool skipauth, bool has_tls, bool tls, Error **errp)
{
    if (!strcmp(protocol, "vnc") || !strcmp(protocol, "spice") ||
        !strcmp(protocol, "@dbus-display")) {
        error_setg(errp, "vireo has no %s display: add_client accepts socket chardev ids",
                   protocol[0] == '@' ? protocol + 1 : protocol);
        return;
    }
    int fd = monitor_take_named_fd(fdname, errp);
    if (fd < 0) {
        return;
    }
    Chardev *chr = chardev_find(protocol);
    if (!chr) {
        error_setg(errp, "protocol '%s' is invalid", protocol);
        close(fd);
        return;
    }
    if (!chardev_add_client(chr, fd, errp)) {
        close(fd);
    }
}

char *qmp_human_monitor_command(const char *command_line, bool has_cpu_index,
                                int64_t cpu_index, Error **errp)
{
    StrBuf out = { 0 };
    hmp_execute(command_line, &out);
    /* HMP line ends are "\r\n" on the wire; keep them in the returned text too. */
    StrBuf crlf = { 0 };
    for (size_t i = 0; i < out.len; i++) {
        if (out.str[i] == '\n') {
            strbuf_append(&crlf, "\r", 1);
        }
        strbuf_append(&crlf, &out.str[i], 1);
    }
    strbuf_free(&out);
    return strbuf_steal(&crlf);
}
