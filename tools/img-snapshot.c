/*
 * vireo-img snapshot and bitmap: internal snapshots and persistent dirty
 * bitmaps of an image, listed, made, applied, changed or removed.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/img.h"
#include "util/osdep.h"

/* ---- snapshot ---- */

int img_snapshot(int argc, char **argv)
{
    const char *fmt = NULL, *name = NULL;
    char action = 0;
    int c;
    while ((c = getopt(argc, argv, "f:lc:a:d:hqU")) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'l': action = 'l'; break;
        case 'c': case 'a': case 'd': action = (char)c; name = optarg; break;
        case 'q': case 'U': break;
        default: return 1;
        }
    }
    if (optind != argc - 1 || !action) {
        img_error("Expecting one image file name and one action\n");
        return 1;
    }
    BlockImage *img = img_open(argv[optind], fmt,
                               BLK_O_NO_BACKING | (action == 'l' ? 0 : BLK_O_RDWR));
    if (!img) {
        return 1;
    }
    Error *err = NULL;
    int ret = 0;
    if (action == 'l') {
        BlockFormatInfo fi;
        ret = blk_get_info(img, &fi, &err);
        if (ret == 0 && fi.nb_snapshots) {
            img_print_snapshot_table(&fi);
        }
        if (ret == 0) {
            blk_free_info(&fi);
        }
    } else if (action == 'c') {
        ret = blk_snapshot_create(img, name, &err);
    } else if (action == 'a') {
        ret = blk_snapshot_apply(img, name, &err);
    } else {
        ret = blk_snapshot_delete(img, name, &err);
    }
    return img_finish_modification(img, ret, err) < 0 ? 1 : 0;
}

/* ---- bitmap ---- */

typedef struct BitmapAction {
    int op;
    const char *src;      /* for --merge */
} BitmapAction;

int img_bitmap(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "add", no_argument, NULL, OPT_ADD },
        { "remove", no_argument, NULL, OPT_REMOVE },
        { "clear", no_argument, NULL, OPT_CLEAR },
        { "enable", no_argument, NULL, OPT_ENABLE },
        { "disable", no_argument, NULL, OPT_DISABLE },
        { "merge", required_argument, NULL, OPT_MERGE },
        { "granularity", required_argument, NULL, 'g' },
        { NULL, 0, NULL, 0 },
    };
    BitmapAction acts[16];
    int nacts = 0, c;
    const char *fmt = NULL, *src_file = NULL, *src_fmt = NULL;
    uint64_t gran = 0;
    Error *err = NULL;
    while ((c = getopt_long(argc, argv, "f:g:b:F:hq", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'b': src_file = optarg; break;
        case 'F': src_fmt = optarg; break;
        case 'q': break;
        case 'g':
            if (!parse_size(optarg, &gran, &err) || gran > UINT32_MAX) {
                img_error("Invalid granularity specified\n");
                error_free(err);
                return 1;
            }
            break;
        case OPT_ADD: case OPT_REMOVE: case OPT_CLEAR: case OPT_ENABLE: case OPT_DISABLE:
        case OPT_MERGE:
            if (nacts == (int)ARRAY_SIZE(acts)) {
                return 1;
            }
            acts[nacts++] = (BitmapAction) { c, c == OPT_MERGE ? optarg : NULL };
            break;
        default: return 1;
        }
    }
    if (!nacts) {
        img_error("Need at least one of --add, --remove, --clear, "
                "--enable, --disable, or --merge\n");
        return 1;
    }
    if (gran && (nacts != 1 || acts[0].op != OPT_ADD)) {
        img_error("granularity only supported with --add\n");
        return 1;
    }
    if (optind != argc - 2) {
        img_error("Expecting filename and bitmap name\n");
        return 1;
    }
    const char *bitmap = argv[optind + 1];
    BlockImage *img = img_open(argv[optind], fmt, BLK_O_RDWR | BLK_O_NO_BACKING);
    if (!img) {
        return 1;
    }
    int ret = 0;
    for (int i = 0; i < nacts && ret == 0; i++) {
        switch (acts[i].op) {
        case OPT_ADD:
            ret = blk_bitmap_add(img, bitmap, (uint32_t)gran, false, &err);
            break;
        case OPT_REMOVE: ret = blk_bitmap_remove(img, bitmap, &err); break;
        case OPT_CLEAR: ret = blk_bitmap_clear(img, bitmap, &err); break;
        case OPT_ENABLE: ret = blk_bitmap_enable(img, bitmap, true, &err); break;
        case OPT_DISABLE: ret = blk_bitmap_enable(img, bitmap, false, &err); break;
        case OPT_MERGE: {
            BlockImage *src = src_file ? img_open(src_file, src_fmt, BLK_O_NO_BACKING) : NULL;
            if (src_file && !src) {
                ret = -1;
                break;
            }
            ret = blk_bitmap_merge(img, bitmap, src, acts[i].src, &err);
            blk_close(src, NULL);
            break;
        }
        }
    }
    return img_finish_modification(img, ret, err) < 0 ? 1 : 0;
}

