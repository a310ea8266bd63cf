/*
 * -blockdev, in key=value and JSON form, and the block nodes of -drive:
 * both become nodes of the block layer's registry (block/node.h) before
 * the machine is built, -blockdev first, as QEMU orders them.
 */
#include <stdlib.h>
#include <string.h>

#include "block/node.h"
#include "core/main-loop.h"
#include "core/options.h"
#include "core/vm-config.h"
#include "util/keyval.h"
#include "util/osdep.h"

static char **blockdevs;
static int nr_blockdevs;

static bool opt_blockdev(const char *arg, Error **errp)
{
    blockdevs = realloc(blockdevs, sizeof(*blockdevs) * (size_t)(nr_blockdevs + 1));
    blockdevs[nr_blockdevs++] = xstrdup(arg);
    return true;
}

const CmdOption block_options[] = {
    { "blockdev", "driver=DRIVER,node-name=NAME[,...]|{JSON}",
      "add a block node (file, raw, qcow2, parallels)", NULL, NULL, opt_blockdev },
    { NULL },
};

static void watch_fd(int fd, void (*cb)(void *opaque), void *opaque)
{
    main_loop_set_fd_handler(fd, cb, NULL, opaque);
}

bool block_options_create_nodes(Error **errp)
{
    block_node_watch_fd = watch_fd;
    for (int i = 0; i < nr_blockdevs; i++) {
        KeyValList kv;
        if (!keyval_parse_any(blockdevs[i], &kv, errp)) {
            error_prepend(errp, "-blockdev %s: ", blockdevs[i]);
            return false;
        }
        BlockNode *n = NULL;
        if (!keyval_get(&kv, "node-name")) {
            error_setg(errp, "'node-name' must be specified for the root node");
        } else {
            n = block_node_create(&kv, errp);
        }
        keyval_free(&kv);
        if (!n) {
            error_prepend(errp, "-blockdev %s: ", blockdevs[i]);
            return false;
        }
    }
    for (const DeviceOption *d = vm_config.drives; d; d = d->next) {
        if (!block_node_create_drive(d->opts, errp)) {
            error_prepend(errp, "-drive %s: ", d->opts);
            return false;
        }
    }
    return true;
}
