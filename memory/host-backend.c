/*
 * Host memory backends. See memory/host-backend.h.
 */
#include "memory/host-backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/keyval.h"
#include "util/osdep.h"

static const OptParam backend_params[] = {
    { "qom-type", OPT_STRING, "memory-backend-ram, -memfd or -file" },
    { "id", OPT_STRING, "name devices refer to (memdev=)" },
    { "size", OPT_SIZE, "size of the memory region (ex: 500M)" },
    { "share", OPT_BOOL, "mark the memory as private to vireo or shared", "off" },
    { "mem-path", OPT_STRING, "file to map (memory-backend-file)" },
    { "dump", OPT_BOOL, "set to 'off' to exclude from core dumps", "on" },
    { "merge", OPT_BOOL, "mark memory as mergeable (accepted)", "on" },
    { "prealloc", OPT_BOOL, "touch every page at creation", "off" },
    { "seal", OPT_BOOL, "seal growing and shrinking (memfd)", "on" },
    { "hugetlb", OPT_BOOL, "use huge pages (not supported)", "off" },
    { "readonly", OPT_BOOL, "map the file read-only (not supported)", "off" },
    { "discard-data", OPT_BOOL, "accepted", "off" },
    { "align", OPT_SIZE, "accepted" },
    { NULL },
};

static const char *const backend_types[] = {
    "memory-backend-ram", "memory-backend-memfd", "memory-backend-file",
};

static HostMemBackend *backends;

bool host_backend_type_known(const char *type)
{
    for (size_t i = 0; i < ARRAY_SIZE(backend_types); i++) {
        if (!strcmp(type, backend_types[i])) {
            return true;
        }
    }
    return false;
}

static const char *static_type_name(const char *type)
{
    for (size_t i = 0; i < ARRAY_SIZE(backend_types); i++) {
        if (!strcmp(type, backend_types[i])) {
            return backend_types[i];
        }
    }
    return NULL;
}

HostMemBackend *host_backend_find(const char *id)
{
    for (HostMemBackend *b = backends; b; b = b->next) {
        if (!strcmp(b->id, id)) {
            return b;
        }
    }
    return NULL;
}

static int open_memfd(const HostMemBackend *b, bool seal, Error **errp)
{
    unsigned flags = MFD_CLOEXEC | (seal ? MFD_ALLOW_SEALING : 0);
    int fd = memfd_create(b->id, flags);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create memfd");
        return -1;
    }
    if (ftruncate(fd, (off_t)b->size) < 0) {
        error_setg_errno(errp, errno, "cannot size memfd to %llu bytes",
                         (unsigned long long)b->size);
        close(fd);
        return -1;
    }
    /* The size is part of the contract with peers: nobody may change it. */
    if (seal) {
        fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    }
    return fd;
}

/* A file grows to the backend size; a larger one is used in part, as QEMU does. */
static int open_file(const HostMemBackend *b, Error **errp)
{
    int fd = open(b->mem_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "can't open backing store %s for guest RAM",
                         b->mem_path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        error_setg(errp, "mem-path %s is a directory (vireo does not create files in it)",
                   b->mem_path);
        return -1;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < b->size &&
        ftruncate(fd, (off_t)b->size) < 0) {
        error_setg_errno(errp, errno, "cannot grow %s to %llu bytes", b->mem_path,
                         (unsigned long long)b->size);
        close(fd);
        return -1;
    }
    return fd;
}

static bool map_backend(HostMemBackend *b, Error **errp)
{
    int flags = b->fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
                          : (b->share ? MAP_SHARED : MAP_PRIVATE);
    b->hva = mmap(NULL, b->size, PROT_READ | PROT_WRITE, flags, b->fd, 0);
    if (b->hva == MAP_FAILED) {
        b->hva = NULL;
        error_setg_errno(errp, errno, "cannot map %llu bytes of memory backend '%s'",
                         (unsigned long long)b->size, b->id);
        return false;
    }
    return true;
}

static void free_backend(HostMemBackend *b)
{
    if (b->hva) {
        munmap(b->hva, b->size);
    }
    if (b->fd >= 0) {
        close(b->fd);
    }
    free(b->id);
    free(b->mem_path);
    free(b);
}

