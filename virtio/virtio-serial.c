/*
 * virtio-serial / virtio-console (virtio 1.2 section 5.3) with multiport:
 * port N's receive and transmit queues, a control queue pair that announces
 * ports (add, console, name, open), and each port bound to a chardev
 * (virtconsole / virtserialport).
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "chardev/chardev.h"
#include "core/qdev.h"
#include "util/osdep.h"
#include "virtio/virtio-pci.h"

#define CONSOLE_F_SIZE          0
#define CONSOLE_F_MULTIPORT     1
#define CONSOLE_F_EMERG_WRITE   2

#define DATA_QUEUE_SIZE     128
#define CONTROL_QUEUE_SIZE  32
#define DEFAULT_MAX_PORTS   31
#define MAX_PORTS           511
#define CONTROL_RX_QUEUE    2
#define CONTROL_TX_QUEUE    3
#define PENDING_MAX         65536   /* host bytes waiting for guest buffers, per port */
#define CONTROL_BACKLOG     256     /* device->driver control messages waiting */

/* Control events */
enum {
    EV_DEVICE_READY = 0, EV_DEVICE_ADD = 1, EV_DEVICE_REMOVE = 2, EV_PORT_READY = 3,
    EV_CONSOLE_PORT = 4, EV_RESIZE = 5, EV_PORT_OPEN = 6, EV_PORT_NAME = 7,
};

/* Configuration: cols, rows, max_nr_ports, emerg_wr */
enum { CFG_COLS = 0, CFG_ROWS = 2, CFG_MAX_PORTS = 4, CFG_EMERG_WR = 8, CFG_SIZE = 12 };

typedef struct SerialPort SerialPort;

typedef struct VirtIOSerial {
    VirtIODevice vdev;
    char *bus_name;             /* "ID.0" for bus= of the ports */
    unsigned max_ports;
    SerialPort **ports;         /* by port number */
    bool driver_ready;
    /* Control messages waiting for control-receive buffers. */
    struct { uint8_t *data; size_t len; } backlog[CONTROL_BACKLOG];
    unsigned backlog_n;
    struct VirtIOSerial *next;
} VirtIOSerial;

struct SerialPort {
    VirtIOSerial *ser;
    unsigned nr;
    bool console;
    char *name;
    Chardev *chr;
    bool guest_open;
    uint8_t *pending;           /* bytes from the chardev not yet in the guest */
    size_t pending_len;
    Device *qdev;               /* its place in the device tree */
};

static VirtIOSerial *serial_devices;

static const OptParam serial_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "max_ports", OPT_NUMBER, "maximum number of ports", "31" },
    VIRTIO_PCI_COMMON_PARAMS,
    { NULL },
};

static const OptParam port_params[] = {
    { "driver", OPT_STRING, "device type" },
    { "id", OPT_STRING, "device id" },
    { "chardev", OPT_STRING, "character device" },
    { "name", OPT_STRING, "port name for the guest" },
    { "nr", OPT_NUMBER, "port number" },
    { "bus", OPT_STRING, "virtio-serial bus (ID.0)" },
    { NULL },
};

static unsigned rx_queue(unsigned nr) { return nr == 0 ? 0 : 2 * nr + 2; }

/* Queue index -> port number, or -1 for the control queues. */
static int queue_port(unsigned q)
{
    if (q < 2) {
        return 0;
    }
    return q < 4 ? -1 : (int)(q - 2) / 2;
}

/* ---- control messages ---- */

static void flush_control(VirtIOSerial *ser)
{
    VirtQueue *vq = &ser->vdev.vq[CONTROL_RX_QUEUE];
    VirtQueueElement elem;
    unsigned sent = 0;
    while (sent < ser->backlog_n && virtqueue_pop(vq, &elem)) {
        size_t n = iov_from_buf(elem.in_sg, elem.in_num, 0, ser->backlog[sent].data,
                                ser->backlog[sent].len);
        virtqueue_push(vq, &elem, n);
        virtqueue_element_free(&elem);
        free(ser->backlog[sent].data);
        sent++;
    }
    memmove(ser->backlog, ser->backlog + sent, (ser->backlog_n - sent) * sizeof(ser->backlog[0]));
    ser->backlog_n -= sent;
    if (sent) {
        virtqueue_notify(vq);
    }
}

static void send_control(VirtIOSerial *ser, uint32_t id, uint16_t event, uint16_t value,
                         const char *extra)
{
    if (ser->backlog_n == CONTROL_BACKLOG) {
        return;     /* the driver does not take its messages: drop, as a full line would */
    }
    size_t extra_len = extra ? strlen(extra) : 0;
    uint8_t *msg = xmalloc(8 + extra_len);
    uint32_t le_id = htole32(id);
    uint16_t le_ev = htole16(event), le_val = htole16(value);
    memcpy(msg, &le_id, 4);
    memcpy(msg + 4, &le_ev, 2);
    memcpy(msg + 6, &le_val, 2);
    if (extra_len) {
        memcpy(msg + 8, extra, extra_len);
    }
    ser->backlog[ser->backlog_n].data = msg;
    ser->backlog[ser->backlog_n].len = 8 + extra_len;
    ser->backlog_n++;
    flush_control(ser);
}

