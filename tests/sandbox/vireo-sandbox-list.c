/*
 * vireo-sandbox-list: print the system calls each kind of thread and each
 * daemon may make once confined, as this build's rule tables make them.
 *
 * usage: vireo-sandbox-list [--sandbox OPTS] [--pfc FILE] [NAME...]
 *   NAME       a kind (main, vcpu, iothread, block-worker, log-writer, daemon,
 *              nbd-worker, compress-worker) or a daemon (vireo-storage-daemon,
 *              ...); all of them when none is named
 *   --sandbox  vireo's -sandbox argument shaping the lists (default: "on")
 *   --pfc      also append libseccomp's text of each filter built to FILE
 *
 * A thread's effective list is its own list within the process's (the
 * main loop's, or the daemon's): filters stack and the narrower wins.
 * Sanitizer builds add what their run-times need; the header says which.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/sandbox-internal.h"

static int usage(void)
{
    fprintf(stderr, "usage: vireo-sandbox-list [--sandbox OPTS] [--pfc FILE] [NAME...]\n");
    return 1;
}

static bool list_one(const char *name, int pfc_fd)
{
    Error *err = NULL;
    bool found = false, ok = true;
    for (int k = 0; k < SANDBOX_NR_KINDS && !found; k++) {
        if (!name || !strcmp(name, sandbox_kind_id((SandboxKind)k))) {
            found = !!name;
            ok = sandbox_list(stdout, &sandbox_config, (SandboxKind)k, -1, pfc_fd, &err) && ok;
            putchar('\n');
        }
    }
    for (int p = 0; p < SANDBOX_NR_PROGRAMS && !found; p++) {
        if (!name || !strcmp(name, sandbox_program_name((SandboxProgram)p))) {
            found = !!name;
            ok = sandbox_list(stdout, &sandbox_config, SANDBOX_MAIN, p, pfc_fd, &err) && ok;
            putchar('\n');
        }
    }
    if (err) {
        error_report_err(err);
    }
    if (name && !found) {
        fprintf(stderr, "vireo-sandbox-list: no kind or program is called '%s'\n", name);
        return false;
    }
    return ok;
}

int main(int argc, char **argv)
{
    const char *opts = "on", *pfc = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--sandbox") && i + 1 < argc) {
            opts = argv[++i];
        } else if (!strcmp(argv[i], "--pfc") && i + 1 < argc) {
            pfc = argv[++i];
        } else {
            return usage();
        }
    }
    Error *err = NULL;
    if (!sandbox_opt_sandbox(opts, &err)) {
        error_report_err(err);
        return 1;
    }
    int pfc_fd = -1;
    if (pfc && (pfc_fd = open(pfc, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        perror(pfc);
        return 1;
    }
    printf("# vireo's seccomp allow-lists for -sandbox %s%s\n\n", opts,
           sandbox_sanitizer_build() ? " (a sanitizer build: their run-times' calls "
                                                   "are in every list)" : "");
    bool ok = true;
    if (i == argc) {
        ok = list_one(NULL, pfc_fd);
    }
    for (; i < argc; i++) {
        ok = list_one(argv[i], pfc_fd) && ok;
    }
    fflush(stdout);
    if (pfc_fd >= 0) {
        close(pfc_fd);
    }
    return ok ? 0 : 1;
}
