/*
 * QEMU's permission rules between the users of a block node (devices,
 * exports, parent nodes through their file and backing children), checked
 * in this process and, through the image's OFD locks, against others.
 */
#include <stdlib.h>
#include <string.h>

#include "block/image-lock.h"
#include "block/node-int.h"
#include "util/osdep.h"

static uint64_t user_counter;

/* One claim on a node: a user, or a parent node through a child role. */
typedef struct PermEdge {
    unsigned perm, shared;
    char *desc;                 /* who */
    const char *child;          /* "root", "file", "backing" */
} PermEdge;

static bool has_metadata(const BlockNode *n)
{
    return strcmp(n->driver, "raw") && node_is_format_driver(n->driver);
}

static void cumulative(const BlockNode *n, const BlockNodeUser *extra, unsigned *perm,
                       unsigned *shared);

/* What format node @p claims on its file child (QEMU's storage-child rule). */
static void child_claim(const BlockNode *p, const BlockNodeUser *extra, unsigned *perm,
                        unsigned *shared)
{
    unsigned pp, ps;
    cumulative(p, extra, &pp, &ps);
    if (!has_metadata(p)) {
        *perm = pp;
        *shared = ps;
        return;
    }
    pp |= BLK_PERM_CONSISTENT_READ;
    if (!block_node_read_only(p)) {
        pp |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
    }
    ps &= ~(BLK_PERM_WRITE | BLK_PERM_RESIZE);
    if (pp & BLK_PERM_WRITE_UNCHANGED) {
        pp |= BLK_PERM_WRITE;
    }
    if (pp & BLK_PERM_WRITE) {
        pp |= BLK_PERM_RESIZE;
    }
    *perm = pp;
    *shared = ps;
}

/* What a node claims on the backing node it names (QEMU's COW-child rule). */
static void backing_claim(const BlockNode *p, const BlockNodeUser *extra, unsigned *perm,
                          unsigned *shared)
{
    unsigned pp, ps;
    cumulative(p, extra, &pp, &ps);
    *perm = BLK_PERM_CONSISTENT_READ;
    *shared = (ps & BLK_PERM_WRITE ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0) |
              BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
}

/* Claims on @n, with @extra (a user not yet on any list) counted when it uses @n or above. */
static int edges_of(const BlockNode *n, const BlockNodeUser *extra, PermEdge *out, int max)
{
    int k = 0;
    if (extra && extra->node == n && k < max) {
        out[k++] = (PermEdge){ extra->perm, extra->shared, xstrdup(extra->desc), "root" };
    }
    for (const BlockNodeUser *u = n->users; u && k < max; u = u->next) {
        out[k++] = (PermEdge){ u->perm, u->shared, xstrdup(u->desc), "root" };
    }
    const BlockNode *p = n->parent;
    if (p && k < max) {
        PermEdge e = { .desc = xasprintf("node '%s'", p->name) };
        if (p->file == n) {
            child_claim(p, extra, &e.perm, &e.shared);
            e.child = "file";
        } else {
            backing_claim(p, extra, &e.perm, &e.shared);
            e.child = "backing";
        }
        out[k++] = e;
    }
    return k;
}

#define MAX_EDGES 64

static void cumulative(const BlockNode *n, const BlockNodeUser *extra, unsigned *perm,
                       unsigned *shared)
{
    PermEdge e[MAX_EDGES];
    int k = edges_of(n, extra, e, MAX_EDGES);
    *perm = 0;
    *shared = BLK_PERM_ALL;
    for (int i = 0; i < k; i++) {
        *perm |= e[i].perm;
        *shared &= e[i].shared;
        free(e[i].desc);
    }
}

/* Every pair of claims on @n must allow each other. */
static bool check_edges(const BlockNode *n, const BlockNodeUser *extra, Error **errp)
{
    PermEdge e[MAX_EDGES];
    int k = edges_of(n, extra, e, MAX_EDGES);
    bool ok = true;
    for (int a = 0; a < k && ok; a++) {
        for (int b = 0; b < k && ok; b++) {
            unsigned clash = e[b].perm & ~e[a].shared;
            if (a == b || !clash) {
                continue;
            }
            char *names = image_lock_perm_names(clash);
            error_setg(errp, "Permission conflict on node '%s': permissions '%s' are both "
                       "required by %s (uses node '%s' as '%s' child) and unshared by %s "
                       "(uses node '%s' as '%s' child).", n->name, names, e[b].desc,
                       n->name, e[b].child, e[a].desc, n->name, e[a].child);
            free(names);
            ok = false;
        }
    }
    for (int i = 0; i < k; i++) {
        free(e[i].desc);
    }
    return ok;
}