static void announce_ports(VirtIOSerial *ser)
{
    for (unsigned nr = 0; nr < ser->max_ports; nr++) {
        if (ser->ports[nr]) {
            send_control(ser, nr, EV_DEVICE_ADD, 1, NULL);
        }
    }
}

static void port_ready(SerialPort *port)
{
    VirtIOSerial *ser = port->ser;
    if (port->console) {
        send_control(ser, port->nr, EV_CONSOLE_PORT, 1, NULL);
    }
    if (port->name) {
        send_control(ser, port->nr, EV_PORT_NAME, 1, port->name);
    }
    if (port->chr && chardev_is_connected(port->chr)) {
        send_control(ser, port->nr, EV_PORT_OPEN, 1, NULL);
    }
}

static void flush_port_rx(SerialPort *port);

static void handle_control_message(VirtIOSerial *ser, uint32_t id, uint16_t event,
                                   uint16_t value)
{
    if (event == EV_DEVICE_READY) {
        ser->driver_ready = value;
        if (value) {
            announce_ports(ser);
        }
        return;
    }
    SerialPort *port = id < ser->max_ports ? ser->ports[id] : NULL;
    if (!port) {
        return;     /* a message about a port we never announced */
    }
    if (event == EV_PORT_READY && value) {
        port_ready(port);
    } else if (event == EV_PORT_OPEN) {
        port->guest_open = value;
        if (value) {
            flush_port_rx(port);
        }
    }
}

static void control_tx(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOSerial *ser = vdev->opaque;
    VirtQueueElement elem;
    while (virtqueue_pop(vq, &elem)) {
        uint8_t msg[8];
        if (iov_to_buf(elem.out_sg, elem.out_num, 0, msg, sizeof(msg)) == sizeof(msg)) {
            uint32_t id;
            uint16_t ev, val;
            memcpy(&id, msg, 4);
            memcpy(&ev, msg + 4, 2);
            memcpy(&val, msg + 6, 2);
            handle_control_message(ser, le32toh(id), le16toh(ev), le16toh(val));
        }
        virtqueue_push(vq, &elem, 0);
        virtqueue_element_free(&elem);
    }
    virtqueue_notify(vq);
}

static void control_rx(VirtIODevice *vdev, VirtQueue *vq)
{
    flush_control(vdev->opaque);
}

/* ---- data ---- */

static SerialPort *port_of_queue(VirtIOSerial *ser, unsigned q)
{
    int nr = queue_port(q);
    return nr >= 0 && (unsigned)nr < ser->max_ports ? ser->ports[nr] : NULL;
}

static void data_tx(VirtIODevice *vdev, VirtQueue *vq)
{
    SerialPort *port = port_of_queue(vdev->opaque, vq->index);
    VirtQueueElement elem;
    while (virtqueue_pop(vq, &elem)) {
        for (unsigned i = 0; port && port->chr && i < elem.out_num; i++) {
            chardev_write(port->chr, elem.out_sg[i].iov_base, elem.out_sg[i].iov_len);
        }
        virtqueue_push(vq, &elem, 0);
        virtqueue_element_free(&elem);
    }
    virtqueue_notify(vq);
}

/* Move pending host bytes into the guest's receive buffers. */
static void flush_port_rx(SerialPort *port)
{
    VirtQueue *vq = &port->ser->vdev.vq[rx_queue(port->nr)];
    VirtQueueElement elem;
    size_t done = 0;
    bool pushed = false;
    while (done < port->pending_len && virtqueue_pop(vq, &elem)) {
        size_t n = iov_from_buf(elem.in_sg, elem.in_num, 0, port->pending + done,
                                port->pending_len - done);
        virtqueue_push(vq, &elem, n);
        virtqueue_element_free(&elem);
        done += n;
        pushed = true;
    }
    memmove(port->pending, port->pending + done, port->pending_len - done);
    port->pending_len -= done;
    if (pushed) {
        virtqueue_notify(vq);
    }
    if (port->chr && port->pending_len < PENDING_MAX) {
        chardev_accept_input(port->chr);
    }
}

static void data_rx(VirtIODevice *vdev, VirtQueue *vq)
{
    SerialPort *port = port_of_queue(vdev->opaque, vq->index);
    if (port) {
        flush_port_rx(port);
    }
}

static size_t port_can_read(void *opaque)
{
    SerialPort *port = opaque;
    bool ready = virtio_driver_ok(&port->ser->vdev) && (port->guest_open || port->console);
    return ready ? PENDING_MAX - port->pending_len : 0;
}

