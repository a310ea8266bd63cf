/*
 * The vhost-user wire protocol: request ids, header flags, payload layouts
 * and feature bits, shared by vireo's back-end library (vhost-user/) and
 * its frontend (virtio/). Everything here is a fact of the protocol; the
 * structs are packed because they are read straight off a UNIX socket.
 *
 * A message is a 12-byte header followed by `size` bytes of payload; file
 * descriptors travel beside it as SCM_RIGHTS ancillary data (at most
 * VHOST_USER_MAX_FDS). All integers are little-endian (host order on x86).
 */
#ifndef VIREO_VHOST_USER_MSG_H
#define VIREO_VHOST_USER_MSG_H

#include <stdint.h>

/* Requests sent by the frontend to the back-end. */
typedef enum VhostUserRequest {
    VHOST_USER_NONE = 0,
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_SEND_RARP = 19,
    VHOST_USER_NET_SET_MTU = 20,
    VHOST_USER_SET_BACKEND_REQ_FD = 21,     /* formerly SET_SLAVE_REQ_FD */
    VHOST_USER_IOTLB_MSG = 22,
    VHOST_USER_SET_VRING_ENDIAN = 23,
    VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25,
    VHOST_USER_CREATE_CRYPTO_SESSION = 26,
    VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
    VHOST_USER_POSTCOPY_ADVISE = 28,
    VHOST_USER_POSTCOPY_LISTEN = 29,
    VHOST_USER_POSTCOPY_END = 30,
    VHOST_USER_GET_INFLIGHT_FD = 31,
    VHOST_USER_SET_INFLIGHT_FD = 32,
    VHOST_USER_GPU_SET_SOCKET = 33,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_VRING_KICK = 35,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38,
    VHOST_USER_SET_STATUS = 39,
    VHOST_USER_GET_STATUS = 40,
    VHOST_USER_REQUEST_MAX,
} VhostUserRequest;

/* Requests sent by the back-end on the channel from SET_BACKEND_REQ_FD. */
typedef enum VhostUserBackendRequest {
    VHOST_USER_BACKEND_NONE = 0,
    VHOST_USER_BACKEND_IOTLB_MSG = 1,
    VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
    VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
    VHOST_USER_BACKEND_VRING_CALL = 4,
    VHOST_USER_BACKEND_VRING_ERR = 5,
    VHOST_USER_BACKEND_REQUEST_MAX,
} VhostUserBackendRequest;

/* Header flags. */
#define VHOST_USER_VERSION_MASK     0x3u        /* bits 0-1: protocol version */
#define VHOST_USER_VERSION          0x1u
#define VHOST_USER_REPLY_MASK       (1u << 2)   /* this message is a reply */
#define VHOST_USER_NEED_REPLY_MASK  (1u << 3)   /* REPLY_ACK: ack wanted */

/* Virtio feature bits that belong to vhost(-user) rather than a device. */
#define VHOST_F_LOG_ALL                     26  /* log every guest write */
#define VHOST_USER_F_PROTOCOL_FEATURES      30  /* GET/SET_PROTOCOL_FEATURES exist */

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
typedef enum VhostUserProtocolFeature {
    VHOST_USER_PROTOCOL_F_MQ = 0,
    VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1,
    VHOST_USER_PROTOCOL_F_RARP = 2,
    VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,
    VHOST_USER_PROTOCOL_F_NET_MTU = 4,
    VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5,
    VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6,
    VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7,
    VHOST_USER_PROTOCOL_F_PAGEFAULT = 8,
    VHOST_USER_PROTOCOL_F_CONFIG = 9,
    VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10,
    VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11,
    VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12,
    VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
    VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
    VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
    VHOST_USER_PROTOCOL_F_STATUS = 16,
    VHOST_USER_PROTOCOL_F_MAX,
} VhostUserProtocolFeature;

/* Limits. */
#define VHOST_USER_MAX_FDS          8    /* descriptors in one message */
#define VHOST_USER_MAX_MEM_REGIONS  8    /* regions in one SET_MEM_TABLE */
#define VHOST_USER_MAX_CONFIG_SIZE  256  /* bytes of device config space */

/* SET_VRING_KICK/CALL/ERR u64: ring index, and "no fd sent" (poll instead). */
#define VHOST_USER_VRING_IDX_MASK   0xffull
#define VHOST_USER_VRING_NOFD_MASK  (1ull << 8)

/* VhostUserVringAddr.flags */
#define VHOST_VRING_F_LOG           (1u << 0)   /* log used-ring writes */

/* SET_CONFIG flags */
#define VHOST_SET_CONFIG_TYPE_FRONTEND  0
#define VHOST_SET_CONFIG_TYPE_MIGRATION 1

/* Dirty log granularity: one bit per page of this size. */
#define VHOST_LOG_PAGE              4096ull

typedef struct __attribute__((packed)) VhostUserHeader {
    uint32_t request;       /* VhostUserRequest or VhostUserBackendRequest */
    uint32_t flags;         /* version, reply, need-reply */
    uint32_t size;          /* payload bytes that follow */
} VhostUserHeader;

/* SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE. */
typedef struct __attribute__((packed)) VhostUserVringState {
    uint32_t index;         /* ring */
    uint32_t num;           /* size, base index or enable flag */
} VhostUserVringState;

