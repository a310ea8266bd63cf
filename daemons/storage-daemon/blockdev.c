/*
 * Block nodes as qemu-storage-daemon's --blockdev builds them: a protocol
 * node (driver=file) names a file, a format node (raw, qcow2, parallels)
 * sits on a protocol node through file=NODE. vireo's block layer opens a
 * format and its file together, so a node is opened as an image when an
 * export first uses it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemons/storage-daemon/storage-daemon.h"
#include "util/keyval.h"
#include "util/osdep.h"
#include "virtio/virtio-blk-req.h"

typedef struct BlockNode {
    char *name;
    char *driver;               /* file, raw, qcow2, parallels */
    char *filename;             /* protocol nodes */
    struct BlockNode *file;     /* format nodes: the protocol node below */
    bool read_only;
    bool nocache;               /* cache.direct=on */
    bool uring;                 /* aio=io_uring|native */
    bool used;                  /* by a format node or an export */
    BlockImage *img;
    struct BlockNode *next;
} BlockNode;

static BlockNode *nodes;

static const OptParam blockdev_params[] = {
    { "driver", OPT_STRING, "block driver" },
    { "node-name", OPT_STRING, "node name" },
    { "filename", OPT_STRING, "file name (driver=file)" },
    { "file", OPT_STRING, "protocol node below a format node" },
    { "read-only", OPT_BOOL, "open read-only", "off" },
    { "auto-read-only", OPT_BOOL, "accepted", "off" },
    { "cache.direct", OPT_BOOL, "O_DIRECT", "off" },
    { "cache.no-flush", OPT_BOOL, "accepted", "off" },
    { "aio", OPT_STRING, "threads, native or io_uring", "threads" },
    { "discard", OPT_STRING, "accepted (ignore or unmap)" },
    { "detect-zeroes", OPT_STRING, "accepted" },
    { "locking", OPT_STRING, "accepted" },
    { NULL },
};

static BlockNode *find_node(const char *name)
{
    for (BlockNode *n = nodes; n; n = n->next) {
        if (!strcmp(n->name, name)) {
            return n;
        }
    }
    return NULL;
}

static bool is_format(const char *driver)
{
    return !strcmp(driver, "raw") || !strcmp(driver, "qcow2") || !strcmp(driver, "parallels");
}

static bool protocol_node(BlockNode *n, const KeyValList *kv, Error **errp)
{
    const char *filename = keyval_get(kv, "filename");
    const char *aio = keyval_get(kv, "aio");
    if (!filename) {
        error_setg(errp, "Parameter 'filename' is missing");
        return false;
    }
    if (access(filename, F_OK) < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", filename);
        return false;
    }
    if (aio && strcmp(aio, "threads") && strcmp(aio, "native") && strcmp(aio, "io_uring")) {
        error_setg(errp, "Parameter 'aio' does not accept value '%s'", aio);
        return false;
    }
    n->filename = xstrdup(filename);
    n->nocache = keyval_get_bool(kv, "cache.direct", false);
    n->uring = aio && strcmp(aio, "threads");
    return true;
}

static bool format_node(BlockNode *n, const KeyValList *kv, Error **errp)
{
    const char *file = keyval_get(kv, "file");
    BlockNode *child = file ? find_node(file) : NULL;
    if (!file) {
        error_setg(errp, "Parameter 'file' is missing");
        return false;
    }
    if (!child || strcmp(child->driver, "file")) {
        error_setg(errp, "Cannot find protocol node '%s'", file);
        return false;
    }
    if (child->used) {
        error_setg(errp, "Node '%s' is already in use", file);
        return false;
    }
    child->used = true;
    n->file = child;
    return true;
}