static void port_read(void *opaque, const uint8_t *buf, size_t len)
{
    SerialPort *port = opaque;
    len = MIN(len, PENDING_MAX - port->pending_len);
    memcpy(port->pending + port->pending_len, buf, len);
    port->pending_len += len;
    flush_port_rx(port);
}

static void port_event(void *opaque, ChardevEvent event)
{
    SerialPort *port = opaque;
    if (port->ser->driver_ready) {
        send_control(port->ser, port->nr, EV_PORT_OPEN, event == CHARDEV_EVENT_OPENED, NULL);
    }
}

static const ChardevHandlers port_handlers = {
    .can_read = port_can_read, .read = port_read, .event = port_event,
};

/* ---- device ---- */

static void serial_reset(VirtIODevice *vdev)
{
    VirtIOSerial *ser = vdev->opaque;
    ser->driver_ready = false;
    for (unsigned i = 0; i < ser->backlog_n; i++) {
        free(ser->backlog[i].data);
    }
    ser->backlog_n = 0;
    for (unsigned nr = 0; nr < ser->max_ports; nr++) {
        if (ser->ports[nr]) {
            ser->ports[nr]->guest_open = false;
            ser->ports[nr]->pending_len = 0;
        }
    }
}

static void serial_config_write(VirtIODevice *vdev, uint32_t offset, uint64_t val, unsigned size)
{
    VirtIOSerial *ser = vdev->opaque;
    if (offset == CFG_EMERG_WR && ser->ports[0] && ser->ports[0]->chr) {
        uint8_t c = val;
        chardev_write(ser->ports[0]->chr, &c, 1);
    }
}

/* Hot-unplug: the ports go first (each with its DEVICE_DELETED), then the bus. */
static void serial_unrealize(VirtIODevice *vdev)
{
    VirtIOSerial *ser = vdev->opaque;
    ser->driver_ready = false;      /* no transport any more: nothing to tell the driver */
    /* Newest port first, as QEMU takes a bus's children down. */
    Device **devs = xzalloc(sizeof(Device *) * ser->max_ports);
    unsigned n = 0;
    for (Device *d = qdev_first(); d; d = d->next) {
        for (unsigned nr = 0; nr < ser->max_ports && n < ser->max_ports; nr++) {
            if (ser->ports[nr] && ser->ports[nr]->qdev == d) {
                devs[n++] = d;
            }
        }
    }
    while (n > 0) {
        qdev_unplug_now(devs[--n]);
    }
    free(devs);
    for (unsigned i = 0; i < ser->backlog_n; i++) {
        free(ser->backlog[i].data);
    }
    for (VirtIOSerial **p = &serial_devices; *p; p = &(*p)->next) {
        if (*p == ser) {
            *p = ser->next;
            break;
        }
    }
    free(ser->bus_name);
    free(ser->ports);
    free(ser->vdev.config);
    free(ser->vdev.vq);
    free(ser);
}

static const VirtIODeviceOps serial_ops = {
    .reset = serial_reset, .config_write = serial_config_write,
    .unrealize = serial_unrealize,
};

bool virtio_serial_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp)
{
    KeyValList kv;
    VirtioPciOptions po;
    if (!keyval_parse(opts, "driver", serial_params, &kv, errp)) {
        return false;
    }
    unsigned max_ports = keyval_get_number(&kv, "max_ports", DEFAULT_MAX_PORTS);
    if (max_ports < 1 || max_ports > MAX_PORTS) {
        error_setg(errp, "maximum ports supported: %u", MAX_PORTS);
        keyval_free(&kv);
        return false;
    }
    VirtIOSerial *ser = xzalloc(sizeof(*ser));
    bool ok = virtio_pci_parse_options(&kv, 2, &po, errp);
    if (ok) {
        unsigned nvqs = 2 * (max_ports + 1);
        virtio_device_init(&ser->vdev, "virtio-serial", VIRTIO_ID_CONSOLE, ctx->mem, CFG_SIZE, nvqs);
        for (unsigned q = 0; q < nvqs; q++) {
            bool control = q == CONTROL_RX_QUEUE || q == CONTROL_TX_QUEUE;
            void (*h)(VirtIODevice *, VirtQueue *) =
                q == CONTROL_RX_QUEUE ? control_rx : q == CONTROL_TX_QUEUE ? control_tx :
                q % 2 ? data_tx : data_rx;
            virtio_queue_setup(&ser->vdev, q, control ? CONTROL_QUEUE_SIZE : DATA_QUEUE_SIZE, h);
        }
        ser->vdev.host_features |= 1ULL << CONSOLE_F_MULTIPORT | 1ULL << CONSOLE_F_EMERG_WRITE;
        uint32_t le_max = htole32(max_ports);
        memcpy(ser->vdev.config + CFG_MAX_PORTS, &le_max, 4);
        ser->vdev.ops = &serial_ops;
        ser->vdev.opaque = ser;
        ser->max_ports = max_ports;
        ser->ports = xzalloc(sizeof(SerialPort *) * max_ports);
        virtio_pci_apply_feature_props(&kv, &ser->vdev);
        ok = virtio_pci_plug(ctx, &kv, "virtio-serial-pci", &ser->vdev, 0x078000, &po, errp);
    }
    if (ok) {
        const char *id = keyval_get(&kv, "id");
        ser->bus_name = id ? xasprintf("%s.0", id) : NULL;
        ser->next = serial_devices;
        serial_devices = ser;   /* newest first: a port without bus= joins the newest */
    } else {
        free(ser->vdev.config);
        free(ser->vdev.vq);
        free(ser->ports);
        free(ser);
    }
    keyval_free(&kv);
    return ok;
}

