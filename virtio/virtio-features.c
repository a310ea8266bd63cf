/*
 * Names of feature and status bits, as the virtio introspection commands
 * print them ("NAME: description"), for the transport, every device type
 * and vhost-user protocol features.
 *
 * The strings and the set of bits each device type decodes are those that
 * QEMU 7.2 reports, so that vireo's output matches it member by member;
 * bit numbers are the virtio specification's. Each table is listed in the
 * order the bits are reported. Bits a table does not name are reported as
 * unknown.
 */
#include "virtio/virtio-features.h"

#include <stddef.h>

#include "util/osdep.h"
#include "virtio/virtio.h"

static const VirtioFeatureName transport_features[] = {
    { 29, "VIRTIO_RING_F_EVENT_IDX: Used & avail. event fields enabled" },
    { 28, "VIRTIO_RING_F_INDIRECT_DESC: Indirect descriptors supported" },
    { 37, "VIRTIO_F_SR_IOV: Device supports single root I/O virtualization" },
    { 36, "VIRTIO_F_ORDER_PLATFORM: Memory accesses ordered by platform" },
    { 35, "VIRTIO_F_IN_ORDER: Device uses buffers in same order as made available by driver" },
    { 34, "VIRTIO_F_RING_PACKED: Device supports packed VQ layout" },
    { 33, "VIRTIO_F_IOMMU_PLATFORM: Device can be used on IOMMU platform" },
    { 32, "VIRTIO_F_VERSION_1: Device compliant for v1 spec (legacy)" },
    { 27, "VIRTIO_F_ANY_LAYOUT: Device accepts arbitrary desc. layouts" },
    { 24, "VIRTIO_F_NOTIFY_ON_EMPTY: Notify when device runs out of avail. descs. on VQ" },
    { 0, NULL },
};

static const VirtioFeatureName status_bits[] = {
    { 1, "VIRTIO_CONFIG_S_ACKNOWLEDGE: Valid virtio device found" },
    { 128, "VIRTIO_CONFIG_S_FAILED: Error in guest, device failed" },
    { 64, "VIRTIO_CONFIG_S_NEEDS_RESET: Irrecoverable error, device needs reset" },
    { 2, "VIRTIO_CONFIG_S_DRIVER: Guest OS compatible with device" },
    { 8, "VIRTIO_CONFIG_S_FEATURES_OK: Feature negotiation complete" },
    { 4, "VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready" },
    { 0, NULL },
};

static const VirtioFeatureName vhost_user_protocol_features[] = {
    { 15, "VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS: Configuration for memory slots supported" },
    { 14, "VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS: In-band messaging supported" },
    { 13, "VHOST_USER_PROTOCOL_F_RESET_DEVICE: Disabling all rings and resetting internal device state supported" },
    { 12, "VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD: Shared inflight I/O buffers supported" },
    { 11, "VHOST_USER_PROTOCOL_F_HOST_NOTIFIER: Host notifiers for specified VQs supported" },
    { 10, "VHOST_USER_PROTOCOL_F_SLAVE_SEND_FD: Slave fd communication channel supported" },
    { 9, "VHOST_USER_PROTOCOL_F_CONFIG: Vhost-user messaging for virtio device configuration space supported" },
    { 8, "VHOST_USER_PROTOCOL_F_PAGEFAULT: Request servicing on userfaultfd for accessed pages supported" },
    { 7, "VHOST_USER_PROTOCOL_F_CRYPTO_SESSION: Session creation for crypto operations supported" },
    { 6, "VHOST_USER_PROTOCOL_F_CROSS_ENDIAN: Endianness of VQs for legacy devices supported" },
    { 5, "VHOST_USER_PROTOCOL_F_SLAVE_REQ: Socket fd for back-end initiated requests supported" },
    { 4, "VHOST_USER_PROTOCOL_F_NET_MTU: Expose host MTU to guest supported" },
    { 3, "VHOST_USER_PROTOCOL_F_REPLY_ACK: Requested operation status ack. supported" },
    { 2, "VHOST_USER_PROTOCOL_F_RARP: Vhost-user back-end RARP broadcasting supported" },
    { 1, "VHOST_USER_PROTOCOL_F_LOG_SHMFD: Shared log memory fd supported" },
    { 0, "VHOST_USER_PROTOCOL_F_MQ: Multiqueue protocol supported" },
    { 0, NULL },
};

