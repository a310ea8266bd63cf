/*
 * Human monitor commands. Each one calls a QMP handler and formats what
 * it returns the way QEMU's monitor prints it, so people and scripts that
 * read HMP output see the familiar text.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chardev/chardev.h"
#include "core/qdev.h"
#include "monitor/hmp-commands.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "util/osdep.h"

static int by_name(const void *a, const void *b)
{
    const HmpCommand *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/*
 * One table's lines in name order (QEMU lists its help sorted), each
 * "PREFIXname args -- help"; only the command named `only` when given.
 */
static void print_table(StrBuf *out, const HmpCommand *table, const char *prefix,
                        const char *only)
{
    size_t n = 0;
    while (table[n].name) {
        n++;
    }
    const HmpCommand **sorted = xzalloc((n ? n : 1) * sizeof(*sorted));
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &table[i];
    }
    qsort(sorted, n, sizeof(*sorted), by_name);
    for (size_t i = 0; i < n; i++) {
        if (!only || !strcmp(only, sorted[i]->name)) {
            strbuf_printf(out, "%s%s %s -- %s\n", prefix, sorted[i]->name,
                          sorted[i]->args_help, sorted[i]->help);
        }
    }
    free(sorted);
}

/* help, help CMD, help info, help info SUBCMD */
static void hmp_help(StrBuf *out, int argc, char **argv, Error **errp)
{
    if (argc > 1 && !strcmp(argv[1], "info")) {
        print_table(out, hmp_info_commands, "info ", argc > 2 ? argv[2] : NULL);
        return;
    }
    print_table(out, hmp_commands, "", argc > 1 ? argv[1] : NULL);
}

static void hmp_info(StrBuf *out, int argc, char **argv, Error **errp)
{
    /* Only reached through hmp_execute's 'info' handling; lists subcommands. */
    print_table(out, hmp_info_commands, "info ", NULL);
}

/* QEMU's shape: the monitor's current vCPU (the first) marked with '*'. */
static void hmp_info_cpus(StrBuf *out, int argc, char **argv, Error **errp)
{
    CpuInfoFastList *list = qmp_query_cpus_fast(errp);
    for (CpuInfoFastList *l = list; l; l = l->next) {
        strbuf_printf(out, "%c CPU #%" PRId64 ": thread_id=%" PRId64 "\n",
                      l == list ? '*' : ' ', l->value->cpu_index, l->value->thread_id);
    }
    qapi_free_CpuInfoFastList(list);
}

static void hmp_info_kvm(StrBuf *out, int argc, char **argv, Error **errp)
{
    KvmInfo *info = qmp_query_kvm(errp);
    if (!info) {
        return;
    }
    strbuf_printf(out, "kvm support: %s\n",
                  !info->present ? "not compiled" : info->enabled ? "enabled" : "disabled");
    qapi_free_KvmInfo(info);
}

static void hmp_stop(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_stop(errp);
}

static void hmp_cont(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_cont(errp);
}

static void hmp_quit(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_quit(errp);
}

static void hmp_system_reset(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_system_reset(errp);
}

static void hmp_system_powerdown(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_system_powerdown(errp);
}

static void hmp_getfd(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_getfd(argv[1], errp);
}

static void hmp_closefd(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_closefd(argv[1], errp);
}

static void hmp_balloon(StrBuf *out, int argc, char **argv, Error **errp)
{
    char *end;
    long long mib = strtoll(argv[1], &end, 10);
    if (*end || mib < 0 || mib > (INT64_MAX >> 20)) {
        error_setg(errp, "invalid size '%s' (MiB)", argv[1]);
        return;
    }
    qmp_balloon((int64_t)mib << 20, errp);
}

static void hmp_info_balloon(StrBuf *out, int argc, char **argv, Error **errp)
{
    BalloonInfo *info = qmp_query_balloon(errp);
    if (info) {
        strbuf_printf(out, "balloon: actual=%" PRId64 "\n", info->actual >> 20);
    }
    qapi_free_BalloonInfo(info);
}

static void hmp_x_exit_preconfig(StrBuf *out, int argc, char **argv, Error **errp)
{
    qmp_x_exit_preconfig(errp);
}

/* ---- info ---- */

static void hmp_info_name(StrBuf *out, int argc, char **argv, Error **errp)
{
    NameInfo *info = qmp_query_name(errp);
    if (info && info->has_name) {
        strbuf_printf(out, "%s\n", info->name);
    }
    qapi_free_NameInfo(info);
}

static void hmp_info_status(StrBuf *out, int argc, char **argv, Error **errp)
{
    StatusInfo *info = qmp_query_status(errp);
    if (!info) {
        return;
    }
    strbuf_printf(out, "VM status: %s", info->running ? "running" : "paused");
    if (!info->running && info->status != RUN_STATE_PAUSED) {
        strbuf_printf(out, " (%s)", RunState_str[info->status]);
    }
    strbuf_puts(out, "\n");
    qapi_free_StatusInfo(info);
}

static void hmp_info_iothreads(StrBuf *out, int argc, char **argv, Error **errp)
{
    IOThreadInfoList *list = qmp_query_iothreads(errp);
    for (IOThreadInfoList *l = list; l; l = l->next) {
        IOThreadInfo *t = l->value;
        strbuf_printf(out, "%s:\n", t->id);
        strbuf_printf(out, "  thread_id=%" PRId64 "\n", t->thread_id);
        strbuf_printf(out, "  poll-max-ns=%" PRId64 "\n", t->poll_max_ns);
        strbuf_printf(out, "  poll-grow=%" PRId64 "\n", t->poll_grow);
        strbuf_printf(out, "  poll-shrink=%" PRId64 "\n", t->poll_shrink);
        strbuf_printf(out, "  aio-max-batch=%" PRId64 "\n", t->aio_max_batch);
    }
    qapi_free_IOThreadInfoList(list);
}