static VirtIOSerial *find_bus(const char *bus, Error **errp)
{
    for (VirtIOSerial *s = serial_devices; s; s = s->next) {
        if (!bus || (s->bus_name && strcmp(s->bus_name, bus) == 0)) {
            return s;
        }
    }
    error_setg(errp, bus ? "Bus '%s' not found" : "No 'virtio-serial-bus' bus found for "
               "device '%s'", bus ? bus : "virtserialport");
    return NULL;
}

/* Port 0 belongs to the first console; other ports take the lowest free number. */
static bool pick_port_number(VirtIOSerial *ser, const KeyValList *kv, bool console,
                             unsigned *nr, Error **errp)
{
    if (keyval_get(kv, "nr")) {
        *nr = keyval_get_number(kv, "nr", 0);
    } else {
        *nr = console && !ser->ports[0] ? 0 : 1;
        while (*nr < ser->max_ports && ser->ports[*nr]) {
            (*nr)++;
        }
    }
    if (*nr >= ser->max_ports || ser->ports[*nr]) {
        error_setg(errp, "virtio-serial-bus: Out-of-range port id specified, max. allowed: %u",
                   ser->max_ports - 1);
        return false;
    }
    return true;
}

static void port_free(SerialPort *port)
{
    if (port->chr) {
        chardev_detach(port->chr);
    }
    free(port->name);
    free(port->pending);
    free(port);
}

/* device_del of a port: the driver learns at once, as on QEMU's virtio-serial bus. */
static void port_unplug(void *opaque)
{
    SerialPort *port = opaque;
    VirtIOSerial *ser = port->ser;
    ser->ports[port->nr] = NULL;
    if (ser->driver_ready) {
        send_control(ser, port->nr, EV_DEVICE_REMOVE, 1, NULL);
    }
    port_free(port);
}

static const DeviceOps port_qdev_ops = { .unplug = port_unplug };

bool virtio_serial_port_create(const VirtioCreateContext *ctx, const char *opts,
                               bool console, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "driver", port_params, &kv, errp)) {
        return false;
    }
    const char *type = console ? "virtconsole" : "virtserialport";
    VirtIOSerial *ser = find_bus(keyval_get(&kv, "bus"), errp);
    const char *chr_id = keyval_get(&kv, "chardev");
    Chardev *chr = chr_id ? chardev_find(chr_id) : NULL;
    unsigned nr = 0;
    bool ok = ser && pick_port_number(ser, &kv, console, &nr, errp);
    if (ok && chr_id && !chr) {
        error_setg(errp, "Property '%s.chardev' can't find value '%s'", type, chr_id);
        ok = false;
    }
    SerialPort *port = NULL;
    if (ok) {
        port = xzalloc(sizeof(*port));
        port->ser = ser;
        port->nr = nr;
        port->console = console;
        port->name = keyval_get(&kv, "name") ? xstrdup(keyval_get(&kv, "name")) : NULL;
        port->chr = chr;
        port->pending = xmalloc(PENDING_MAX);
        ok = (!chr || chardev_attach(chr, &port_handlers, port, errp)) &&
             (port->qdev = qdev_add(type, keyval_get(&kv, "id"),
                                    ser->bus_name ? ser->bus_name : "virtio-serial-bus",
                                    DEVICE_USER, &port_qdev_ops, port, errp));
    }
    if (ok) {
        ser->ports[nr] = port;
        if (ser->driver_ready) {
            send_control(ser, nr, EV_DEVICE_ADD, 1, NULL);     /* device_add at run time */
        }
    } else if (port) {
        port_free(port);
    }
    keyval_free(&kv);
    return ok;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *virtio_serial_pci_params(void);
const OptParam *virtio_serial_pci_params(void)
{
    return serial_params;
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *virtio_serial_port_params(void);
const OptParam *virtio_serial_port_params(void)
{
    return port_params;
}
