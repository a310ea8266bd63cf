/*
 * vireo's QMP monitors: every connection to a chardev given to -qmp or
 * -mon mode=control becomes a session of the protocol engine
 * (qmp-core.c) over vireo's command table. This glue adds what only vireo
 * has: chardev connections (with descriptor passing), the run state that
 * gates commands before the machine exists, and getfd's per-connection
 * descriptors.
 */
#include <stdlib.h>

#include "core/runstate.h"
#include "monitor/monitor.h"
#include "monitor/qmp-core.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

typedef struct QmpMonitor {
    bool pretty;
} QmpMonitor;

/* One client connection and its session. */
typedef struct QmpConn {
    ChardevConn *conn;
    QmpSession *session;
} QmpConn;

ChardevConn *hmp_session_conn(void);
json_object *qmp_version_json(void);
void monitor_forget_conn_fds(ChardevConn *conn);

ChardevConn *monitor_current_conn(void)
{
    QmpSession *s = qmp_session_current();
    if (s) {
        QmpConn *c = qmp_session_opaque(s);
        return c->conn;
    }
    return hmp_session_conn();
}

/* The generated table, as the monitor core takes it. */
static const QmpCommandTable *vireo_table(void)
{
    static QmpCommandTable table;
    if (!table.commands) {
        table = (QmpCommandTable) { qmp_commands, qmp_nr_commands, qapi_introspection_json };
    }
    return &table;
}

const QmpCommand *qmp_find_command(const char *name)
{
    return qmp_table_find(vireo_table(), name);
}

static void qmp_conn_write(void *opaque, const char *text, size_t len)
{
    QmpConn *c = opaque;
    chardev_conn_write(c->conn, text, len);
}

static bool qmp_conn_may_run(void *opaque, const QmpCommand *cmd, Error **errp)
{
    if (runstate_get() == RUN_STATE_PRECONFIG && !(cmd->flags & QMP_CMD_ALLOW_PRECONFIG)) {
        error_setg(errp, "The command '%s' is permitted only after machine initialization has completed",
                   cmd->name);
        return false;
    }
    return true;
}

static const QmpSessionOps qmp_conn_ops = {
    .write = qmp_conn_write,
    .may_run = qmp_conn_may_run,
};

static void qmp_session_read(void *opaque, const uint8_t *buf, size_t len)
{
    QmpConn *c = opaque;
    qmp_session_feed(c->session, buf, len);
}

static void *qmp_session_open(void *fe_opaque, ChardevConn *conn)
{
    QmpMonitor *mon = fe_opaque;
    QmpConn *c = xzalloc(sizeof(*c));
    c->conn = conn;
    QmpSessionConfig cfg = {
        .table = vireo_table(),
        .version = qmp_version_json,
        .pretty = mon->pretty,
    };
    c->session = qmp_session_new(&cfg, &qmp_conn_ops, c);
    return c;
}

static void qmp_session_close(void *opaque)
{
    QmpConn *c = opaque;
    monitor_forget_conn_fds(c->conn);
    qmp_session_free(c->session);
    free(c);
}

static const ChardevSessionHandlers qmp_handlers = {
    .open = qmp_session_open,
    .read = qmp_session_read,
    .close = qmp_session_close,
};

bool monitor_new_qmp(Chardev *chr, bool pretty, Error **errp)
{
    QmpMonitor *mon = xzalloc(sizeof(*mon));
    mon->pretty = pretty;
    if (!chardev_attach_sessions(chr, &qmp_handlers, mon, errp)) {
        free(mon);
        return false;
    }
    return true;
}
