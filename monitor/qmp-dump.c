/*
 * dump-guest-memory, query-dump, query-dump-guest-memory-capability and
 * DUMP_COMPLETED; HMP dump-guest-memory and info dump.
 *
 * The file itself is machine/dump-elf.c's. The VM is paused while a dump is
 * written (and resumed after if it was running and nobody stopped it in
 * between), so memory and registers agree. A detached dump is written in
 * slices from a main-loop timer, so the monitor keeps answering and a quit
 * in the middle never races with a thread reading guest RAM.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/main-loop.h"
#include "core/runstate.h"
#include "machine/dump-elf.h"
#include "machine/machine.h"
#include "monitor/hmp-commands.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "util/osdep.h"

#define DETACHED_SLICE  (16u << 20)     /* RAM bytes per main-loop turn */

static struct {
    DumpStatus status;
    uint64_t total, completed;
    DumpElf *elf;       /* while active */
    int fd;
    bool resume;        /* we paused a running VM */
    Timer *timer;
} dump = { .status = DUMP_STATUS_NONE, .fd = -1 };

static DumpQueryResult *progress(void)
{
    DumpQueryResult *r = xzalloc(sizeof(*r));
    if (dump.elf) {
        dump.completed = dump_elf_completed(dump.elf);
    }
    r->status = dump.status;
    r->completed = dump.completed;
    r->total = dump.total;
    return r;
}

/* The end of a dump that started writing: event, file closed, VM resumed. */
static void finish(Error *err)
{
    dump.completed = dump_elf_completed(dump.elf);
    dump_elf_free(dump.elf);
    dump.elf = NULL;
    close(dump.fd);
    dump.fd = -1;
    dump.status = err ? DUMP_STATUS_FAILED : DUMP_STATUS_COMPLETED;
    DumpQueryResult *r = progress();
    qapi_event_send_dump_completed(r, err != NULL, err ? error_get_pretty(err) : NULL);
    qapi_free_DumpQueryResult(r);
    if (dump.resume && runstate_get() == RUN_STATE_SAVE_VM) {
        vm_start();
    }
    dump.resume = false;
}

static void detached_slice(void *opaque)
{
    Error *err = NULL;
    (void)opaque;
    int rc = dump_elf_step(dump.elf, dump.fd, DETACHED_SLICE, &err);
    if (rc == 0) {
        timer_mod(dump.timer, clock_get_ns(CLOCK_REALTIME_HOST));
        return;
    }
    finish(err);
    error_free(err);
}

/* "file:PATH" or "fd:NAME" to a descriptor we own, or -1. */
static int open_protocol(const char *protocol, Error **errp)
{
    if (!strncmp(protocol, "fd:", 3)) {
        return monitor_take_named_fd(protocol + 3, errp);
    }
    if (!strncmp(protocol, "file:", 5)) {
        return vireo_open(protocol + 5, O_WRONLY | O_CREAT | O_TRUNC, S_IRUSR, errp);
    }
    error_setg(errp, "Invalid parameter 'protocol'");
    return -1;
}

void qmp_dump_guest_memory(bool paging, const char *protocol, bool has_detach, bool detach,
                           bool has_begin, int64_t begin, bool has_length, int64_t length,
                           bool has_format, DumpGuestMemoryFormat format, Error **errp)
{
    if (dump.status == DUMP_STATUS_ACTIVE) {
        error_setg(errp, "There is a dump in process, please wait.");
        return;
    }
    if (has_begin && !has_length) {
        error_setg(errp, "Parameter 'length' is missing");
        return;
    }
    if (!has_begin && has_length) {
        error_setg(errp, "Parameter 'begin' is missing");
        return;
    }
    if (has_format && format != DUMP_GUEST_MEMORY_FORMAT_ELF) {
        if (paging || has_begin) {
            error_setg(errp, "kdump-compressed format doesn't support paging or filter");
        } else {
            error_setg(errp, "%s is not available now", DumpGuestMemoryFormat_str[format]);
        }
        return;
    }
    if (paging) {
        error_setg(errp, "dump-guest-memory: paging is not supported by vireo "
                   "(it dumps guest-physical memory; use paging=false)");
        return;
    }
    GuestMemory *mem = machine_guest_memory();
    if (strncmp(protocol, "fd:", 3) != 0 && strncmp(protocol, "file:", 5) != 0) {
        error_setg(errp, "Invalid parameter 'protocol'");
        return;
    }
    if (!mem || !mem->nr_regions) {
        /* Checked before anything is opened: no empty file is left behind. */
        error_setg(errp, "dump: no guest memory to dump");
        dump.status = DUMP_STATUS_FAILED;
        dump.total = dump.completed = 0;
        return;
    }
    int fd = open_protocol(protocol, errp);
    if (fd < 0) {
        return;
    }

    /* From here on a failure leaves the status "failed", as on QEMU. */
    DumpVcpu *vcpus = NULL;
    unsigned nr_vcpus = 0;
    dump.total = dump.completed = 0;
    if (has_begin && begin < 0) {
        error_setg(errp, "Invalid parameter 'begin'");
    } else if (has_length && length == 0) {
        error_setg(errp, "Invalid parameter 'length'");
    } else if (machine_dump_vcpus(&vcpus, &nr_vcpus, errp)) {
        /* A negative length wraps past the end: nothing, as on QEMU. */
        uint64_t len = has_length && length < 0 ? 0 : (uint64_t)length;
        dump.elf = dump_elf_new(mem, vcpus, nr_vcpus, has_begin, begin, len, errp);
        free(vcpus);
    }
    if (!dump.elf) {
        close(fd);
        dump.status = DUMP_STATUS_FAILED;
        return;
    }
    dump.fd = fd;
    dump.total = dump_elf_total(dump.elf);
    dump.status = DUMP_STATUS_ACTIVE;
    if (runstate_is_running()) {
        vm_stop(RUN_STATE_SAVE_VM);
        dump.resume = true;
    }

    if (has_detach && detach) {
        if (!dump.timer) {
            dump.timer = timer_new(CLOCK_REALTIME_HOST, detached_slice, NULL);
        }
        timer_mod(dump.timer, clock_get_ns(CLOCK_REALTIME_HOST));
        return;
    }
    Error *err = NULL;
    int rc;
    while ((rc = dump_elf_step(dump.elf, dump.fd, UINT64_MAX, &err)) == 0) {
    }
    (void)rc;
    finish(err);
    error_propagate(errp, err);
}

