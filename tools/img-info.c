/*
 * vireo-img info: an image's format, sizes, snapshots and format-specific
 * fields (or its whole backing chain), in qemu-img's human or JSON layout.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block/format-info-json.h"
#include "tools/img.h"
#include "util/osdep.h"


static json_object *snapshot_json(const BlockSnapshotInfo *sn)
{
    json_object *o = json_object_new_object();
    if (sn->icount != UINT64_MAX) {
        json_object_object_add(o, "icount", json_object_new_int64((int64_t)sn->icount));
    }
    json_object_object_add(o, "vm-clock-nsec",
                           json_object_new_int64((int64_t)(sn->vm_clock_nsec % 1000000000)));
    json_object_object_add(o, "name", json_object_new_string(sn->name));
    json_object_object_add(o, "date-sec", json_object_new_int64(sn->date_sec));
    json_object_object_add(o, "date-nsec", json_object_new_int64(sn->date_nsec));
    json_object_object_add(o, "vm-clock-sec",
                           json_object_new_int64((int64_t)(sn->vm_clock_nsec / 1000000000)));
    json_object_object_add(o, "id", json_object_new_string(sn->id));
    json_object_object_add(o, "vm-state-size", json_object_new_int64((int64_t)sn->vm_state_size));
    return o;
}

static json_object *format_specific_json(const BlockFormatInfo *fi)
{
    json_object *data = json_object_new_object();
    json_object_object_add(data, "compat",
                           json_object_new_string(fi->compat >= 3 ? "1.1" : "0.10"));
    json_object_object_add(data, "compression-type",
                           json_object_new_string(fi->compression_type ? "zstd" : "zlib"));
    if (fi->compat >= 3) {
        json_object_object_add(data, "lazy-refcounts", json_object_new_boolean(fi->lazy_refcounts));
    }
    if (fi->has_bitmaps) {
        json_object_object_add(data, "bitmaps", qcow2_bitmaps_info_json(fi));
    }
    json_object_object_add(data, "refcount-bits", json_object_new_int(fi->refcount_bits));
    if (fi->data_file) {
        json_object_object_add(data, "data-file", json_object_new_string(fi->data_file));
    }
    if (fi->has_data_file) {
        json_object_object_add(data, "data-file-raw", json_object_new_boolean(fi->data_file_raw));
    }
    if (fi->compat >= 3) {
        json_object_object_add(data, "corrupt", json_object_new_boolean(fi->corrupt));
        json_object_object_add(data, "extended-l2", json_object_new_boolean(fi->extended_l2));
    }
    json_object *fs = json_object_new_object();
    json_object_object_add(fs, "type", json_object_new_string(fi->type));
    json_object_object_add(fs, "data", data);
    return fs;
}

/* qemu-img reports no cluster size and no dirty flag for parallels images. */
static bool is_parallels(const BlockFormatInfo *fi)
{
    return fi->type && !strcmp(fi->type, "parallels");
}

static json_object *info_json(BlockImage *img, const BlockFormatInfo *fi)
{
    json_object *o = json_object_new_object();
    if (fi->nb_snapshots) {
        json_object *arr = json_object_new_array();
        for (int i = 0; i < fi->nb_snapshots; i++) {
            json_object_array_add(arr, snapshot_json(&fi->snapshots[i]));
        }
        json_object_object_add(o, "snapshots", arr);
    }
    if (fi->backing_fmt) {
        json_object_object_add(o, "backing-filename-format",
                               json_object_new_string(fi->backing_fmt));
    }
    json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)blk_size(img)));
    json_object_object_add(o, "filename", json_object_new_string(blk_filename(img)));
    if (fi->type && !is_parallels(fi)) {
        json_object_object_add(o, "cluster-size",
                               json_object_new_int64(blk_cluster_size(img)));
    }
    json_object_object_add(o, "format", json_object_new_string(blk_format(img)));
    json_object_object_add(o, "actual-size", json_object_new_int64(blk_allocated_bytes(img)));
    if (fi->type && !strcmp(fi->type, "qcow2")) {
        json_object_object_add(o, "format-specific", format_specific_json(fi));
    }
    if (fi->backing_file) {
        char *full = blk_image_backing_path(img, fi->backing_file);
        json_object_object_add(o, "full-backing-filename", json_object_new_string(full));
        json_object_object_add(o, "backing-filename", json_object_new_string(fi->backing_file));
        free(full);
    }
    if (!is_parallels(fi)) {
        json_object_object_add(o, "dirty-flag", json_object_new_boolean(fi->dirty));
    }
    return o;
}

void img_print_snapshot_table(const BlockFormatInfo *fi)
{
    printf("Snapshot list:\n");
    printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    for (int i = 0; i < fi->nb_snapshots; i++) {
        const BlockSnapshotInfo *sn = &fi->snapshots[i];
        char date[32], clock[32];
        time_t t = sn->date_sec;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
        uint64_t secs = sn->vm_clock_nsec / 1000000000;
        snprintf(clock, sizeof(clock), "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
                 secs / 3600, (secs / 60) % 60, secs % 60,
                 (sn->vm_clock_nsec / 1000000) % 1000);
        char *vmsize = img_size_str(sn->vm_state_size);
        char icount[24] = "";
        if (sn->icount != UINT64_MAX) {
            snprintf(icount, sizeof(icount), "%" PRIu64, sn->icount);
        }
        printf("%-9s %-16s %8s%20s%13s%11s\n", sn->id, sn->name, vmsize, date, clock, icount);
        free(vmsize);
    }
}

