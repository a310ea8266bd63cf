/*
 * Bit-name tables for virtio introspection: transport features, device
 * status bits, each device type's features, vhost-user protocol features.
 */
#ifndef VIREO_VIRTIO_VIRTIO_FEATURES_H
#define VIREO_VIRTIO_VIRTIO_FEATURES_H

#include <stdint.h>

typedef struct VirtioFeatureName {
    unsigned bit;           /* bit number; for status bits, the bit's value */
    const char *text;       /* "NAME: description"; NULL ends a table */
} VirtioFeatureName;

const VirtioFeatureName *virtio_transport_feature_names(void);
const VirtioFeatureName *virtio_status_names(void);
const VirtioFeatureName *virtio_vhost_user_protocol_names(void);
/* NULL for a device type without a table. */
const VirtioFeatureName *virtio_device_feature_names(uint16_t device_id);

#endif
