/*
 * The vhost-user back-end library: serves one frontend at a time on a UNIX
 * socket (the next one is accepted after the last one left), maps the
 * frontend's guest memory through the checked guest-memory API, runs the
 * rings with vireo's checked virtqueue, and keeps the dirty log and the
 * inflight area. A device type (vhost-user-blk, ...) fills VuDevOps.
 *
 * Everything a frontend sends is hostile. A bad message gets an error reply
 * where the protocol has one (REPLY_ACK, GET_CONFIG); otherwise the frontend
 * is dropped with a log line and the daemon waits for the next one.
 */
#ifndef VIREO_VHOST_USER_VHOST_USER_H
#define VIREO_VHOST_USER_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/guest-memory.h"
#include "util/error.h"
#include "vhost-user/loop.h"
#include "vhost-user/vhost-user-msg.h"
#include "virtio/virtio.h"

#define VU_MAX_QUEUES       64
#define VU_MAX_MEM_SLOTS    GUEST_MEMORY_MAX_REGIONS

typedef struct VuDev VuDev;

/* One ring as the frontend configured it. */
typedef struct VuVring {
    VuDev *dev;
    unsigned index;
    int kick_fd, call_fd, err_fd;   /* -1: none */
    bool polling;                   /* no kick fd: poll the avail ring */
    bool started;                   /* kick set and rings mapped */
    bool enabled;                   /* SET_VRING_ENABLE (or no protocol features) */
    bool addr_set;
    bool log_used;                  /* VHOST_VRING_F_LOG: log used-ring writes */
    uint64_t log_guest_addr;        /* guest address of the used ring, for the log */
    uint16_t base;                  /* SET_VRING_BASE: next avail entry to take */
    /* Inflight tracking (INFLIGHT_SHMFD), NULL without an area. */
    VhostUserInflightQueue *inflight;
    uint64_t inflight_counter;      /* submission order of the next request */
    uint16_t *resubmit;             /* heads found in flight at start, oldest first */
    unsigned n_resubmit;
} VuVring;

typedef struct VuDevOps {
    /* Virtio features of the device (the library adds its own bits). */
    uint64_t (*features)(VuDev *dev);
    /* Queue q has new avail entries (or is polled). */
    void (*process)(VuDev *dev, VuVring *vr);
    /* Finish every request in flight while guest memory is still mapped. */
    void (*drain)(VuDev *dev);
    /* The driver wrote config bytes [offset, offset+len) (already range-checked). */
    void (*config_write)(VuDev *dev, uint32_t offset, const uint8_t *buf, uint32_t len);
    /* SEND_RARP (net devices offering PROTOCOL_F_RARP): announce mac on the wire. */
    void (*send_rarp)(VuDev *dev, const uint8_t mac[6]);
} VuDevOps;

struct VuDev {
    const char *name;               /* for log lines: the export id */
    const VuDevOps *ops;
    void *opaque;                   /* the device type's state */
    VuLoop *loop;
    unsigned num_queues;
    uint64_t protocol_offered;      /* protocol features this device offers */

    int listen_fd;                  /* -1 once closed */
    char *socket_path;              /* unlinked at the end, NULL for fd sockets */
    int conn_fd;                    /* the frontend, -1 when none */
    bool drop_pending;              /* drop the frontend at the end of this message */

    /* Negotiated state, reset per connection. */
    uint64_t acked_features;
    uint64_t protocol_features;
    uint8_t status;
    GuestMemory mem;
    /* The frontend's virtual address of each region, to translate ring addresses. */
    uint64_t region_uva[VU_MAX_MEM_SLOTS];
    VirtIODevice vdev;              /* the rings run through vireo's virtqueue */
    VuVring vring[VU_MAX_QUEUES];

    /* Dirty log (LOG_SHMFD). */
    uint8_t *log_base;              /* mapping of the log fd, NULL: none */
    uint64_t log_size;              /* bytes of bitmap */
    uint64_t log_map_len;
    uint8_t *log_map;
    int log_call_fd;                /* SET_LOG_FD, -1 when none */
    uint64_t log_pages_marked;      /* bits this back-end turned 0 -> 1 since F_LOG_ALL */

    /* Inflight area (INFLIGHT_SHMFD). */
    uint8_t *inflight_map;
    uint64_t inflight_size;
    uint16_t inflight_queue_size;
    uint16_t inflight_num_queues;
    int backend_fd;                 /* SET_BACKEND_REQ_FD, unused but owned */
};

/*
 * Set dev up to serve on a listening socket (listen_fd) with num_queues
 * rings; config is the device's configuration space (config_len bytes).
 */
bool vu_dev_init(VuDev *dev, const char *name, VuLoop *loop, int listen_fd,
                 unsigned num_queues, uint32_t config_len, const VuDevOps *ops,
                 void *opaque, Error **errp);
void vu_dev_cleanup(VuDev *dev);

/* Listen on a UNIX socket path (replacing a stale socket file). */
int vu_listen_unix(const char *path, Error **errp);

/* For the device type: a request was taken from / returned to the ring. */
void vu_request_begin(VuDev *dev, VuVring *vr, uint16_t head);
void vu_request_done(VuDev *dev, VuVring *vr, const VirtQueueElement *elem,
                     uint32_t written);
/* Interrupt the driver about vr's used entries, if it wants that. */
void vu_vring_notify(VuDev *dev, VuVring *vr);
/* Resubmit the requests the inflight area says were in flight (ring start). */
unsigned vu_inflight_resubmit(VuDev *dev, VuVring *vr,
                              void (*submit)(VuDev *, VuVring *, VirtQueueElement *));
/* Is the ring started and enabled, so the device may take requests? */
bool vu_vring_ready(const VuVring *vr);
VirtQueue *vu_vring_vq(VuDev *dev, VuVring *vr);

/* Drop the frontend (a broken ring, a bad message): log why, wait for the next. */
void vu_dev_drop(VuDev *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Carry out a drop decided while handling an event (call at the event's end). */
void vu_dev_settle(VuDev *dev);

/* ---- internal, between the library's files ---- */
bool vu_mem_set_table(VuDev *dev, const VhostUserMemory *m, unsigned size, int *fds,
                      unsigned nfds, Error **errp);
bool vu_mem_add_region(VuDev *dev, const VhostUserMemRegMsg *m, int fd, Error **errp);
bool vu_mem_rem_region(VuDev *dev, const VhostUserMemRegMsg *m, Error **errp);
bool vu_uva_to_gpa(const VuDev *dev, uint64_t uva, uint64_t *gpa);
void vu_mem_reset(VuDev *dev);
bool vu_log_set_base(VuDev *dev, const VhostUserLog *log, int fd, Error **errp);
void vu_log_reset(VuDev *dev);
bool vu_logging(const VuDev *dev);
void vu_log_write(VuDev *dev, uint64_t gpa, uint64_t len);
bool vu_inflight_get(VuDev *dev, VhostUserInflight *inf, int *fd_out, Error **errp);
bool vu_inflight_set(VuDev *dev, const VhostUserInflight *inf, int fd, Error **errp);
void vu_inflight_reset(VuDev *dev);
void vu_inflight_attach(VuDev *dev, VuVring *vr);
void vu_vring_reset(VuDev *dev, VuVring *vr);
bool vu_vring_start(VuDev *dev, VuVring *vr, Error **errp);
void vu_vring_stop(VuDev *dev, VuVring *vr);

#endif