/* SET_VRING_ADDR: user (frontend virtual) addresses of the ring parts. */
typedef struct __attribute__((packed)) VhostUserVringAddr {
    uint32_t index;         /* ring */
    uint32_t flags;         /* VHOST_VRING_F_LOG */
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr; /* guest-physical address of the used ring */
} VhostUserVringAddr;

/* One guest memory region; its fd travels beside the message. */
typedef struct __attribute__((packed)) VhostUserMemoryRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr; /* the frontend's virtual address of the region */
    uint64_t mmap_offset;    /* where the region starts in the fd */
} VhostUserMemoryRegion;

/* SET_MEM_TABLE: one fd per region, in order. */
typedef struct __attribute__((packed)) VhostUserMemory {
    uint32_t nregions;
    uint32_t padding;
    VhostUserMemoryRegion regions[VHOST_USER_MAX_MEM_REGIONS];
} VhostUserMemory;

/* ADD_MEM_REG / REM_MEM_REG. */
typedef struct __attribute__((packed)) VhostUserMemRegMsg {
    uint64_t padding;
    VhostUserMemoryRegion region;
} VhostUserMemRegMsg;

/* SET_LOG_BASE (with the log fd), GET/SET of a shared log area. */
typedef struct __attribute__((packed)) VhostUserLog {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} VhostUserLog;

/* IOTLB_MSG */
typedef struct __attribute__((packed)) VhostUserIotlb {
    uint64_t iova;
    uint64_t size;
    uint64_t uaddr;
    uint8_t perm;
    uint8_t type;
} VhostUserIotlb;

/* GET_CONFIG / SET_CONFIG: header, then `size` bytes of config space. */
typedef struct __attribute__((packed)) VhostUserConfig {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;         /* VHOST_SET_CONFIG_TYPE_* */
    uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
} VhostUserConfig;
#define VHOST_USER_CONFIG_HDR_SIZE  12u

/* GET_INFLIGHT_FD (request: num_queues, queue_size; reply: size, offset + fd)
 * and SET_INFLIGHT_FD (all four + fd). */
typedef struct __attribute__((packed)) VhostUserInflight {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
    uint32_t padding;       /* QEMU sends the naturally aligned size: 24 bytes */
} VhostUserInflight;
#define VHOST_USER_INFLIGHT_MIN_SIZE 20u   /* without the padding */

/* VRING_HOST_NOTIFIER_MSG on the back-end channel. */
typedef struct __attribute__((packed)) VhostUserVringArea {
    uint64_t u64;           /* ring index, NOFD flag */
    uint64_t size;
    uint64_t offset;
} VhostUserVringArea;

/*
 * Inflight area layout for split rings (the back-end defines it; the
 * frontend only keeps the fd across back-end restarts). One region per
 * queue, each followed by queue_size descriptor states. It lives in shared
 * memory, not on the socket: fields sit at their natural alignment (the
 * asserts below pin the offsets), so they can be read and stored atomically.
 */
typedef struct VhostUserInflightDesc {
    uint8_t inflight;       /* 1 while the request is being processed */
    uint8_t padding[5];
    uint16_t next;          /* link in the batch being completed */
    uint64_t counter;       /* submission order, to resubmit in order */
} VhostUserInflightDesc;

typedef struct VhostUserInflightQueue {
    uint64_t features;      /* reserved */
    uint16_t version;       /* layout version, 1 */
    uint16_t desc_num;      /* queue size */
    uint16_t last_batch_head; /* head of the batch being completed */
    uint16_t used_idx;      /* used index as the back-end last stored it */
    VhostUserInflightDesc desc[];
} VhostUserInflightQueue;

/* Every payload, for buffers sized to the largest. */
typedef union VhostUserPayload {
    uint64_t u64;
    VhostUserVringState state;
    VhostUserVringAddr addr;
    VhostUserMemory memory;
    VhostUserMemRegMsg memreg;
    VhostUserLog log;
    VhostUserIotlb iotlb;
    VhostUserConfig config;
    VhostUserInflight inflight;
    VhostUserVringArea area;
} VhostUserPayload;

typedef struct __attribute__((packed)) VhostUserMsg {
    VhostUserHeader hdr;
    VhostUserPayload payload;
} VhostUserMsg;

_Static_assert(sizeof(VhostUserHeader) == 12, "header is 12 bytes");
_Static_assert(sizeof(VhostUserVringAddr) == 40, "vring address is 40 bytes");
_Static_assert(sizeof(VhostUserMemoryRegion) == 32, "region is 32 bytes");
_Static_assert(sizeof(VhostUserMemRegMsg) == 40, "single region is 40 bytes");
_Static_assert(sizeof(VhostUserInflight) == 24, "inflight is 24 bytes");
_Static_assert(sizeof(VhostUserInflightDesc) == 16, "inflight desc is 16 bytes");
_Static_assert(sizeof(VhostUserInflightQueue) == 16, "inflight queue header");
_Static_assert(offsetof(VhostUserInflightDesc, next) == 6 &&
               offsetof(VhostUserInflightDesc, counter) == 8, "inflight desc layout");
_Static_assert(offsetof(VhostUserInflightQueue, used_idx) == 14 &&
               offsetof(VhostUserInflightQueue, desc) == 16, "inflight queue layout");

#endif
