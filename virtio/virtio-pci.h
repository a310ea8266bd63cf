/*
 * virtio over PCI: the modern (virtio 1.x capability) interface in a memory
 * BAR, the legacy I/O BAR of transitional devices, MSI-X or INTx, and the
 * -device front door for every virtio-*-pci type.
 */
#ifndef VIREO_VIRTIO_VIRTIO_PCI_H
#define VIREO_VIRTIO_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vm-config.h"
#include "hw/pci.h"
#include "util/keyval.h"
#include "virtio/virtio.h"

#define VIRTIO_PCI_VENDOR_ID    0x1af4

/* Properties every virtio-*-pci device takes (keyval tables end with these). */
#define VIRTIO_PCI_COMMON_PARAMS \
    { "id", OPT_STRING, "device id" }, \
    { "bus", OPT_STRING, "PCI bus (pci.0)" }, \
    { "addr", OPT_STRING, "PCI slot[.function]" }, \
    { "disable-legacy", OPT_STRING, "on/off/auto: no legacy I/O BAR", "auto" }, \
    { "disable-modern", OPT_BOOL, "no virtio 1.x interface", "off" }, \
    { "vectors", OPT_NUMBER, "MSI-X vectors" }, \
    { "ioeventfd", OPT_BOOL, "kick through an eventfd", "on" }, \
    { "event_idx", OPT_BOOL, "offer VIRTIO_RING_F_EVENT_IDX", "on" }, \
    { "indirect_desc", OPT_BOOL, "offer VIRTIO_RING_F_INDIRECT_DESC", "on" }

typedef struct VirtioPciOptions {
    bool legacy;            /* the transitional I/O BAR */
    bool modern;            /* the virtio 1.x capabilities */
    int slot;               /* -1: first free */
    unsigned vectors;       /* MSI-X vectors; 0: none */
} VirtioPciOptions;

/* Everything a device type's constructor needs. */
typedef struct VirtioCreateContext {
    const VmConfig *cfg;
    PciHost *pci;
    GuestMemory *mem;
} VirtioCreateContext;

/* Read the common properties; default_vectors applies when vectors= is absent. */
bool virtio_pci_parse_options(const KeyValList *kv, unsigned default_vectors,
                              VirtioPciOptions *o, Error **errp);
/* Apply event_idx=/indirect_desc= to the offered features. */
void virtio_pci_apply_feature_props(const KeyValList *kv, VirtIODevice *vdev);
/* Register the device (qdev path, registry) and put it on the bus. */
bool virtio_pci_plug(const VirtioCreateContext *ctx, const KeyValList *kv,
                     const char *type, VirtIODevice *vdev, uint32_t class_code,
                     const VirtioPciOptions *o, Error **errp);

/* Create every -device / -object / -drive / -netdev vireo knows, in order. */
bool virtio_pci_create_devices(const VmConfig *cfg, PciHost *pci, GuestMemory *mem,
                               Error **errp);

/* One -device or device_add (its option string), any type in the table. */
bool virtio_pci_create_device(const VirtioCreateContext *ctx, const char *opts, Error **errp);

/* Device types (one file each). */
/* At machine teardown, vCPUs stopped, before guest RAM is unmapped: let
 * every device finish its in-flight back-end I/O. */
void virtio_pci_destroy_devices(void);

bool virtio_rng_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp);
bool virtio_blk_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp);
bool virtio_serial_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp);
bool virtio_serial_port_create(const VirtioCreateContext *ctx, const char *opts,
                               bool console, Error **errp);
bool virtio_balloon_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp);
bool virtio_net_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp);
/* announce-self, one round: every virtio-net NIC, or the one with device id only_id. */
void virtio_net_announce(const char *only_id);
bool vhost_user_blk_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp);
bool vhost_user_fs_pci_create(const VirtioCreateContext *ctx, const char *opts, Error **errp);

/* Option string of the -object/-drive/-netdev with this id, or NULL. */
const char *virtio_find_backend_opts(const DeviceOption *list, const char *id);

#endif
