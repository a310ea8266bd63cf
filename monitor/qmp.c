/*
 * QMP sessions: greeting, capabilities negotiation, a streaming JSON
 * parser that copes with partial reads and several messages per read,
 * dispatch through the table generated from the schema, and events.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "config.h"
#include "core/runstate.h"
#include "monitor/json-stream.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

/* Nesting and size limits on one incoming message (QEMU's, too). */
#define QMP_MAX_DEPTH 1024
#define QMP_MAX_MESSAGE (64u << 20)

typedef struct QmpSession {
    ChardevConn *conn;
    bool pretty;
    bool command_mode;          /* after qmp_capabilities */
    bool oob;                   /* the client enabled out-of-band execution */
    JsonStream stream;          /* splits input into messages */
    struct QmpSession *next;
} QmpSession;

typedef struct QmpMonitor {
    bool pretty;
} QmpMonitor;

static QmpSession *sessions;
static ChardevConn *current_conn;

ChardevConn *hmp_session_conn(void);

ChardevConn *monitor_current_conn(void)
{
    return current_conn ? current_conn : hmp_session_conn();
}

/* ---- output ---- */

static void session_send(QmpSession *s, json_object *msg)
{
    int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                (s->pretty ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_SPACED);
    size_t len;
    const char *text = json_object_to_json_string_length(msg, flags, &len);
    chardev_conn_write(s->conn, text, len);
    chardev_conn_write(s->conn, "\r\n", 2);
}

static json_object *error_reply(ErrorClass cls, const char *desc, json_object *id)
{
    json_object *err = json_object_new_object();
    json_object_object_add(err, "class", json_object_new_string(error_class_name(cls)));
    json_object_object_add(err, "desc", json_object_new_string(desc));
    json_object *reply = json_object_new_object();
    json_object_object_add(reply, "error", err);
    if (id) {
        json_object_object_add(reply, "id", json_object_get(id));
    }
    return reply;
}

static void send_error(QmpSession *s, ErrorClass cls, const char *desc, json_object *id)
{
    json_object *reply = error_reply(cls, desc, id);
    session_send(s, reply);
    json_object_put(reply);
}

json_object *qmp_version_json(void);

static void send_greeting(QmpSession *s)
{
    json_object *qmp = json_object_new_object();
    json_object_object_add(qmp, "version", qmp_version_json());
    json_object *caps = json_object_new_array();
    json_object_array_add(caps, json_object_new_string("oob"));
    json_object_object_add(qmp, "capabilities", caps);
    json_object *greeting = json_object_new_object();
    json_object_object_add(greeting, "QMP", qmp);
    session_send(s, greeting);
    json_object_put(greeting);
}

void qapi_event_emit(const char *event, json_object *data)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    json_object *ts = json_object_new_object();
    json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
    json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "timestamp", ts);
    json_object_object_add(msg, "event", json_object_new_string(event));
    if (data) {
        json_object_object_add(msg, "data", data);
    }
    for (QmpSession *s = sessions; s; s = s->next) {
        if (s->command_mode) {
            session_send(s, msg);
        }
    }
    json_object_put(msg);
}

/* ---- dispatch ---- */

const QmpCommand *qmp_find_command(const char *name)
{
    for (int i = 0; i < qmp_nr_commands; i++) {
        if (!strcmp(qmp_commands[i].name, name)) {
            return &qmp_commands[i];
        }
    }
    return NULL;
}

/*
 * Check the arguments (NULL: none) against the command's schema and, when
 * execute is set, run it. Returns the 'return' value; NULL with errp set on
 * an error, and NULL when only checking.
 */
static json_object *dispatch(const QmpCommand *cmd, json_object *args, bool execute,
                             Error **errp)
{
    json_object *empty = args ? NULL : json_object_new_object();
    if (!args) {
        args = empty;
    }
    json_object *ret = NULL;
    void *cargs = xzalloc(cmd->args->struct_size);
    if (qapi_struct_from_json(cmd->args, args, NULL, cargs, errp)) {
        Error *err = NULL;
        if (execute) {
            ret = cmd->marshal ? cmd->marshal(cargs, &err) : cmd->raw(args, &err);
        }
        if (err) {
            error_propagate(errp, err);
            json_object_put(ret);
            ret = NULL;
        }
        qapi_clear_struct(cmd->args, cargs);
    }
    free(cargs);
    json_object_put(empty);
    return ret;
}