/* Lock bytes of a protocol node's file: checked against other processes, then held. */
static bool refresh_lock(BlockNode *n, const BlockNodeUser *extra, bool apply, Error **errp)
{
    if (n->lock_fd < 0) {
        return true;
    }
    unsigned perm, shared;
    cumulative(n, extra, &perm, &shared);
    if (!image_lock_check(n->lock_fd, perm, shared, errp)) {
        error_append_hint(errp, "Is another process using the image [%s]?\n", n->filename);
        return false;
    }
    return !apply || image_lock_apply(n->lock_fd, perm, shared, errp);
}

/* Check (and with @apply, take) the claims on @n and everything below it. */
bool node_refresh_tree(BlockNode *n, const BlockNodeUser *extra, bool apply, Error **errp)
{
    if (!check_edges(n, extra, errp) || !refresh_lock(n, extra, apply, errp)) {
        return false;
    }
    if (n->file && !node_refresh_tree(n->file, extra, apply, errp)) {
        return false;
    }
    if (n->backing_chain && !node_refresh_tree(n->backing_chain, extra, apply, errp)) {
        return false;
    }
    return !n->backing || node_refresh_tree(n->backing, extra, apply, errp);
}

BlockNodeUser *block_node_attach(BlockNode *n, const char *desc, const char *qdev,
                                 unsigned perm, unsigned shared, Error **errp)
{
    if ((perm & BLK_PERM_WRITE) && block_node_read_only(n)) {
        error_setg(errp, "Block node is read-only");
        return NULL;
    }
    BlockNodeUser *u = xzalloc(sizeof(*u));
    u->node = n;
    u->desc = xstrdup(desc);
    u->qdev = qdev ? xstrdup(qdev) : NULL;
    u->perm = perm;
    u->shared = shared;
    if (!node_refresh_tree(n, u, false, errp)) {
        free(u->desc);
        free(u->qdev);
        free(u);
        return NULL;
    }
    u->seq = ++user_counter;
    u->next = n->users;
    n->users = u;
    node_refresh_tree(n, NULL, true, NULL);
    return u;
}

void block_node_detach(BlockNodeUser *u)
{
    if (!u) {
        return;
    }
    BlockNode *n = u->node;
    for (BlockNodeUser **p = &n->users; *p; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            break;
        }
    }
    node_refresh_tree(n, NULL, true, NULL);   /* fewer claims: releasing cannot conflict */
    free(u->desc);
    free(u->qdev);
    free(u);
}

void block_node_user_set_qdev(BlockNodeUser *u, const char *qdev)
{
    free(u->qdev);
    free(u->desc);
    u->qdev = xstrdup(qdev);
    u->desc = xasprintf("block device '%s'", qdev);
}

BlockNodeUser *block_node_user_first(const BlockNode *n) { return n->users; }
BlockNodeUser *block_node_user_next(const BlockNodeUser *u) { return u->next; }
const char *block_node_user_qdev(const BlockNodeUser *u) { return u->qdev; }
BlockNode *block_node_user_node(const BlockNodeUser *u) { return u->node; }
uint64_t block_node_user_seq(const BlockNodeUser *u) { return u->seq; }
void block_node_user_set_io_status(BlockNodeUser *u, int status) { u->io_status = status; }
int block_node_user_io_status(const BlockNodeUser *u) { return u->io_status; }
const char *block_node_drive_werror(const BlockNode *n) { return n->werror; }
const char *block_node_drive_rerror(const BlockNode *n) { return n->rerror; }

void block_node_user_set_io_done(BlockNodeUser *u, void (*io_done)(void *opaque),
                                 void *opaque)
{
    u->io_done = io_done;
    u->io_opaque = opaque;
}

/*
 * A second format node over one file: vireo opens a format with its file,
 * so a file has one parent; QEMU's words when the two claims clash.
 */
void node_second_parent_error(const BlockNode *child, const BlockNode *p, Error **errp)
{
    unsigned op, os, np, ns;
    child_claim(child->parent, NULL, &op, &os);
    child_claim(p, NULL, &np, &ns);
    const BlockNode *req = child->parent, *unsh = p;
    unsigned clash = op & ~ns;
    if (!clash) {
        clash = np & ~os;
        req = p;
        unsh = child->parent;
    }
    if (!clash) {
        error_setg(errp, "Node '%s' is already in use by node '%s'", child->name,
                   child->parent->name);
        return;
    }
    char *names = image_lock_perm_names(clash);
    error_setg(errp, "Permission conflict on node '%s': permissions '%s' are both required by "
               "node '%s' (uses node '%s' as 'file' child) and unshared by node '%s' (uses "
               "node '%s' as 'file' child).", child->name, names, req->name, child->name,
               unsh->name, child->name);
    free(names);
}
