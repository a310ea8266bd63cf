/*
 * A QMP monitor on a listening UNIX socket, for daemons that run their own
 * event loop (vireo-ivshmem-server, vireo-storage-daemon). Any number of
 * clients, each its own session of the protocol engine (qmp-core.h).
 *
 * Nothing here blocks: the server keeps its sockets in an epoll set of its
 * own, whose descriptor the daemon watches for readability with whatever
 * loop it has, calling qmp_server_poll() when it fires. Replies and events
 * a client has not taken yet wait in a per-client buffer; a client that
 * lets more than max_output bytes pile up is dropped.
 */
#ifndef VIREO_MONITOR_QMP_SERVER_H
#define VIREO_MONITOR_QMP_SERVER_H

#include <stddef.h>

#include "monitor/qmp-core.h"

typedef struct QmpServer QmpServer;

typedef struct QmpServerConfig {
    const QmpCommandTable *table;   /* e.g. &foo_qmp_command_table */
    json_object *(*version)(void);  /* the greeting's "version" (new reference) */
    size_t max_output;              /* unsent bytes per client; 0: 1 MiB */
    unsigned max_clients;           /* further connections are closed; 0: 64 */
    void (*log)(const char *msg);   /* optional: refusals and drops */
} QmpServerConfig;

/* Listen on @path (replacing only a stale socket there). */
QmpServer *qmp_server_new(const char *path, const QmpServerConfig *cfg, Error **errp);
/* Watch this for readability; call qmp_server_poll() when it is. */
int qmp_server_fd(const QmpServer *srv);
/* Accept, read, run commands and write whatever is ready; never blocks. */
void qmp_server_poll(QmpServer *srv);
/* Give each client what fits in its socket now (e.g. the reply to quit),
 * close everything and remove the socket file. */
void qmp_server_free(QmpServer *srv);

#endif