bool blockdev_add(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, NULL, blockdev_params, &kv, errp)) {
        return false;
    }
    const char *driver = keyval_get(&kv, "driver");
    const char *name = keyval_get(&kv, "node-name");
    BlockNode *n = xzalloc(sizeof(*n));
    bool ok = false;
    if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
    } else if (!name) {
        error_setg(errp, "A block device must be given a name (node-name)");
    } else if (find_node(name)) {
        error_setg(errp, "Duplicate nodes with node-name='%s'", name);
    } else if (!strcmp(driver, "file")) {
        ok = protocol_node(n, &kv, errp);
    } else if (is_format(driver)) {
        ok = format_node(n, &kv, errp);
    } else {
        error_setg(errp, "Invalid parameter '%s' for 'driver'", driver);
    }
    if (ok) {
        n->name = xstrdup(name);
        n->driver = xstrdup(driver);
        n->read_only = keyval_get_bool(&kv, "read-only", false);
        n->next = nodes;
        nodes = n;
    } else {
        free(n->filename);
        free(n);
    }
    keyval_free(&kv);
    return ok;
}

BlockImage *blockdev_open(const char *node_name, bool writable, bool *gather_segments,
                          Error **errp)
{
    BlockNode *n = find_node(node_name);
    if (!n) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'", node_name);
        return NULL;
    }
    if (n->used) {
        error_setg(errp, "Node '%s' is already in use", node_name);
        return NULL;
    }
    BlockNode *proto = n->file ? n->file : n;
    if (writable && (n->read_only || proto->read_only)) {
        error_setg(errp, "Cannot export node '%s' writable: it is read-only", node_name);
        return NULL;
    }
    unsigned flags = (writable ? BLK_O_RDWR : 0) | (proto->nocache ? BLK_O_NOCACHE : 0) |
                     (proto->uring ? BLK_O_URING : 0);
    const char *format = n->file ? n->driver : "raw";
    n->img = blk_open(proto->filename, format, flags, errp);
    if (n->img) {
        n->used = true;
        *gather_segments = virtio_blk_on_forwarding_fs(proto->filename);
    }
    return n->img;
}

void blockdev_release(const char *node_name)
{
    BlockNode *n = find_node(node_name);
    Error *err = NULL;
    if (!n || !n->img) {
        return;
    }
    if (blk_close(n->img, &err) < 0) {
        error_report_err(err);
    }
    n->img = NULL;
    n->used = false;
}

/* Size figures of an image: the open one, or a short read-only look. */
static void image_figures(BlockNode *n, BlockNodeInfo *info)
{
    BlockImage *img = n->img;
    Error *err = NULL;
    if (!img) {
        img = blk_open(n->file->filename, n->driver, 0, &err);
    }
    if (!img) {
        error_free(err);    /* reported as unknown figures */
        return;
    }
    info->virtual_size = blk_size(img);
    info->actual_size = blk_allocated_bytes(img);
    info->cluster_size = blk_cluster_size(img);
    if (img != n->img && blk_close(img, &err) < 0) {
        error_free(err);
    }
}

static void node_info(BlockNode *n, BlockNodeInfo *info)
{
    BlockNode *proto = n->file ? n->file : n;
    struct stat st;
    *info = (BlockNodeInfo){
        .name = n->name, .driver = n->driver, .filename = proto->filename,
        .read_only = n->read_only || proto->read_only, .direct = proto->nocache,
        .actual_size = -1,
    };
    if (n->file) {
        image_figures(n, info);
    } else if (stat(n->filename, &st) == 0) {
        info->virtual_size = st.st_size;
        info->actual_size = (int64_t)st.st_blocks * 512;
    }
}

void blockdev_foreach(BlockNodeVisit *visit, void *opaque)
{
    for (BlockNode *n = nodes; n; n = n->next) {
        BlockNodeInfo info;
        node_info(n, &info);
        visit(&info, opaque);
    }
}

void blockdev_close_all(void)
{
    while (nodes) {
        BlockNode *n = nodes;
        nodes = n->next;
        if (n->img) {
            Error *err = NULL;
            if (blk_close(n->img, &err) < 0) {
                error_report_err(err);
            }
        }
        free(n->name);
        free(n->driver);
        free(n->filename);
        free(n);
    }
}
