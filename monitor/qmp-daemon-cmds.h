/*
 * The protocol commands every daemon's schema includes from control.json
 * and introspect.json: qmp_capabilities, query-version, query-commands and
 * query-qmp-schema, plus the greeting's version, written once here.
 *
 * Each daemon's schema is generated with its own prefix, so these handlers
 * must be compiled against that daemon's generated headers and tables; a
 * function in libmonitor could not name them. A daemon's monitor file
 * therefore includes its qapi/PREFIX-qapi-commands.h, defines
 *
 *   QMP_DAEMON_PREFIX   the generator's prefix as a C token (storage_daemon)
 *   QMP_DAEMON_PACKAGE  the "package" string of query-version
 *
 * and includes this file once; it defines the four handlers and
 * qmp_daemon_version_json() for QmpServerConfig.version.
 */
#ifndef VIREO_MONITOR_QMP_DAEMON_CMDS_H
#define VIREO_MONITOR_QMP_DAEMON_CMDS_H

#if !defined(QMP_DAEMON_PREFIX) || !defined(QMP_DAEMON_PACKAGE)
#error "define QMP_DAEMON_PREFIX and QMP_DAEMON_PACKAGE first"
#endif

#include "util/osdep.h"

/* The QEMU interface level the protocol commands follow, as vireo's. */
#define QMP_DAEMON_LEVEL_MAJOR 7
#define QMP_DAEMON_LEVEL_MINOR 2
#define QMP_DAEMON_LEVEL_MICRO 0

#define QMP_DAEMON_GLUE_(a, b) a##b
#define QMP_DAEMON_GLUE(a, b) QMP_DAEMON_GLUE_(a, b)
#define QMP_DAEMON_TABLE QMP_DAEMON_GLUE(QMP_DAEMON_PREFIX, _qmp_command_table)
#define QMP_DAEMON_VERSION_TYPE QMP_DAEMON_GLUE(QMP_DAEMON_PREFIX, _qapi_type_VersionInfo)

void qmp_qmp_capabilities(bool has_enable, QMPCapabilityList *enable, Error **errp)
{
    /* The session itself records what was turned on. */
}

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = xzalloc(sizeof(*info));
    info->qemu = xzalloc(sizeof(*info->qemu));
    info->qemu->major = QMP_DAEMON_LEVEL_MAJOR;
    info->qemu->minor = QMP_DAEMON_LEVEL_MINOR;
    info->qemu->micro = QMP_DAEMON_LEVEL_MICRO;
    info->package = xstrdup(QMP_DAEMON_PACKAGE);
    return info;
}

static json_object *qmp_daemon_version_json(void)
{
    VersionInfo *info = qmp_query_version(NULL);
    json_object *j = qapi_value_to_json(&QMP_DAEMON_VERSION_TYPE, &info);
    qapi_free_VersionInfo(info);
    return j;
}

CommandInfoList *qmp_query_commands(Error **errp)
{
    const QmpCommandTable *t = &QMP_DAEMON_TABLE;
    CommandInfoList *list = NULL;
    for (int i = t->nr_commands - 1; i >= 0; i--) {
        CommandInfo *info = xzalloc(sizeof(*info));
        info->name = xstrdup(t->commands[i].name);
        QAPI_LIST_PREPEND(list, info);
    }
    return list;
}

json_object *qmp_query_qmp_schema(json_object *args, Error **errp)
{
    return qmp_table_schema(&QMP_DAEMON_TABLE);
}

#endif
