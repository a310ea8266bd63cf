/*
 * The JSON both `vireo-img info` and the monitor's node queries give for a
 * qcow2 image's persistent bitmaps (format-specific.data.bitmaps), so that
 * the two spell them the same way qemu-img and QEMU do.
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
