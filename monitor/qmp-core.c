/*
 * The QMP protocol engine (see qmp-core.h): greeting, capabilities
 * negotiation, a streaming splitter that copes with partial reads and
 * several messages per read, strict parsing of each message, dispatch
 * through a generated command table, and events.
 */
#include "monitor/qmp-core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "monitor/json-stream.h"
#include "util/osdep.h"

/* Nesting and size limits on one incoming message (QEMU's, too). */
#define QMP_MAX_DEPTH 1024
#define QMP_MAX_MESSAGE (64u << 20)

struct QmpSession {
    QmpSessionConfig cfg;
    const QmpSessionOps *ops;
    void *opaque;
    bool command_mode;          /* after qmp_capabilities */
    bool oob;                   /* the client enabled out-of-band execution */
    JsonStream stream;          /* splits input into messages */
    QmpSession *next;           /* every live session, for events */
};

static QmpSession *sessions;
static QmpSession *current;

void *qmp_session_opaque(const QmpSession *s)
{
    return s->opaque;
}

QmpSession *qmp_session_current(void)
{
    return current;
}

/* ---- output ---- */

static void session_send(QmpSession *s, json_object *msg)
{
    int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                (s->cfg.pretty ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_SPACED);
    size_t len;
    const char *text = json_object_to_json_string_length(msg, flags, &len);
    s->ops->write(s->opaque, text, len);
    s->ops->write(s->opaque, "\r\n", 2);
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

static void send_greeting(QmpSession *s)
{
    json_object *qmp = json_object_new_object();
    json_object_object_add(qmp, "version", s->cfg.version());
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

/* ---- command tables ---- */

const QmpCommand *qmp_table_find(const QmpCommandTable *t, const char *name)
{
    for (int i = 0; i < t->nr_commands; i++) {
        if (!strcmp(t->commands[i].name, name)) {
            return &t->commands[i];
        }
    }
    return NULL;
}

json_object *qmp_table_schema(const QmpCommandTable *t)
{
    return json_tokener_parse(t->introspection_json);
}

/* ---- dispatch ---- */

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
    /*
     * A hand-written ('gen': false) command takes its arguments as they
     * come, as in QEMU (device_add passes device properties): only the
     * members the schema declares are checked. One that declares none
     * (query-qmp-schema) takes no arguments at all.
     */
    bool passes_extra = cmd->raw && cmd->args->nr_members > 0;
    json_object *declared = passes_extra ? json_object_new_object() : NULL;
    for (int i = 0; declared && i < cmd->args->nr_members; i++) {
        json_object *v;
        if (json_object_object_get_ex(args, cmd->args->members[i].name, &v)) {
            json_object_object_add(declared, cmd->args->members[i].name, json_object_get(v));
        }
    }
    if (qapi_struct_from_json(cmd->args, declared ? declared : args, NULL, cargs, errp)) {
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
    json_object_put(declared);
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
    *cmd = qmp_table_find(s->cfg.table, name);
    if (!*cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND, "The command %s has not been found", name);
        return false;
    }
    return !s->ops->may_run || s->ops->may_run(s->opaque, *cmd, errp);
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

/* Run an accepted request; returns its 'return' value, NULL with errp set. */
static json_object *execute(QmpSession *s, const QmpCommand *cmd, const char *name,
                            json_object *args, Error **errp)
{
    if (s->command_mode && !strcmp(name, "qmp_capabilities")) {
        /* Arguments are checked first, then whether negotiation is over. */
        dispatch(cmd, args, false, errp);
        if (!*errp) {
            error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                      "Capabilities negotiation is already complete, command ignored");
        }
        return NULL;
    }
    QmpSession *outer = current;
    current = s;
    json_object *ret = dispatch(cmd, args, true, errp);
    current = outer;
    if (!*errp && !strcmp(name, "qmp_capabilities")) {
        s->command_mode = true;
        s->oob = capability_requested(args, "oob");
    }
    return ret;
}

static void send_return(QmpSession *s, json_object *ret, json_object *id)
{
    json_object *reply = json_object_new_object();
    json_object_object_add(reply, "return", ret);
    if (id) {
        json_object_object_add(reply, "id", json_object_get(id));
    }
    session_send(s, reply);
    json_object_put(reply);
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
        } else {
            ret = execute(s, cmd, name, args, &err);
        }
    }
    if (err) {
        send_error(s, error_get_class(err), error_get_pretty(err), id);
        error_free(err);
    } else if (cmd->flags & QMP_CMD_NO_SUCCESS_RESPONSE) {
        json_object_put(ret);
    } else {
        send_return(s, ret, id);
    }
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

void qmp_session_feed(QmpSession *s, const void *buf, size_t len)
{
    json_stream_feed(&s->stream, buf, len);
}

QmpSession *qmp_session_new(const QmpSessionConfig *cfg, const QmpSessionOps *ops,
                            void *opaque)
{
    QmpSession *s = xzalloc(sizeof(*s));
    s->cfg = *cfg;
    s->ops = ops;
    s->opaque = opaque;
    json_stream_init(&s->stream, QMP_MAX_MESSAGE, QMP_MAX_DEPTH, stream_message,
                     stream_error, s);
    s->next = sessions;
    sessions = s;
    send_greeting(s);
    return s;
}

void qmp_session_free(QmpSession *s)
{
    for (QmpSession **p = &sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    if (current == s) {
        current = NULL;
    }
    json_stream_free(&s->stream);
    free(s);
}
