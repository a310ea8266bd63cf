#include "util/fdset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/osdep.h"

static Fdset *fdsets;

/* Descriptors handed out by fdset_dup_fd, so a later close can be accounted. */
typedef struct DupFd {
    int fd;
    Fdset *set;
    struct DupFd *next;
} DupFd;
static DupFd *dup_fds;

static Fdset *find_set(int64_t id)
{
    for (Fdset *s = fdsets; s; s = s->next) {
        if (s->id == id) {
            return s;
        }
    }
    return NULL;
}

static Fdset *create_set(int64_t id)
{
    Fdset *s = xzalloc(sizeof(*s));
    s->id = id;
    Fdset **p = &fdsets;
    while (*p && (*p)->id < id) {
        p = &(*p)->next;
    }
    s->next = *p;
    *p = s;
    return s;
}

static int64_t lowest_free_id(void)
{
    int64_t id = 0;
    for (Fdset *s = fdsets; s && s->id == id; s = s->next) {
        id++;
    }
    return id;
}

bool fdset_add(int64_t id, int fd, const char *opaque, int64_t *out_id, Error **errp)
{
    Fdset *set = NULL;
    if (id >= 0) {
        set = find_set(id);
    } else {
        id = lowest_free_id();
    }
    if (!set) {
        set = create_set(id);
    }
    FdsetEntry *e = xzalloc(sizeof(*e));
    e->fd = fd;
    e->opaque = opaque ? xstrdup(opaque) : NULL;
    FdsetEntry **p = &set->fds;
    while (*p) {
        p = &(*p)->next;
    }
    *p = e;
    if (out_id) {
        *out_id = id;
    }
    return true;
}

static void free_set_if_empty(Fdset *set)
{
    if (set->fds || set->dup_count) {
        return;
    }
    for (Fdset **p = &fdsets; *p; p = &(*p)->next) {
        if (*p == set) {
            *p = set->next;
            free(set);
            return;
        }
    }
}

bool fdset_remove(int64_t id, int64_t fd, Error **errp)
{
    Fdset *set = find_set(id);
    bool found = false;
    if (set) {
        FdsetEntry **p = &set->fds;
        while (*p) {
            FdsetEntry *e = *p;
            if (fd < 0 || e->fd == fd) {
                *p = e->next;
                close(e->fd);
                free(e->opaque);
                free(e);
                found = true;
            } else {
                p = &e->next;
            }
        }
    }
    if (!found) {
        if (fd < 0) {
            error_setg(errp, "File descriptor named 'fdset-id:%lld' not found", (long long)id);
        } else {
            error_setg(errp, "File descriptor named 'fdset-id:%lld, fd:%lld' not found",
                       (long long)id, (long long)fd);
        }
        return false;
    }
    free_set_if_empty(set);
    return true;
}

int fdset_dup_fd(int64_t id, int flags, Error **errp)
{
    Fdset *set = find_set(id);
    if (!set) {
        error_setg(errp, "fd set %lld does not exist", (long long)id);
        return -1;
    }
    for (FdsetEntry *e = set->fds; e; e = e->next) {
        int fl = fcntl(e->fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) != (flags & O_ACCMODE)) {
            continue;
        }
        int dup = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
        if (dup < 0) {
            error_setg_errno(errp, errno, "cannot duplicate a descriptor of fd set %lld",
                             (long long)id);
            return -1;
        }
        DupFd *d = xzalloc(sizeof(*d));
        d->fd = dup;
        d->set = set;
        d->next = dup_fds;
        dup_fds = d;
        set->dup_count++;
        return dup;
    }
    error_setg(errp, "fd set %lld has no descriptor with the access mode %s", (long long)id,
               (flags & O_ACCMODE) == O_RDONLY ? "read-only" :
               (flags & O_ACCMODE) == O_WRONLY ? "write-only" : "read-write");
    return -1;
}

void fdset_dup_fd_close(int fd)
{
    for (DupFd **p = &dup_fds; *p; p = &(*p)->next) {
        DupFd *d = *p;
        if (d->fd == fd) {
            *p = d->next;
            d->set->dup_count--;
            free_set_if_empty(d->set);
            free(d);
            return;
        }
    }
}

const Fdset *fdset_list(void)
{
    return fdsets;
}
