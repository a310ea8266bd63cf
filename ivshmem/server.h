/*
 * The ivshmem server core: an epoll loop that admits clients, hands out ids,
 * eventfds and the shared memory descriptor, and keeps every client's view of
 * its peers up to date without ever blocking on one of them.
 */
#ifndef VIREO_IVSHMEM_SERVER_H
#define VIREO_IVSHMEM_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "ivshmem/proto.h"
#include "util/error.h"

typedef struct IvshServerConfig {
    unsigned vectors;       /* eventfds each new client gets (-n) */
    unsigned max_peers;     /* connections beyond this are refused */
    unsigned max_queue;     /* messages a client may have pending beyond its set-up */
    bool verbose;           /* log joins and leaves, not only refusals and drops */
} IvshServerConfig;

typedef struct IvshMsg IvshMsg;
typedef struct IvshPeer IvshPeer;

/*
 * A client's interrupt eventfds. Queued messages borrow a descriptor from
 * here rather than duplicate it, so a backlog costs memory, not descriptors;
 * the reference they hold keeps the eventfds open after the client leaves
 * until the last message carrying one is sent or dropped.
 */
typedef struct IvshVectors {
    unsigned refs;          /* the owning peer plus each queued message */
    IvshMsg *queued;        /* the queued messages that carry one of fd[] */
    unsigned n;
    int fd[];
} IvshVectors;

/* One queued message: the bytes not yet sent and the descriptor that must
 * travel with them. */
struct IvshMsg {
    IvshMsg *next, *prev;   /* the recipient's FIFO */
    IvshMsg *owner_next, *owner_prev;   /* fd_owner->queued */
    IvshPeer *to;           /* the recipient */
    int64_t value;
    int fd;                 /* -1, or borrowed until the first byte goes out */
    IvshVectors *fd_owner;  /* the referenced owner of fd, NULL for the shm fd */
    uint8_t off;            /* bytes of the 8 already sent */
    int32_t leave_of;       /* id this message announces the leave of, or -1 */
};

typedef struct IvshServer IvshServer;

/* What the epoll loop dispatches on: the listener, the signalfd, each peer. */
typedef struct IvshWatch {
    void (*ready)(IvshServer *s, struct IvshWatch *w, uint32_t events);
} IvshWatch;

struct IvshPeer {
    IvshWatch watch;        /* first: the epoll cookie */
    int sock;               /* the client's connection, non-blocking */
    uint16_t id;            /* its id, rung through the Doorbell's high half */
    IvshVectors *vec;       /* its own eventfds, peers write to ring it; the
                             * count is per client (see README) */
    IvshMsg *out_head;      /* messages waiting for socket space, FIFO */
    IvshMsg *out_tail;
    unsigned out_len;       /* messages in the queue */
    unsigned out_limit;     /* drop the client when out_len would pass this */
    bool out_armed;         /* EPOLLOUT is registered */
    bool announced;         /* the others were told of it: they need its leave */
    bool dead;              /* marked for removal at the end of this loop turn */
    bool left_by_itself;    /* closed by the client, not dropped by us */
    char why[96];           /* why it is being removed, for the log */
    pid_t pid;              /* SO_PEERCRED at connect time */
    uid_t uid;
    struct timespec joined; /* CLOCK_REALTIME at connect time */
    unsigned cancelled;     /* scratch: joins taken back from its queue */
    IvshPeer *prev, *next;  /* all peers, in joining order */
    IvshPeer *next_dead;    /* the removal list */
};

/* Told of every join and leave (the QMP monitor's events); either may be NULL. */
typedef struct IvshServerHooks {
    void (*peer_joined)(IvshServer *s, const IvshPeer *p);
    /* p->left_by_itself false: dropped, p->why says why */
    void (*peer_left)(IvshServer *s, const IvshPeer *p);
} IvshServerHooks;

struct IvshServer {
    IvshServerConfig cfg;
    const IvshServerHooks *hooks;   /* set after ivsh_server_init() */
    int epfd;
    int listen_fd;
    int signal_fd;
    int shm_fd;             /* sent with -1 to every client */
    int spare_fd;           /* released to accept-and-close when out of fds */
    IvshWatch listen_watch;
    IvshWatch signal_watch;
    IvshPeer *by_id[IVSHMEM_ID_COUNT];
    /* Leave notices for a departed id not yet delivered: the id is reused
     * only once this is zero, so nobody can confuse old and new holder. */
    uint32_t leaves_pending[IVSHMEM_ID_COUNT];
    unsigned next_id;       /* round-robin cursor of the id allocator */
    unsigned npeers;        /* live and dying peers holding an id */
    IvshPeer *head, *tail;
    IvshPeer *dead;
    bool quit;
};

/*
 * Take ownership of @listen_fd (bound, listening) and @shm_fd; block
 * SIGINT/SIGTERM/SIGHUP into a signalfd. Returns false with errp set.
 */
bool ivsh_server_init(IvshServer *s, const IvshServerConfig *cfg,
                      int listen_fd, int shm_fd, Error **errp);

/* Add @fd to the loop: @w->ready runs whenever it is readable. */
bool ivsh_server_watch(IvshServer *s, int fd, IvshWatch *w, Error **errp);

/* Serve until a termination signal (or s->quit is set). Returns false with errp on a loop error. */
bool ivsh_server_run(IvshServer *s, Error **errp);

/* Close every client and descriptor the server holds. */
void ivsh_server_cleanup(IvshServer *s);

void ivsh_log(const IvshServer *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ivsh_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* From now on log to syslog (a daemon's stderr is /dev/null). */
void ivsh_log_to_syslog(void);

#endif