DumpQueryResult *qmp_query_dump(Error **errp)
{
    (void)errp;
    return progress();
}

DumpGuestMemoryCapability *qmp_query_dump_guest_memory_capability(Error **errp)
{
    (void)errp;
    DumpGuestMemoryCapability *cap = xzalloc(sizeof(*cap));
    cap->formats = xzalloc(sizeof(*cap->formats));
    cap->formats->value = DUMP_GUEST_MEMORY_FORMAT_ELF;
    return cap;
}

/* dump-guest-memory [-p] [-d] [-z|-l|-s|-w] filename [begin length] */
void hmp_dump_guest_memory(StrBuf *out, int argc, char **argv, Error **errp)
{
    bool paging = false, detach = false, has_format = false;
    DumpGuestMemoryFormat format = DUMP_GUEST_MEMORY_FORMAT_ELF;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        for (const char *f = argv[i] + 1; *f; f++) {
            switch (*f) {
            case 'p': paging = true; break;
            case 'd': detach = true; break;
            case 'z': has_format = true; format = DUMP_GUEST_MEMORY_FORMAT_KDUMP_ZLIB; break;
            case 'l': has_format = true; format = DUMP_GUEST_MEMORY_FORMAT_KDUMP_LZO; break;
            case 's': has_format = true; format = DUMP_GUEST_MEMORY_FORMAT_KDUMP_SNAPPY; break;
            case 'w': has_format = true; format = DUMP_GUEST_MEMORY_FORMAT_WIN_DMP; break;
            default:
                strbuf_printf(out, "dump-guest-memory: unsupported option -%c\n"
                              "Try \"help dump-guest-memory\" for more information\n", *f);
                return;
            }
        }
    }
    int left = argc - i;
    if (left != 1 && left != 3) {
        strbuf_printf(out, "dump-guest-memory: filename expected\n");
        return;
    }
    int64_t begin = 0, length = 0;
    if (left == 3) {
        char *end1, *end2;
        begin = strtoll(argv[i + 1], &end1, 0);
        length = strtoll(argv[i + 2], &end2, 0);
        if (*end1 || *end2 || end1 == argv[i + 1] || end2 == argv[i + 2]) {
            strbuf_printf(out, "dump-guest-memory: invalid begin or length\n");
            return;
        }
    }
    char *protocol = xasprintf("file:%s", argv[i]);
    qmp_dump_guest_memory(paging, protocol, true, detach, left == 3, begin, left == 3, length,
                          has_format, format, errp);
    free(protocol);
}

/* info dump: QEMU's lines */
void hmp_info_dump(StrBuf *out, int argc, char **argv, Error **errp)
{
    (void)argc; (void)argv; (void)errp;
    DumpQueryResult *r = progress();
    strbuf_printf(out, "Status: %s\n", DumpStatus_str[r->status]);
    if (r->status == DUMP_STATUS_ACTIVE && r->total) {
        strbuf_printf(out, "Finished: %.2f %%\n", (double)r->completed * 100.0 / (double)r->total);
    }
    qapi_free_DumpQueryResult(r);
}