static void hmp_info_version(StrBuf *out, int argc, char **argv, Error **errp)
{
    VersionInfo *v = qmp_query_version(errp);
    strbuf_printf(out, "%" PRId64 ".%" PRId64 ".%" PRId64 " (%s)\n", v->qemu->major,
                  v->qemu->minor, v->qemu->micro, v->package);
    qapi_free_VersionInfo(v);
}

static void hmp_info_qtree(StrBuf *out, int argc, char **argv, Error **errp)
{
    qdev_print_tree(out);
}

static void print_chardev(void *ctx, Chardev *chr)
{
    strbuf_printf(ctx, "%s: filename=%s\n", chardev_id(chr), chardev_filename(chr));
}

static void hmp_info_chardev(StrBuf *out, int argc, char **argv, Error **errp)
{
    chardev_foreach(print_chardev, out);
}

static void hmp_info_fdsets(StrBuf *out, int argc, char **argv, Error **errp)
{
    FdsetInfoList *list = qmp_query_fdsets(errp);
    for (FdsetInfoList *l = list; l; l = l->next) {
        strbuf_printf(out, "fdset %" PRId64 ":\n", l->value->fdset_id);
        for (FdsetFdInfoList *f = l->value->fds; f; f = f->next) {
            strbuf_printf(out, "  fd %" PRId64 "%s%s\n", f->value->fd,
                          f->value->has_opaque ? " opaque=" : "",
                          f->value->has_opaque ? f->value->opaque : "");
        }
    }
    qapi_free_FdsetInfoList(list);
}

const HmpCommand hmp_commands[] = {
    { "help", "[cmd]", "show the help", 0, 2, hmp_help },
    { "info", "[subcommand]", "show various information about the system state", 0, 1, hmp_info },
    { "stop", "", "stop emulation", 0, 0, hmp_stop },
    { "cont", "", "resume emulation", 0, 0, hmp_cont },
    { "c", "", "resume emulation", 0, 0, hmp_cont },
    { "quit", "", "quit the emulator", 0, 0, hmp_quit },
    { "q", "", "quit the emulator", 0, 0, hmp_quit },
    { "system_reset", "", "reset the system", 0, 0, hmp_system_reset },
    { "system_powerdown", "", "send system power down event", 0, 0, hmp_system_powerdown },
    { "getfd", "getfd name", "receive a file descriptor via SCM rights and assign it a name", 1, 1, hmp_getfd },
    { "closefd", "closefd name", "close a file descriptor previously passed via SCM rights", 1, 1, hmp_closefd },
    { "x_exit_preconfig", "", "exit the preconfig state", 0, 0, hmp_x_exit_preconfig },
    { "balloon", "target", "request VM to change its memory allocation (in MB)", 1, 1, hmp_balloon },
    { "device_add", "driver[,prop=value][,...]", "add device, like -device on the command line",
      1, 1, hmp_device_add },
    { "device_del", "device", "remove device", 1, 1, hmp_device_del },
    { "sendkey", "keys [hold_ms]",
      "send keys to the VM (e.g. 'sendkey ctrl-alt-f1', default hold time=100 ms)", 1, 2, hmp_sendkey },
    { "dump-guest-memory", "[-p] [-d] [-z|-l|-s|-w] filename [begin length]",
      "dump guest memory into file 'filename'.", 1, 8, hmp_dump_guest_memory },
    { NULL },
};

const HmpCommand hmp_info_commands[] = {
    { "version", "", "show the version of the emulator", 0, 0, hmp_info_version },
    { "name", "", "show the current VM name", 0, 0, hmp_info_name },
    { "cpus", "", "show infos for each CPU", 0, 0, hmp_info_cpus },
    { "registers", "[-a] [vcpu]", "show the cpu registers (-a: all - show register info "
      "for all cpus; vcpu: vCPU to query; show the current CPU's registers if omitted)", 0, 2,
      hmp_info_registers },
    { "kvm", "", "show KVM information", 0, 0, hmp_info_kvm },
    { "status", "", "show the current VM status (running|paused)", 0, 0, hmp_info_status },
    { "iothreads", "", "show iothreads", 0, 0, hmp_info_iothreads },
    { "qtree", "", "show device tree", 0, 0, hmp_info_qtree },
    { "chardev", "", "show the character devices", 0, 0, hmp_info_chardev },
    { "fdsets", "", "show the fd sets", 0, 0, hmp_info_fdsets },
    { "balloon", "", "show balloon information", 0, 0, hmp_info_balloon },
    { "block", "[-n] [-v] [device]", "show info of one block device or all block devices "
      "(-n: show named nodes)", 0, 3, hmp_info_block },
    { "blockstats", "", "show block device statistics", 0, 0, hmp_info_blockstats },
    { "dump", "", "Display the latest dump status", 0, 0, hmp_info_dump },
    { "mtree", "", "show memory tree", 0, 0, hmp_info_mtree },
    { "virtio", "", "List all available virtio devices", 0, 0, hmp_info_virtio },
    { "virtio-status", "path", "Display status of a given virtio device", 1, 1,
      hmp_info_virtio_status },
    { "virtio-queue-status", "path queue", "Display status of a given virtio queue", 2, 2,
      hmp_info_virtio_queue_status },
    { "virtio-vhost-queue-status", "path queue",
      "Display status of a given vhost queue", 2, 2, hmp_info_virtio_vhost_queue_status },
    { "virtio-queue-element", "path queue [index]",
      "Display element of a given virtio queue", 2, 3, hmp_info_virtio_queue_element },
    { NULL },
};
