/*
 * What vireo's seccomp filters add to each system call its I/O paths make.
 *
 * For each kind of thread on a guest's disk and network path, a child
 * process loads the same filters such a thread runs under in vireo
 * (the process-wide list, then the kind's own, both built by the sandbox
 * library from its real rule tables, as with -sandbox on), then times the
 * calls that thread makes per request. A second child times the same calls
 * with no filter. The difference, per call, times the number of calls a
 * workload makes (bench/sandbox/run counts them under a real guest) is the
 * filters' cost on that workload.
 *
 * Each call is one that returns at once without side effects, so the time
 * is the kernel's entry and exit plus, when filtered, the BPF programs:
 * KVM_RUN and the other ioctls go to an eventfd, which refuses them with
 * ENOTTY after the filter has passed them on the request number alone.
 *
 * Usage: syscall-cost [--iterations N]   prints one line per kind and call:
 *   COST kind|call|unfiltered_ns|filtered_ns
 */
#include <errno.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

typedef struct Call {
    const char *name;
    void (*run)(int efd, int file);
} Call;

static uint32_t futex_word;
static char io_buf[4096] __attribute__((aligned(4096)));

static void call_kvm_run(int efd, int file) { (void)file; (void)!ioctl(efd, KVM_RUN, 0); }
static void call_read(int efd, int file)
{
    uint64_t v;
    (void)file;
    (void)!read(efd, &v, sizeof(v));
}
static void call_write(int efd, int file)
{
    uint64_t one = 1, v;
    (void)file;
    (void)!write(efd, &one, sizeof(one));
    (void)!read(efd, &v, sizeof(v));       /* keep the counter from saturating */
}
static void call_futex_wake(int efd, int file)
{
    (void)efd;
    (void)file;
    syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
static void call_pwritev(int efd, int file)
{
    struct iovec iov = { io_buf, sizeof(io_buf) };
    (void)efd;
    (void)!pwritev(file, &iov, 1, 0);
}
static void call_ppoll(int efd, int file)
{
    struct timespec zero = { 0, 0 };
    (void)file;
    (void)!syscall(SYS_ppoll, NULL, 0, &zero, NULL, 8);
    (void)efd;
}

static const Call calls[] = {
    { "ioctl(KVM_RUN)", call_kvm_run },
    { "read(eventfd)", call_read },
    { "write+read(eventfd)", call_write },
    { "futex(WAKE)", call_futex_wake },
    { "pwritev(4KiB)", call_pwritev },
    { "ppoll(0)", call_ppoll },
};

/* The calls each kind of thread makes on the guest I/O path. */
typedef struct KindCalls {
    SandboxKind kind;
    const char *calls[6];
} KindCalls;

static const KindCalls kinds[] = {
    { SANDBOX_VCPU, { "ioctl(KVM_RUN)", "write+read(eventfd)", "futex(WAKE)", NULL } },
    { SANDBOX_MAIN, { "read(eventfd)", "write+read(eventfd)", "futex(WAKE)", "ppoll(0)", NULL } },
    { SANDBOX_IOTHREAD, { "read(eventfd)", "write+read(eventfd)", "futex(WAKE)", "ppoll(0)",
                          NULL } },
    { SANDBOX_BLOCK_WORKER, { "pwritev(4KiB)", "write+read(eventfd)", "futex(WAKE)", NULL } },
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static const Call *find_call(const char *name)
{
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        if (!strcmp(calls[i].name, name)) {
            return &calls[i];
        }
    }
    return NULL;
}

/* Best of five rounds: the least disturbed one is the call's own cost. */
static double time_call(const Call *c, int efd, int file, long iterations)
{
    double best = 0;
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iterations; i++) {
            c->run(efd, file);
        }
        double per = (now_ns() - t0) / (double)iterations;
        best = round == 0 || per < best ? per : best;
    }
    return best;
}

/* In a child: load the filters when asked, time the kind's calls, write ns to the pipe. */
static int measure(const KindCalls *k, bool filtered, long iterations, double *ns, int n)
{
    int pfd[2];
    if (pipe(pfd) < 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        int file = memfd_create("syscall-cost", MFD_CLOEXEC);
        if (efd < 0 || file < 0 || ftruncate(file, sizeof(io_buf)) < 0) {
            _exit(2);
        }
        Error *err = NULL;
        if (filtered && (!sandbox_install(&sandbox_config, SANDBOX_MAIN, false, &err) ||
                         (k->kind != SANDBOX_MAIN &&
                          !sandbox_install(&sandbox_config, k->kind, false, &err)))) {
            error_report_err(err);
            _exit(3);
        }
        for (int i = 0; i < n; i++) {
            double t = time_call(find_call(k->calls[i]), efd, file, iterations);
            if (write(pfd[1], &t, sizeof(t)) != sizeof(t)) {
                _exit(4);
            }
        }
        _exit(0);
    }
    close(pfd[1]);
    int got = 0;
    while (got < n && read(pfd[0], &ns[got], sizeof(ns[got])) == sizeof(ns[got])) {
        got++;
    }
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    return got == n && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    long iterations = 200000;
    if (argc == 3 && !strcmp(argv[1], "--iterations")) {
        iterations = strtol(argv[2], NULL, 0);
    } else if (argc != 1 || iterations <= 0) {
        fprintf(stderr, "usage: %s [--iterations N]\n", argv[0]);
        return 2;
    }
    Error *err = NULL;
    if (!sandbox_opt_sandbox("on", &err)) {
        error_report_err(err);
        return 1;
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        int n = 0;
        while (n < 6 && kinds[k].calls[n]) {
            n++;
        }
        double off[6], on[6];
        if (measure(&kinds[k], false, iterations, off, n) < 0 ||
            measure(&kinds[k], true, iterations, on, n) < 0) {
            fprintf(stderr, "syscall-cost: measuring %s failed\n",
                    sandbox_kind_name(kinds[k].kind));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            printf("COST %s|%s|%.0f|%.0f\n", sandbox_kind_name(kinds[k].kind),
                   kinds[k].calls[i], off[i], on[i]);
        }
    }
    return 0;
}
