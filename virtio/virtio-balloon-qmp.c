/* QMP balloon / query-balloon and the BALLOON_CHANGE event. */
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "util/osdep.h"
#include "virtio/virtio-balloon.h"

void qmp_balloon(int64_t value, Error **errp)
{
    virtio_balloon_set_target(value, errp);
}

BalloonInfo *qmp_query_balloon(Error **errp)
{
    int64_t actual;
    if (!virtio_balloon_query(&actual, errp)) {
        return NULL;
    }
    BalloonInfo *info = xzalloc(sizeof(*info));
    info->actual = actual;
    return info;
}

static void send_balloon_change(int64_t actual)
{
    qapi_event_send_balloon_change(actual);
}

/* Route the device's size changes to the monitors from start-up on. */
__attribute__((constructor)) static void balloon_events_init(void)
{
    virtio_balloon_change_hook = send_balloon_change;
}
