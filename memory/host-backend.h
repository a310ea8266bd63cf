/*
 * Host memory backends: named blocks of host memory created with
 * -object memory-backend-{ram,memfd,file},id=ID,size=SIZE[,share=on]
 * [,mem-path=PATH], and found by id by whatever maps them into a guest
 * (ivshmem-plain's BAR today; -machine memory-backend= and
 * -numa node,memdev= or vhost-user later).
 *
 * A backend is mapped once, at creation, for the life of vireo. With
 * share=on the mapping is MAP_SHARED: other processes that map the same
 * memfd or file see every write, and the descriptor can be passed to them.
 * Without it the mapping is private (copy-on-write for a file).
 */
#ifndef VIREO_MEMORY_HOST_BACKEND_H
#define VIREO_MEMORY_HOST_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct HostMemBackend {
    char *id;               /* -object ...,id= */
    const char *type;       /* "memory-backend-memfd", ... (static string) */
    uint64_t size;          /* bytes */
    bool share;             /* MAP_SHARED: visible to other processes */
    char *mem_path;         /* memory-backend-file only */
    int fd;                 /* memfd or file; -1 for private anonymous RAM */
    void *hva;              /* host mapping of all size bytes */
    bool in_use;            /* claimed by a device (one user at a time) */
    struct HostMemBackend *next;
} HostMemBackend;

/* Is this -object type a memory backend? */
bool host_backend_type_known(const char *type);
/* Create from a whole -object option string ("memory-backend-memfd,id=m,size=1M"). */
HostMemBackend *host_backend_create(const char *opts, Error **errp);
HostMemBackend *host_backend_find(const char *id);
/* Mark a backend used by a device; fails ("can't use already busy memdev") if taken. */
bool host_backend_claim(HostMemBackend *b, Error **errp);
void host_backend_release(HostMemBackend *b);
/* object-del: unmap and close one that no device uses. */
bool host_backend_destroy(const char *id, Error **errp);
/* The list, newest first (follow ->next). */
HostMemBackend *host_backend_first(void);
/* Unmap and close every backend; at exit. */
void host_backend_destroy_all(void);

#endif
