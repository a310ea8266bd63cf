/*
 * vireo-ivshmem-server's QMP monitor (see server-qmp.h). The command
 * handlers below are the ones qapi/ivshmem-server.json declares; the
 * protocol itself is the monitor core's.
 */
#include "ivshmem/server-qmp.h"

#include <stdlib.h>

#include "config.h"
#include "monitor/qmp-server.h"
#include "qapi/ivshmem-server-qapi-commands.h"
#include "qapi/ivshmem-server-qapi-events.h"
#include "util/osdep.h"

/* Generated handlers take no context: one server per process. */
static IvshServer *served;
static QmpServer *monitor;
static IvshWatch monitor_watch;

/* ---- protocol commands ---- */

#define QMP_DAEMON_PREFIX ivshmem_server
#define QMP_DAEMON_PACKAGE "vireo-ivshmem-server " VIREO_VERSION
#include "monitor/qmp-daemon-cmds.h"

/* The reply goes out first: the loop ends after this turn and the monitor
 * is closed only after flushing what its clients' sockets take. */
void qmp_quit(Error **errp)
{
    served->quit = true;
}

/* ---- peers ---- */

static IvshmemPeerInfo *peer_info(const IvshPeer *p)
{
    IvshmemPeerInfo *info = xzalloc(sizeof(*info));
    info->id = p->id;
    info->vectors = p->vec->n;
    info->pid = p->pid;
    info->uid = p->uid == (uid_t)-1 ? -1 : (int64_t)p->uid;
    info->connected = xzalloc(sizeof(*info->connected));
    info->connected->seconds = p->joined.tv_sec;
    info->connected->microseconds = p->joined.tv_nsec / 1000;
    return info;
}

IvshmemPeerInfoList *qmp_query_ivshmem_peers(Error **errp)
{
    IvshmemPeerInfoList *list = NULL, **tail = &list;
    for (const IvshPeer *p = served->head; p; p = p->next) {
        if (!p->dead) {
            QAPI_LIST_APPEND(tail, peer_info(p));
        }
    }
    return list;
}

static void peer_joined(IvshServer *s, const IvshPeer *p)
{
    int64_t uid = p->uid == (uid_t)-1 ? -1 : (int64_t)p->uid;
    ivshmem_server_qapi_event_send_ivshmem_peer_connected(p->id, p->vec->n, p->pid, uid);
}

static void peer_left(IvshServer *s, const IvshPeer *p)
{
    bool dropped = !p->left_by_itself;
    ivshmem_server_qapi_event_send_ivshmem_peer_disconnected(p->id, dropped, dropped,
                                                             p->why);
}

static const IvshServerHooks qmp_hooks = {
    .peer_joined = peer_joined,
    .peer_left = peer_left,
};

/* ---- the monitor in the server's loop ---- */

static void monitor_ready(IvshServer *s, IvshWatch *w, uint32_t events)
{
    qmp_server_poll(monitor);
}

static void monitor_log(const char *msg)
{
    ivsh_warn("%s", msg);
}

bool ivsh_qmp_listen(const char *path, Error **errp)
{
    QmpServerConfig cfg = {
        .table = &ivshmem_server_qmp_command_table,
        .version = qmp_daemon_version_json,
        .log = monitor_log,
    };
    monitor = qmp_server_new(path, &cfg, errp);
    return monitor != NULL;
}

bool ivsh_qmp_attach(IvshServer *s, Error **errp)
{
    monitor_watch.ready = monitor_ready;
    if (!ivsh_server_watch(s, qmp_server_fd(monitor), &monitor_watch, errp)) {
        return false;
    }
    served = s;
    s->hooks = &qmp_hooks;
    return true;
}

void ivsh_qmp_stop(void)
{
    qmp_server_free(monitor);
    monitor = NULL;
    if (served) {
        served->hooks = NULL;
        served = NULL;
    }
}
