/*
 * The JSON both `vireo-img info` and the monitors' node queries (vireo's
 * and vireo-storage-daemon's) give for a qcow2 image's format-specific
 * facts and persistent bitmaps, so that they spell them the same way
 * qemu-img and QEMU do.
 */
#include "block/format-info-json.h"

json_object *qcow2_bitmaps_info_json(const BlockFormatInfo *fi)
{
    json_object *list = json_object_new_array();
    for (int i = 0; i < fi->nb_bitmaps; i++) {
        json_object *b = json_object_new_object();
        json_object *flags = json_object_new_array();
        if (fi->bitmaps[i].in_use) {
            json_object_array_add(flags, json_object_new_string("in-use"));
        }
        if (fi->bitmaps[i].autoflag) {
            json_object_array_add(flags, json_object_new_string("auto"));
        }
        json_object_object_add(b, "flags", flags);
        json_object_object_add(b, "name", json_object_new_string(fi->bitmaps[i].name));
        json_object_object_add(b, "granularity",
                               json_object_new_int64(fi->bitmaps[i].granularity));
        json_object_array_add(list, b);
    }
    return list;
}

json_object *qcow2_format_specific_json(const BlockFormatInfo *fi)
{
    json_object *data = json_object_new_object();
    json_object_object_add(data, "compat", json_object_new_string(fi->compat == 2 ? "0.10"
                                                                                 : "1.1"));
    if (fi->data_file) {
        json_object_object_add(data, "data-file", json_object_new_string(fi->data_file));
    }
    if (fi->compat >= 3) {
        if (fi->data_file) {
            json_object_object_add(data, "data-file-raw",
                                   json_object_new_boolean(fi->data_file_raw));
        }
        json_object_object_add(data, "extended-l2", json_object_new_boolean(fi->extended_l2));
        json_object_object_add(data, "lazy-refcounts",
                               json_object_new_boolean(fi->lazy_refcounts));
        json_object_object_add(data, "corrupt", json_object_new_boolean(fi->corrupt));
    }
    json_object_object_add(data, "refcount-bits", json_object_new_int(fi->refcount_bits));
    json_object_object_add(data, "compression-type",
                           json_object_new_string(fi->compression_type ? "zstd" : "zlib"));
    if (fi->has_bitmaps) {
        json_object_object_add(data, "bitmaps", qcow2_bitmaps_info_json(fi));
    }
    json_object *spec = json_object_new_object();
    json_object_object_add(spec, "type", json_object_new_string("qcow2"));
    json_object_object_add(spec, "data", data);
    return spec;
}