static const VirtioFeatureName net_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 27, "VHOST_NET_F_VIRTIO_NET_HDR: Virtio-net headers for RX and TX packets supported" },
    { 6, "VIRTIO_NET_F_GSO: Handling GSO-type packets supported" },
    { 63, "VIRTIO_NET_F_SPEED_DUPLEX: Device set linkspeed and duplex" },
    { 62, "VIRTIO_NET_F_STANDBY: Device acting as standby for primary device with same MAC addr. supported" },
    { 61, "VIRTIO_NET_F_RSC_EXT: Extended coalescing info supported" },
    { 60, "VIRTIO_NET_F_RSS: RSS RX steering supported" },
    { 57, "VIRTIO_NET_F_HASH_REPORT: Hash reporting supported" },
    { 23, "VIRTIO_NET_F_CTRL_MAC_ADDR: MAC address set through control channel" },
    { 22, "VIRTIO_NET_F_MQ: Multiqueue with automatic receive steering supported" },
    { 21, "VIRTIO_NET_F_GUEST_ANNOUNCE: Driver sending gratuitous packets supported" },
    { 20, "VIRTIO_NET_F_CTRL_RX_EXTRA: Extra RX mode control supported" },
    { 19, "VIRTIO_NET_F_CTRL_VLAN: Control channel VLAN filtering supported" },
    { 18, "VIRTIO_NET_F_CTRL_RX: Control channel RX mode supported" },
    { 17, "VIRTIO_NET_F_CTRL_VQ: Control channel available" },
    { 16, "VIRTIO_NET_F_STATUS: Configuration status field available" },
    { 15, "VIRTIO_NET_F_MRG_RXBUF: Driver can merge receive buffers" },
    { 14, "VIRTIO_NET_F_HOST_UFO: Device can receive UFO" },
    { 13, "VIRTIO_NET_F_HOST_ECN: Device can receive TSO with ECN" },
    { 12, "VIRTIO_NET_F_HOST_TSO6: Device can receive TSOv6" },
    { 11, "VIRTIO_NET_F_HOST_TSO4: Device can receive TSOv4" },
    { 10, "VIRTIO_NET_F_GUEST_UFO: Driver can receive UFO" },
    { 9, "VIRTIO_NET_F_GUEST_ECN: Driver can receive TSO with ECN" },
    { 8, "VIRTIO_NET_F_GUEST_TSO6: Driver can receive TSOv6" },
    { 7, "VIRTIO_NET_F_GUEST_TSO4: Driver can receive TSOv4" },
    { 5, "VIRTIO_NET_F_MAC: Device has given MAC address" },
    { 3, "VIRTIO_NET_F_MTU: Device max MTU reporting supported" },
    { 2, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: Control channel offloading reconfig. supported" },
    { 1, "VIRTIO_NET_F_GUEST_CSUM: Driver handling packets with partial checksum supported" },
    { 0, "VIRTIO_NET_F_CSUM: Device handling packets with partial checksum supported" },
    { 0, NULL },
};

static const VirtioFeatureName blk_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 11, "VIRTIO_BLK_F_CONFIG_WCE: Cache writeback and writethrough modes supported" },
    { 9, "VIRTIO_BLK_F_FLUSH: Flush command supported" },
    { 7, "VIRTIO_BLK_F_SCSI: SCSI packet commands supported" },
    { 0, "VIRTIO_BLK_F_BARRIER: Request barriers supported" },
    { 14, "VIRTIO_BLK_F_WRITE_ZEROES: Write zeroes command supported" },
    { 13, "VIRTIO_BLK_F_DISCARD: Discard command supported" },
    { 12, "VIRTIO_BLK_F_MQ: Multiqueue supported" },
    { 10, "VIRTIO_BLK_F_TOPOLOGY: Topology information available" },
    { 6, "VIRTIO_BLK_F_BLK_SIZE: Block size of disk available" },
    { 5, "VIRTIO_BLK_F_RO: Device is read-only" },
    { 4, "VIRTIO_BLK_F_GEOMETRY: Legacy geometry available" },
    { 2, "VIRTIO_BLK_F_SEG_MAX: Max segments in a request is seg_max" },
    { 1, "VIRTIO_BLK_F_SIZE_MAX: Max segment size is size_max" },
    { 0, NULL },
};

static const VirtioFeatureName serial_features[] = {
    { 2, "VIRTIO_CONSOLE_F_EMERG_WRITE: Emergency write supported" },
    { 1, "VIRTIO_CONSOLE_F_MULTIPORT: Multiple ports for device supported" },
    { 0, "VIRTIO_CONSOLE_F_SIZE: Host providing console size" },
    { 0, NULL },
};

static const VirtioFeatureName gpu_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 4, "VIRTIO_GPU_F_CONTEXT_INIT: Context types and synchronization timelines supported" },
    { 3, "VIRTIO_GPU_F_RESOURCE_BLOB: Size-based blob resources supported" },
    { 2, "VIRTIO_GPU_F_RESOURCE_UUID: Resource UUID assigning supported" },
    { 1, "VIRTIO_GPU_F_EDID: EDID metadata supported" },
    { 0, "VIRTIO_GPU_F_VIRGL: Virgl 3D mode supported" },
    { 0, NULL },
};

static const VirtioFeatureName input_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 0, NULL },
};

