/*
 * HMP 'info virtio*': the virtio introspection commands formatted for
 * people, in the layout QEMU 7.2 prints.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "monitor/hmp-commands.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

static bool parse_u16(const char *s, uint16_t *out, Error **errp)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (!*s || *end || v > UINT16_MAX) {
        error_setg(errp, "'%s' is not a number from 0 to 65535", s);
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

static const char *yes_no(bool b)
{
    return b ? "true" : "false";
}

/* Entries separated by ",\n"; the transport list always ends its line. */
static void print_list(StrBuf *out, strList *list, bool newline_if_empty)
{
    for (strList *l = list; l; l = l->next) {
        strbuf_printf(out, "\t%s%s", l->value, l->next ? ",\n" : "\n");
    }
    if (!list && newline_if_empty) {
        strbuf_puts(out, "\n");
    }
}

static void print_features(StrBuf *out, VirtioDeviceFeatures *f)
{
    print_list(out, f->transports, true);
    if (f->has_dev_features) {
        print_list(out, f->dev_features, false);
    }
    if (f->has_unknown_dev_features) {
        strbuf_printf(out, "  unknown-features(0x%016" PRIx64 ")\n", f->unknown_dev_features);
    }
}

void hmp_info_virtio(StrBuf *out, int argc, char **argv, Error **errp)
{
    VirtioInfoList *list = qmp_x_query_virtio(errp);
    for (VirtioInfoList *l = list; l; l = l->next) {
        strbuf_printf(out, "%s [%s]\n", l->value->path, l->value->name);
    }
    qapi_free_VirtioInfoList(list);
}

static void print_vhost(StrBuf *out, VhostStatus *v)
{
    strbuf_puts(out, "  VHost:\n");
    strbuf_printf(out, "    nvqs:           %" PRIu32 "\n", v->nvqs);
    strbuf_printf(out, "    vq_index:       %" PRId64 "\n", v->vq_index);
    strbuf_printf(out, "    max_queues:     %" PRIu64 "\n", v->max_queues);
    strbuf_printf(out, "    n_mem_sections: %" PRId64 "\n", v->n_mem_sections);
    strbuf_printf(out, "    n_tmp_sections: %" PRId64 "\n", v->n_tmp_sections);
    strbuf_printf(out, "    backend_cap:    %" PRIu64 "\n", v->backend_cap);
    strbuf_printf(out, "    log_enabled:    %s\n", yes_no(v->log_enabled));
    strbuf_printf(out, "    log_size:       %" PRIu64 "\n", v->log_size);
    strbuf_puts(out, "    Features:\n");
    print_features(out, v->features);
    strbuf_puts(out, "    Acked features:\n");
    print_features(out, v->acked_features);
    strbuf_puts(out, "    Backend features:\n");
    print_features(out, v->backend_features);
    strbuf_puts(out, "    Protocol features:\n");
    print_list(out, v->protocol_features->protocols, true);
    if (v->protocol_features->has_unknown_protocols) {
        strbuf_printf(out, "  unknown-protocols(0x%016" PRIx64 ")\n",
                      v->protocol_features->unknown_protocols);
    }
}

void hmp_info_virtio_status(StrBuf *out, int argc, char **argv, Error **errp)
{
    VirtioStatus *s = qmp_x_query_virtio_status(argv[1], errp);
    if (!s) {
        return;
    }
    strbuf_printf(out, "%s:\n", argv[1]);
    strbuf_printf(out, "  device_name:             %s %s\n", s->name,
                  s->has_vhost_dev ? "(vhost)" : "");
    strbuf_printf(out, "  device_id:               %d\n", s->device_id);
    strbuf_printf(out, "  vhost_started:           %s\n", yes_no(s->vhost_started));
    /* QEMU's device model has no bus name here and prints a null string. */
    strbuf_printf(out, "  bus_name:                %s\n", *s->bus_name ? s->bus_name : "(null)");
    strbuf_printf(out, "  broken:                  %s\n", yes_no(s->broken));
    strbuf_printf(out, "  disabled:                %s\n", yes_no(s->disabled));
    strbuf_printf(out, "  disable_legacy_check:    %s\n", yes_no(s->disable_legacy_check));
    strbuf_printf(out, "  started:                 %s\n", yes_no(s->started));
    strbuf_printf(out, "  use_started:             %s\n", yes_no(s->use_started));
    strbuf_printf(out, "  start_on_kick:           %s\n", yes_no(s->start_on_kick));
    strbuf_printf(out, "  use_guest_notifier_mask: %s\n", yes_no(s->use_guest_notifier_mask));
    strbuf_printf(out, "  vm_running:              %s\n", yes_no(s->vm_running));
    strbuf_printf(out, "  num_vqs:                 %" PRId64 "\n", s->num_vqs);
    strbuf_printf(out, "  queue_sel:               %d\n", s->queue_sel);
    strbuf_printf(out, "  isr:                     %d\n", s->isr);
    strbuf_printf(out, "  endianness:              %s\n", s->device_endian);
    strbuf_puts(out, "  status:\n");
    print_list(out, s->status->statuses, true);
    strbuf_puts(out, "  Guest features:\n");
    print_features(out, s->guest_features);
    strbuf_puts(out, "  Host features:\n");
    print_features(out, s->host_features);
    strbuf_puts(out, "  Backend features:\n");
    print_features(out, s->backend_features);
    if (s->has_vhost_dev) {
        print_vhost(out, s->vhost_dev);
    }
    qapi_free_VirtioStatus(s);
}

