/*
 * Virtio introspection encoders (qapi/virtio.json), one copy for every
 * program that answers x-query-virtio*: vireo's monitor (virtio-qmp.c) and
 * vireo-storage-daemon's view of its exports (qmp-virtio.c).
 *
 * Each program generates the QAPI types from its own schema, so this code
 * is compiled into each of them against that program's generated types:
 * the including source must include its generated types header before this
 * one, and virtio-qmp-encode.c is built with VIRTIO_QMP_TYPES_H naming it.
 */
#ifndef VIRTIO_QMP_ENCODE_H
#define VIRTIO_QMP_ENCODE_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/guest-memory.h"
#include "util/error.h"
#include "virtio/virtio.h"

/* Feature bits as transport and device-type names, the rest as unknown. */
VirtioDeviceFeatures *virtio_qmp_features(uint16_t device_id, uint64_t bits);
/* Device status bits by name. */
VirtioDeviceStatus *virtio_qmp_status_bits(uint8_t status);
/* vhost-user protocol feature bits by name. */
VhostDeviceProtocols *virtio_qmp_protocols(uint64_t bits);

/* Queue `queue` of the first nvqs of vq[], if the driver has sized it. */
VirtQueue *virtio_qmp_queue(VirtQueue *vq, unsigned nvqs, uint16_t queue, Error **errp);

/* x-query-virtio-queue-status from the device's own ring state, with
 * last_avail_idx and shadow_avail_idx (a caller whose progress lives
 * elsewhere, as with vhost, overrides them). */
VirtQueueStatus *virtio_qmp_queue_status(const char *name, uint16_t queue, const VirtQueue *vq);

/* x-query-virtio-queue-element: the avail entry at index (default: the
 * next one the device takes), its descriptor chain read through the
 * checked guest memory, and the used ring's header. */
VirtioQueueElement *virtio_qmp_queue_element(const char *name, const GuestMemory *mem,
                                             const VirtQueue *vq, uint16_t queue,
                                             bool has_index, uint16_t index, Error **errp);

#endif