static const VirtioFeatureName scsi_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 3, "VIRTIO_SCSI_F_T10_PI: T10 info included in request header" },
    { 2, "VIRTIO_SCSI_F_CHANGE: Reporting and handling LUN changes supported" },
    { 1, "VIRTIO_SCSI_F_HOTPLUG: Reporting and handling hot-plug events supported" },
    { 0, "VIRTIO_SCSI_F_INOUT: Requests including read and writable data buffers supported" },
    { 0, NULL },
};

static const VirtioFeatureName vsock_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 1, "VIRTIO_VSOCK_F_SEQPACKET: SOCK_SEQPACKET supported" },
    { 0, NULL },
};

static const VirtioFeatureName crypto_features[] = {
    { 0, NULL },
};

static const VirtioFeatureName balloon_features[] = {
    { 5, "VIRTIO_BALLOON_F_REPORTING: Page reporting VQ enabled" },
    { 4, "VIRTIO_BALLOON_F_PAGE_POISON: Guest page poisoning enabled" },
    { 3, "VIRTIO_BALLOON_F_FREE_PAGE_HINT: VQ reporting free pages enabled" },
    { 2, "VIRTIO_BALLOON_F_DEFLATE_ON_OOM: Deflate balloon when guest OOM" },
    { 1, "VIRTIO_BALLOON_F_STATS_VQ: Guest memory stats VQ available" },
    { 0, "VIRTIO_BALLOON_F_MUST_TELL_HOST: Tell host before reclaiming pages" },
    { 0, NULL },
};

static const VirtioFeatureName iommu_features[] = {
    { 6, "VIRTIO_IOMMU_F_BYPASS_CONFIG: Bypass field of IOMMU config available" },
    { 5, "VIRTIO_IOMMU_F_MMIO: VIRTIO_IOMMU_MAP_F_MMIO flag available" },
    { 4, "VIRTIO_IOMMU_F_PROBE: Probe requests available" },
    { 3, "VIRTIO_IOMMU_F_BYPASS: Endpoints not attached to domains are in bypass mode" },
    { 2, "VIRTIO_IOMMU_F_MAP_UNMAP: Map and unmap requests available" },
    { 1, "VIRTIO_IOMMU_F_DOMAIN_RANGE: Number of supported domains available" },
    { 0, "VIRTIO_IOMMU_F_INPUT_RANGE: Range of available virtual addrs. available" },
    { 0, NULL },
};

static const VirtioFeatureName mem_features[] = {
    { 1, "VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE: Unplugged memory cannot be accessed" },
    { 0, NULL },
};

static const VirtioFeatureName fs_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 0, NULL },
};

static const VirtioFeatureName i2c_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 0, "VIRTIO_I2C_F_ZERO_LEGNTH_REQUEST: Zero length requests supported" },
    { 0, NULL },
};

static const VirtioFeatureName rng_features[] = {
    { 30, "VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported" },
    { 26, "VHOST_F_LOG_ALL: Logging write descriptors supported" },
    { 0, NULL },
};

static const VirtioFeatureName p9_features[] = {
    { 0, NULL },
};

static const VirtioFeatureName pmem_features[] = {
    { 0, NULL },
};

static const struct {
    uint16_t device_id;
    const VirtioFeatureName *names;
} device_tables[] = {
    { VIRTIO_ID_NET, net_features },
    { VIRTIO_ID_BLOCK, blk_features },
    { VIRTIO_ID_CONSOLE, serial_features },
    { VIRTIO_ID_GPU, gpu_features },
    { VIRTIO_ID_INPUT, input_features },
    { VIRTIO_ID_SCSI, scsi_features },
    { VIRTIO_ID_VSOCK, vsock_features },
    { VIRTIO_ID_CRYPTO, crypto_features },
    { VIRTIO_ID_BALLOON, balloon_features },
    { VIRTIO_ID_IOMMU, iommu_features },
    { VIRTIO_ID_MEM, mem_features },
    { VIRTIO_ID_FS, fs_features },
    { VIRTIO_ID_I2C_ADAPTER, i2c_features },
    { VIRTIO_ID_RNG, rng_features },
    { VIRTIO_ID_9P, p9_features },
    { VIRTIO_ID_PMEM, pmem_features },
};

const VirtioFeatureName *virtio_transport_feature_names(void)
{
    return transport_features;
}

const VirtioFeatureName *virtio_status_names(void)
{
    return status_bits;
}

const VirtioFeatureName *virtio_vhost_user_protocol_names(void)
{
    return vhost_user_protocol_features;
}

const VirtioFeatureName *virtio_device_feature_names(uint16_t device_id)
{
    for (size_t i = 0; i < ARRAY_SIZE(device_tables); i++) {
        if (device_tables[i].device_id == device_id) {
            return device_tables[i].names;
        }
    }
    return NULL;
}