void hmp_info_virtio_queue_status(StrBuf *out, int argc, char **argv, Error **errp)
{
    uint16_t queue;
    if (!parse_u16(argv[2], &queue, errp)) {
        return;
    }
    VirtQueueStatus *s = qmp_x_query_virtio_queue_status(argv[1], queue, errp);
    if (!s) {
        return;
    }
    strbuf_printf(out, "%s:\n", argv[1]);
    strbuf_printf(out, "  device_name:          %s\n", s->name);
    strbuf_printf(out, "  queue_index:          %d\n", s->queue_index);
    strbuf_printf(out, "  inuse:                %" PRIu32 "\n", s->inuse);
    strbuf_printf(out, "  used_idx:             %d\n", s->used_idx);
    strbuf_printf(out, "  signalled_used:       %d\n", s->signalled_used);
    strbuf_printf(out, "  signalled_used_valid: %s\n", yes_no(s->signalled_used_valid));
    if (s->has_last_avail_idx) {
        strbuf_printf(out, "  last_avail_idx:       %d\n", s->last_avail_idx);
    }
    if (s->has_shadow_avail_idx) {
        strbuf_printf(out, "  shadow_avail_idx:     %d\n", s->shadow_avail_idx);
    }
    strbuf_puts(out, "  VRing:\n");
    strbuf_printf(out, "    num:          %" PRIu32 "\n", s->vring_num);
    strbuf_printf(out, "    num_default:  %" PRIu32 "\n", s->vring_num_default);
    strbuf_printf(out, "    align:        %" PRIu32 "\n", s->vring_align);
    strbuf_printf(out, "    desc:         0x%016" PRIx64 "\n", s->vring_desc);
    strbuf_printf(out, "    avail:        0x%016" PRIx64 "\n", s->vring_avail);
    strbuf_printf(out, "    used:         0x%016" PRIx64 "\n", s->vring_used);
    qapi_free_VirtQueueStatus(s);
}

void hmp_info_virtio_vhost_queue_status(StrBuf *out, int argc, char **argv, Error **errp)
{
    uint16_t queue;
    if (!parse_u16(argv[2], &queue, errp)) {
        return;
    }
    VirtVhostQueueStatus *s = qmp_x_query_virtio_vhost_queue_status(argv[1], queue, errp);
    if (!s) {
        return;
    }
    strbuf_printf(out, "%s:\n", argv[1]);
    strbuf_printf(out, "  device_name:          %s (vhost)\n", s->name);
    strbuf_printf(out, "  kick:                 %" PRId64 "\n", s->kick);
    strbuf_printf(out, "  call:                 %" PRId64 "\n", s->call);
    strbuf_puts(out, "  VRing:\n");
    strbuf_printf(out, "    num:         %" PRId64 "\n", s->num);
    strbuf_printf(out, "    desc:        0x%016" PRIx64 "\n", s->desc);
    strbuf_printf(out, "    desc_phys:   0x%016" PRIx64 "\n", s->desc_phys);
    strbuf_printf(out, "    desc_size:   %" PRIu32 "\n", s->desc_size);
    strbuf_printf(out, "    avail:       0x%016" PRIx64 "\n", s->avail);
    strbuf_printf(out, "    avail_phys:  0x%016" PRIx64 "\n", s->avail_phys);
    strbuf_printf(out, "    avail_size:  %" PRIu32 "\n", s->avail_size);
    strbuf_printf(out, "    used:        0x%016" PRIx64 "\n", s->used);
    strbuf_printf(out, "    used_phys:   0x%016" PRIx64 "\n", s->used_phys);
    strbuf_printf(out, "    used_size:   %" PRIu32 "\n", s->used_size);
    qapi_free_VirtVhostQueueStatus(s);
}

void hmp_info_virtio_queue_element(StrBuf *out, int argc, char **argv, Error **errp)
{
    uint16_t queue, index = 0;
    bool has_index = argc > 3;
    if (!parse_u16(argv[2], &queue, errp) || (has_index && !parse_u16(argv[3], &index, errp))) {
        return;
    }
    VirtioQueueElement *e = qmp_x_query_virtio_queue_element(argv[1], queue, has_index, index,
                                                             errp);
    if (!e) {
        return;
    }
    strbuf_printf(out, "%s:\n", argv[1]);
    strbuf_printf(out, "  device_name: %s\n", e->name);
    strbuf_printf(out, "  index:       %" PRIu32 "\n", e->index);
    strbuf_puts(out, "  desc:\n");
    strbuf_puts(out, "    descs:\n");
    for (VirtioRingDescList *d = e->descs; d; d = d->next) {
        strbuf_printf(out, "        addr 0x%" PRIx64 " len %" PRIu32, d->value->addr, d->value->len);
        if (d->value->flags) {
            strbuf_puts(out, " (");
            for (strList *f = d->value->flags; f; f = f->next) {
                strbuf_printf(out, "%s%s", f->value, f->next ? ", " : "");
            }
            strbuf_puts(out, ")");
        }
        strbuf_puts(out, d->next ? ",\n" : "\n");
    }
    strbuf_puts(out, "  avail:\n");
    strbuf_printf(out, "    flags: %d\n", e->avail->flags);
    strbuf_printf(out, "    idx:   %d\n", e->avail->idx);
    strbuf_printf(out, "    ring:  %d\n", e->avail->ring);
    strbuf_puts(out, "  used:\n");
    strbuf_printf(out, "    flags: %d\n", e->used->flags);
    strbuf_printf(out, "    idx:   %d\n", e->used->idx);
    qapi_free_VirtioQueueElement(e);
}