static bool check_envelope(QmpSession *s, json_object *req, const char **name,
                           json_object **args, bool *oob, Error **errp)
{
    json_object *exec = NULL;
    json_object_object_foreach(req, key, val) {
        if (!strcmp(key, "execute") || !strcmp(key, "exec-oob")) {
            if (exec) {
                error_setg(errp, "QMP input must not have both 'execute' and 'exec-oob'");
                return false;
            }
            exec = val;
            *oob = !strcmp(key, "exec-oob");
            if (*oob && !s->oob) {
                error_setg(errp, "QMP input member 'exec-oob' is unexpected");
                return false;
            }
        } else if (!strcmp(key, "arguments")) {
            *args = val;
        } else if (strcmp(key, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return false;
        }
    }
    if (!exec) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    if (!json_object_is_type(exec, json_type_string)) {
        error_setg(errp, "QMP input member 'execute' must be a string");
        return false;
    }
    if (*args && !json_object_is_type(*args, json_type_object)) {
        error_setg(errp, "QMP input member 'arguments' must be an object");
        return false;
    }
    *name = json_object_get_string(exec);
    return true;
}

static bool check_allowed(QmpSession *s, const char *name, const QmpCommand **cmd, Error **errp)
{
    bool negotiating = !strcmp(name, "qmp_capabilities");
    if (!s->command_mode && !negotiating) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with 'qmp_capabilities'");
        return false;
    }
    *cmd = qmp_find_command(name);
    if (!*cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND, "The command %s has not been found", name);
        return false;
    }
    if (runstate_get() == RUN_STATE_PRECONFIG && !((*cmd)->flags & QMP_CMD_ALLOW_PRECONFIG)) {
        error_setg(errp, "The command '%s' is permitted only after machine initialization has completed",
                   name);
        return false;
    }
    return true;
}

static bool capability_requested(json_object *args, const char *cap)
{
    json_object *enable;
    if (!args || !json_object_object_get_ex(args, "enable", &enable)) {
        return false;
    }
    size_t n = json_object_array_length(enable);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(json_object_get_string(json_object_array_get_idx(enable, i)), cap)) {
            return true;
        }
    }
    return false;
}

static void handle_request(QmpSession *s, json_object *req)
{
    if (!json_object_is_type(req, json_type_object)) {
        send_error(s, ERROR_CLASS_GENERIC_ERROR, "QMP input must be a JSON object", NULL);
        return;
    }
    json_object *id = NULL, *args = NULL;
    json_object_object_get_ex(req, "id", &id);
    const char *name = NULL;
    const QmpCommand *cmd = NULL;
    Error *err = NULL;
    json_object *ret = NULL;
    bool oob = false;
    if (check_envelope(s, req, &name, &args, &oob, &err) && check_allowed(s, name, &cmd, &err)) {
        if (oob && !(cmd->flags & QMP_CMD_ALLOW_OOB)) {
            error_setg(&err, "The command %s does not support OOB", name);
            goto reply;
        }
        bool renegotiating = s->command_mode && !strcmp(name, "qmp_capabilities");
        if (renegotiating) {
            /* Arguments are checked first, then whether negotiation is over. */
            dispatch(cmd, args, false, &err);
            if (!err) {
                error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                          "Capabilities negotiation is already complete, command ignored");
            }
        } else {
            current_conn = s->conn;
            ret = dispatch(cmd, args, true, &err);
            current_conn = NULL;
            if (!err && !strcmp(name, "qmp_capabilities")) {
                s->command_mode = true;
                s->oob = capability_requested(args, "oob");
            }
        }
    }
reply:
    if (err) {
        send_error(s, error_get_class(err), error_get_pretty(err), id);
        error_free(err);
        return;
    }
    if (cmd->flags & QMP_CMD_NO_SUCCESS_RESPONSE) {
        json_object_put(ret);
        return;
    }
    json_object *reply = json_object_new_object();
    json_object_object_add(reply, "return", ret);
    if (id) {
        json_object_object_add(reply, "id", json_object_get(id));
    }
    session_send(s, reply);
    json_object_put(reply);
}

/* ---- input ---- */

static void parse_error(QmpSession *s, const char *why)
{
    char *desc = xasprintf("JSON parse error, %s", why);
    send_error(s, ERROR_CLASS_GENERIC_ERROR, desc, NULL);
    free(desc);
}

static void stream_error(void *opaque, const char *why)
{
    parse_error(opaque, why);
}

/* One complete message, split out by the stream: parse it strictly. */
static void stream_message(void *opaque, const char *text, size_t len)
{
    QmpSession *s = opaque;
    if (!json_text_is_utf8(text, len)) {
        parse_error(s, "invalid UTF-8 sequence");
        return;
    }
    json_tokener *tok = json_tokener_new_ex(QMP_MAX_DEPTH + 1);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* The stream ended a scalar that the parser wants more of. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
    }
    if (jerr != json_tokener_success) {
        parse_error(s, json_tokener_error_desc(jerr));
    } else {
        handle_request(s, obj);
    }
    json_object_put(obj);
    json_tokener_free(tok);
}

static void qmp_session_read(void *opaque, const uint8_t *buf, size_t len)
{
    QmpSession *s = opaque;
    json_stream_feed(&s->stream, buf, len);
}

static void *qmp_session_open(void *fe_opaque, ChardevConn *conn)
{
    QmpMonitor *mon = fe_opaque;
    QmpSession *s = xzalloc(sizeof(*s));
    s->conn = conn;
    s->pretty = mon->pretty;
    json_stream_init(&s->stream, QMP_MAX_MESSAGE, QMP_MAX_DEPTH, stream_message,
                     stream_error, s);
    s->next = sessions;
    sessions = s;
    send_greeting(s);
    return s;
}

void monitor_forget_conn_fds(ChardevConn *conn);

static void qmp_session_close(void *opaque)
{
    QmpSession *s = opaque;
    monitor_forget_conn_fds(s->conn);
    for (QmpSession **p = &sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    json_stream_free(&s->stream);
    free(s);
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