/* The checks QEMU makes before it creates anything, with its messages. */
static bool check_params(const KeyValList *kv, const char *type, Error **errp)
{
    if (!keyval_get(kv, "id")) {
        error_setg(errp, "Parameter 'id' is missing");
        return false;
    }
    if (!keyval_get(kv, "size")) {
        error_setg(errp, "Parameter 'size' is missing");
        return false;
    }
    if (!strcmp(type, "memory-backend-file") && !keyval_get(kv, "mem-path")) {
        error_setg(errp, "Parameter 'mem-path' is missing");
        return false;
    }
    if (keyval_get(kv, "mem-path") && strcmp(type, "memory-backend-file") != 0) {
        error_setg(errp, "Parameter 'mem-path' is unexpected");
        return false;
    }
    if (keyval_get_bool(kv, "hugetlb", false) || keyval_get_bool(kv, "readonly", false)) {
        error_setg(errp, "%s: hugetlb= and readonly= are not supported", type);
        return false;
    }
    if (keyval_get_number(kv, "size", 0) == 0) {
        error_setg(errp, "can't create backend with size 0");
        return false;
    }
    if (host_backend_find(keyval_get(kv, "id"))) {
        error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')",
                   keyval_get(kv, "id"));
        return false;
    }
    return true;
}

static HostMemBackend *new_backend(const KeyValList *kv, const char *type)
{
    HostMemBackend *b = xzalloc(sizeof(*b));
    b->id = xstrdup(keyval_get(kv, "id"));
    b->type = static_type_name(type);
    b->size = keyval_get_number(kv, "size", 0);
    /* A memfd backend is shared unless told otherwise, as in QEMU. */
    b->share = keyval_get_bool(kv, "share", !strcmp(type, "memory-backend-memfd"));
    b->mem_path = keyval_get(kv, "mem-path") ? xstrdup(keyval_get(kv, "mem-path")) : NULL;
    b->fd = -1;
    return b;
}

static bool open_backend(HostMemBackend *b, const KeyValList *kv, Error **errp)
{
    if (!strcmp(b->type, "memory-backend-memfd")) {
        b->fd = open_memfd(b, keyval_get_bool(kv, "seal", true), errp);
    } else if (!strcmp(b->type, "memory-backend-file")) {
        b->fd = open_file(b, errp);
    } else if (b->share) {
        /* Shared anonymous RAM still needs a descriptor to hand to peers. */
        b->fd = open_memfd(b, false, errp);
    } else {
        return map_backend(b, errp);
    }
    return b->fd >= 0 && map_backend(b, errp);
}

HostMemBackend *host_backend_create(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "qom-type", backend_params, &kv, errp)) {
        return NULL;
    }
    const char *type = keyval_get(&kv, "qom-type");
    HostMemBackend *b = NULL;
    if (!type || !host_backend_type_known(type)) {
        error_setg(errp, "invalid object type: %s", type ? type : "");
    } else if (check_params(&kv, type, errp)) {
        b = new_backend(&kv, type);
        if (!open_backend(b, &kv, errp)) {
            free_backend(b);
            b = NULL;
        }
    }
    if (b) {
        if (!keyval_get_bool(&kv, "dump", true)) {
            madvise(b->hva, b->size, MADV_DONTDUMP);
        }
        if (keyval_get_bool(&kv, "prealloc", false)) {
            memset(b->hva, 0, b->size);     /* fault every page in now, not in the guest */
        }
        b->next = backends;
        backends = b;
    }
    keyval_free(&kv);
    return b;
}

bool host_backend_claim(HostMemBackend *b, Error **errp)
{
    if (b->in_use) {
        error_setg(errp, "can't use already busy memdev: %s", b->id);
        return false;
    }
    b->in_use = true;
    return true;
}

void host_backend_release(HostMemBackend *b)
{
    if (b) {
        b->in_use = false;
    }
}

bool host_backend_destroy(const char *id, Error **errp)
{
    for (HostMemBackend **p = &backends; *p; p = &(*p)->next) {
        HostMemBackend *b = *p;
        if (strcmp(b->id, id) != 0) {
            continue;
        }
        if (b->in_use) {
            error_setg(errp, "object '%s' is in use, can not be deleted", id);
            return false;
        }
        *p = b->next;
        free_backend(b);
        return true;
    }
    error_setg(errp, "object '%s' not found", id);
    return false;
}

HostMemBackend *host_backend_first(void)
{
    return backends;
}

void host_backend_destroy_all(void)
{
    while (backends) {
        HostMemBackend *b = backends;
        backends = b->next;
        free_backend(b);
    }
}

/* The -device properties of this type, for device-list-properties. */
const OptParam *host_backend_params(void);
const OptParam *host_backend_params(void)
{
    return backend_params;
}
