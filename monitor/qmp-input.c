/*
 * send-key (QMP) and sendkey (HMP): key presses for the guest's keyboard.
 *
 * A send-key becomes events in one queue: each key going down, a pause of
 * hold-time, each key going up in the opposite order. The queue is worked
 * off by a timer of the main loop on the virtual clock, so a second
 * send-key waits behind the first one's pause, and releases do not happen
 * while the VM is stopped (nor, under qtest, before the test moves the
 * clock).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/main-loop.h"
#include "hw/keycodes.h"
#include "hw/ps2-kbd.h"
#include "monitor/hmp-commands.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

#define DEFAULT_HOLD_MS     100
#define QUEUE_MAX           4096    /* events waiting; more is refused */

typedef struct KeyStep {
    int64_t delay_ns;   /* > 0: a pause before the next step; else a key event */
    unsigned qnum;
    bool down;
} KeyStep;

static struct {
    KeyStep steps[QUEUE_MAX];
    unsigned head, count;
    Timer *timer;
} keyq;

static void keyq_run(void *opaque)
{
    (void)opaque;
    while (keyq.count && !(keyq.timer && timer_pending(keyq.timer))) {
        KeyStep st = keyq.steps[keyq.head];
        keyq.head = (keyq.head + 1) % QUEUE_MAX;
        keyq.count--;
        if (st.delay_ns > 0) {
            if (!keyq.timer) {
                keyq.timer = timer_new(CLOCK_VIRTUAL, keyq_run, NULL);
            }
            timer_mod(keyq.timer, clock_get_ns(CLOCK_VIRTUAL) + st.delay_ns);
        } else {
            kbd_input_key(st.qnum, st.down);
        }
    }
}

static void keyq_push(KeyStep st)
{
    keyq.steps[(keyq.head + keyq.count) % QUEUE_MAX] = st;
    keyq.count++;
}

/* Queue a whole press-hold-release sequence, or nothing. */
static bool send_keys(const unsigned *qnums, unsigned n, int64_t hold_ms, Error **errp)
{
    if (keyq.count + 2 * n + 1 > QUEUE_MAX) {
        error_setg(errp, "Too many key events are waiting to be sent");
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        keyq_push((KeyStep){ .qnum = qnums[i], .down = true });
    }
    if (hold_ms > 0) {
        /* Capped at a day: enough for anyone, and no overflow in ns. */
        int64_t ms = hold_ms > 86400000 ? 86400000 : hold_ms;
        keyq_push((KeyStep){ .delay_ns = ms * 1000000 });
    }
    for (unsigned i = n; i-- > 0;) {
        keyq_push((KeyStep){ .qnum = qnums[i], .down = false });
    }
    keyq_run(NULL);
    return true;
}

/* One KeyValue: {"type": "number", "data": INT} or {"type": "qcode", "data": NAME}. */
static bool parse_key(json_object *kv, unsigned idx, unsigned *qnum, Error **errp)
{
    json_object *type, *data;
    if (!json_object_is_type(kv, json_type_object)) {
        error_setg(errp, "Invalid parameter type for 'keys[%u]', expected: object", idx);
        return false;
    }
    if (!json_object_object_get_ex(kv, "type", &type)) {
        error_setg(errp, "Parameter 'keys[%u].type' is missing", idx);
        return false;
    }
    if (!json_object_is_type(type, json_type_string)) {
        error_setg(errp, "Invalid parameter type for 'keys[%u].type', expected: string", idx);
        return false;
    }
    const char *kind = json_object_get_string(type);
    bool is_number = !strcmp(kind, "number");
    if (!is_number && strcmp(kind, "qcode") != 0) {
        error_setg(errp, "Parameter 'type' does not accept value '%s'", kind);
        return false;
    }
    json_object_object_foreach(kv, key, val) {
        (void)val;
        if (strcmp(key, "type") != 0 && strcmp(key, "data") != 0) {
            error_setg(errp, "Parameter 'keys[%u].%s' is unexpected", idx, key);
            return false;
        }
    }
    if (!json_object_object_get_ex(kv, "data", &data)) {
        error_setg(errp, "Parameter 'keys[%u].data' is missing", idx);
        return false;
    }
    if (is_number) {
        if (!json_object_is_type(data, json_type_int)) {
            error_setg(errp, "Invalid parameter type for 'keys[%u].data', expected: integer", idx);
            return false;
        }
        int64_t n = json_object_get_int64(data);
        /* Numbers without a key are dropped (QEMU accepts them too). */
        *qnum = n > 0 && n <= 0xff ? (unsigned)n : 0;
        return true;
    }
    if (!json_object_is_type(data, json_type_string)) {
        error_setg(errp, "Invalid parameter type for 'keys[%u].data', expected: string", idx);
        return false;
    }
    int q = keycode_qnum_of_qcode(json_object_get_string(data));
    if (q < 0) {
        error_setg(errp, "Parameter 'data' does not accept value '%s'",
                   json_object_get_string(data));
        return false;
    }
    *qnum = q;
    return true;
}

void qmp_send_key(KeyValueList *keys, bool has_hold_time, int64_t hold_time, Error **errp)
{
    unsigned n = 0, i = 0;
    for (KeyValueList *l = keys; l; l = l->next) {
        n++;
    }
    unsigned *qnums = xzalloc((n ? n : 1) * sizeof(*qnums));
    for (KeyValueList *l = keys; l; l = l->next, i++) {
        if (!parse_key(l->value, i, &qnums[i], errp)) {
            free(qnums);
            return;
        }
    }
    send_keys(qnums, n, has_hold_time ? hold_time : DEFAULT_HOLD_MS, errp);
    free(qnums);
}

/* sendkey ctrl-alt-f1 [hold_ms]: names or 0x.. numbers joined by '-'. */
void hmp_sendkey(StrBuf *out, int argc, char **argv, Error **errp)
{
    int64_t hold = DEFAULT_HOLD_MS;
    if (argc > 2) {
        char *end;
        errno = 0;
        long long v = strtoll(argv[2], &end, 0);
        if (errno || end == argv[2] || *end) {
            strbuf_printf(out, "invalid char '%c' in expression\n"
                          "Try \"help sendkey\" for more information\n", *end ? *end : ' ');
            return;
        }
        hold = v;
    }
    char *copy = xstrdup(argv[1]);
    size_t max = strlen(copy) / 2 + 1;
    unsigned *qnums = xzalloc(max * sizeof(*qnums));
    unsigned n = 0;
    char *rest = copy;
    for (char *name = strsep(&rest, "-"); name; name = strsep(&rest, "-")) {
        int q = keycode_qnum_of_qcode(name);
        if (q < 0 && !strncmp(name, "0x", 2) && name[2]) {
            char *end;
            unsigned long v = strtoul(name, &end, 16);
            q = *end ? -1 : (v <= 0xff ? (int)v : 0);
        }
        if (q < 0) {
            strbuf_printf(out, "invalid parameter: %s\n", name);
            goto out;
        }
        qnums[n++] = q;
    }
    send_keys(qnums, n, hold, errp);
out:
    free(qnums);
    free(copy);
}