static void print_format_specific(const BlockFormatInfo *fi)
{
    printf("Format specific information:\n");
    printf("    compat: %s\n", fi->compat >= 3 ? "1.1" : "0.10");
    printf("    compression type: %s\n", fi->compression_type ? "zstd" : "zlib");
    if (fi->compat >= 3) {
        printf("    lazy refcounts: %s\n", fi->lazy_refcounts ? "true" : "false");
    }
    if (fi->has_bitmaps) {
        printf("    bitmaps:\n");
        for (int i = 0; i < fi->nb_bitmaps; i++) {
            printf("        [%d]:\n            flags:\n", i);
            int n = 0;
            if (fi->bitmaps[i].in_use) {
                printf("                [%d]: in-use\n", n++);
            }
            if (fi->bitmaps[i].autoflag) {
                printf("                [%d]: auto\n", n++);
            }
            printf("            name: %s\n            granularity: %u\n",
                   fi->bitmaps[i].name, fi->bitmaps[i].granularity);
        }
    }
    printf("    refcount bits: %d\n", fi->refcount_bits);
    if (fi->data_file) {
        printf("    data file: %s\n", fi->data_file);
    }
    if (fi->has_data_file) {
        printf("    data file raw: %s\n", fi->data_file_raw ? "true" : "false");
    }
    if (fi->compat >= 3) {
        printf("    corrupt: %s\n    extended l2: %s\n", fi->corrupt ? "true" : "false",
               fi->extended_l2 ? "true" : "false");
    }
}

static void info_human(BlockImage *img, const BlockFormatInfo *fi)
{
    char *vsize = img_size_str(blk_size(img));
    char *dsize = img_size_str((uint64_t)MAX(blk_allocated_bytes(img), 0));
    printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\n"
           "disk size: %s\n", blk_filename(img), blk_format(img), vsize, blk_size(img), dsize);
    free(vsize);
    free(dsize);
    if (fi->type && !is_parallels(fi)) {
        printf("cluster_size: %u\n", blk_cluster_size(img));
    }
    if (fi->backing_file) {
        char *full = blk_image_backing_path(img, fi->backing_file);
        printf("backing file: %s", fi->backing_file);
        if (!full) {
            printf(" (cannot determine actual path)");
        } else if (strcmp(full, fi->backing_file)) {
            printf(" (actual path: %s)", full);
        }
        printf("\n");
        free(full);
        if (fi->backing_fmt) {
            printf("backing file format: %s\n", fi->backing_fmt);
        }
    }
    if (fi->dirty && !is_parallels(fi)) {
        printf("cleanly shut down: no\n");
    }
    if (fi->nb_snapshots) {
        img_print_snapshot_table(fi);
    }
    if (fi->type && !strcmp(fi->type, "qcow2")) {
        print_format_specific(fi);
    }
}

/* Print one image, or its whole backing chain, in qemu-img info's layout. */
static int show_info(const char *name, const char *fmt, bool image_opts, bool json,
                     bool chain)
{
    /* An option list's chain is checked for loops as it is opened. */
    if (chain && !image_opts && img_chain_has_loop(name, fmt)) {
        return 1;
    }
    BlockImage *top = img_open_image(name, fmt, image_opts, chain ? 0 : BLK_O_NO_BACKING);
    if (!top) {
        return 1;
    }
    json_object *arr = chain && json ? json_object_new_array() : NULL;
    for (BlockImage *img = top; img; img = chain ? blk_backing(img) : NULL) {
        BlockFormatInfo fi;
        Error *err = NULL;
        if (blk_get_info(img, &fi, &err) < 0) {
            img_report_err(err);
            blk_close(top, NULL);
            return 1;
        }
        if (json) {
            json_object *o = info_json(img, &fi);
            if (arr) {
                json_object_array_add(arr, o);
            } else {
                img_json_print(o);
                json_object_put(o);
            }
        } else {
            if (img != top) {
                printf("\n");
            }
            info_human(img, &fi);
        }
        blk_free_info(&fi);
    }
    if (arr) {
        img_json_print(arr);
        json_object_put(arr);
    }
    blk_close(top, NULL);
    return 0;
}

int img_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "backing-chain", no_argument, NULL, OPT_BACKING_CHAIN },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    bool json = false, chain = false, image_opts = false;
    int c;
    while ((c = getopt_long(argc, argv, "f:hU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'U': break;
        case OPT_OUTPUT:
            if (!img_parse_output(optarg, &json)) {
                return 1;
            }
            break;
        case OPT_BACKING_CHAIN: chain = true; break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return 1;
        }
    }
    if (!img_one_image_name(argc)) {
        return 1;
    }
    return show_info(argv[optind], fmt, image_opts, json, chain);
}

