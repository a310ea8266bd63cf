/*
 * File nodes below a format: a host file, or a filter node (blkdebug,
 * quorum) whose own children are file nodes again.  Options arrive
 * flattened, relative to the node ("driver", "filename", "image.filename").
 */
#include "block/block-int.h"

#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/osdep.h"

bool bfile_is_filter_driver(const char *name)
{
    return name && (!strcmp(name, "blkdebug") || !strcmp(name, "quorum"));
}

int bfile_open_node(BlockFile *f, const KeyValList *opts, bool writable, bool direct,
                    char **base, Error **errp)
{
    const char *driver = keyval_get(opts, "driver");
    *base = NULL;
    if (driver && !strcmp(driver, "blkdebug")) {
        return blkdebug_open(f, opts, writable, direct, base, errp);
    }
    if (driver && !strcmp(driver, "quorum")) {
        return quorum_open(f, opts, writable, direct, base, errp);
    }
    if (driver && strcmp(driver, "file")) {
        error_setg(errp, "Unknown driver '%s'", driver);
        return -1;
    }
    const char *filename = NULL;
    for (int i = 0; i < opts->n; i++) {
        const char *key = opts->items[i].key;
        if (!strcmp(key, "filename")) {
            filename = opts->items[i].value;
        } else if (strcmp(key, "driver")) {
            error_setg(errp, "Block protocol 'file' doesn't support the option '%s'", key);
            return -1;
        }
    }
    if (!filename) {
        error_setg(errp, "Parameter 'filename' is missing");
        return -1;
    }
    if (bfile_open(f, filename, writable, direct, errp) < 0) {
        return -1;
    }
    *base = xstrdup(filename);
    return 0;
}
