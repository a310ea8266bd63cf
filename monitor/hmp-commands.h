/*
 * The human monitor's command table. Each command parses its words and
 * calls the QMP handler that does the work, then formats the result.
 */
#ifndef VIREO_MONITOR_HMP_COMMANDS_H
#define VIREO_MONITOR_HMP_COMMANDS_H

#include "util/error.h"
#include "util/strbuf.h"

typedef struct HmpCommand {
    const char *name;
    const char *args_help;      /* "" or "path queue [index]" */
    const char *help;
    int min_args, max_args;
    void (*fn)(StrBuf *out, int argc, char **argv, Error **errp);
} HmpCommand;

extern const HmpCommand hmp_commands[];

/* info virtio* (monitor/hmp-virtio.c) */
void hmp_info_virtio(StrBuf *out, int argc, char **argv, Error **errp);
void hmp_info_virtio_status(StrBuf *out, int argc, char **argv, Error **errp);
void hmp_info_virtio_queue_status(StrBuf *out, int argc, char **argv, Error **errp);
void hmp_info_virtio_vhost_queue_status(StrBuf *out, int argc, char **argv, Error **errp);
void hmp_info_virtio_queue_element(StrBuf *out, int argc, char **argv, Error **errp);
extern const HmpCommand hmp_info_commands[];

/* info block, info blockstats (monitor/qmp-block.c) */
void hmp_info_block(StrBuf *out, int argc, char **argv, Error **errp);
void hmp_info_blockstats(StrBuf *out, int argc, char **argv, Error **errp);

/* device_add / device_del (monitor/qmp-device.c) */
void hmp_device_add(StrBuf *out, int argc, char **argv, Error **errp);
void hmp_device_del(StrBuf *out, int argc, char **argv, Error **errp);

/* sendkey (monitor/qmp-input.c) */
void hmp_sendkey(StrBuf *out, int argc, char **argv, Error **errp);

/* dump-guest-memory, info dump (monitor/qmp-dump.c) */
void hmp_dump_guest_memory(StrBuf *out, int argc, char **argv, Error **errp);
void hmp_info_dump(StrBuf *out, int argc, char **argv, Error **errp);

/* info mtree (monitor/hmp-mtree.c) */
void hmp_info_mtree(StrBuf *out, int argc, char **argv, Error **errp);

/* info registers (monitor/hmp-registers.c) */
void hmp_info_registers(StrBuf *out, int argc, char **argv, Error **errp);

#endif
