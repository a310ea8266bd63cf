/* JSON encoders for what the block layer reports about an image's format. */
#ifndef BLOCK_FORMAT_INFO_JSON_H
#define BLOCK_FORMAT_INFO_JSON_H

#include <json-c/json.h>

#include "block/block.h"

/* The qcow2 bitmap list: [{"flags": [...], "name": ..., "granularity": ...}]. */
json_object *qcow2_bitmaps_info_json(const BlockFormatInfo *fi);

/* query-named-block-nodes' image.format-specific: {"type": "qcow2", "data": {...}}. */
json_object *qcow2_format_specific_json(const BlockFormatInfo *fi);

#endif
