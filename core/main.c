/*
 * vireo: start-up, the order things are built in, and shutdown.
 *
 *   parse options -> (daemonize) -> main loop -> fd sets, chardevs,
 *   iothreads -> monitors -> [preconfig: wait for x-exit-preconfig] ->
 *   machine (accelerator, RAM, devices, kernel) -> run -> clean up.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/node.h"
#include "chardev/chardev.h"
#include "core/iothread.h"
#include "core/main-loop.h"
#include "core/options.h"
#include "core/runstate.h"
#include "core/vm-config.h"
#include "machine/accel-qtest.h"
#include "machine/machine.h"
#include "memory/guest-memory.h"
#include "monitor/monitor.h"
#include "monitor/qmp-nbd.h"
#include "qapi/qapi-commands.h"
#include "sandbox/sandbox.h"
#include "util/fdset.h"
#include "util/keyval.h"
#include "util/log.h"
#include "util/osdep.h"


static int daemon_pipe = -1;
static int signal_fd = -1;
static bool pidfile_written;            /* ours to unlink at exit */
static volatile sig_atomic_t exit_status;

/* ---- start-up steps ---- */

static bool create_fdsets(Error **errp)
{
    for (int i = 0; i < startup.nr_add_fds; i++) {
        KeyValList kv;
        keyval_parse(startup.add_fds[i], NULL, NULL, &kv, errp);
        int64_t fd = (int64_t)keyval_get_number(&kv, "fd", UINT64_MAX);
        int64_t set = (int64_t)keyval_get_number(&kv, "set", UINT64_MAX);
        const char *opaque = keyval_get(&kv, "opaque");
        bool ok = false;
        if (fd < 0 || fd > INT32_MAX || set < 0) {
            error_setg(errp, "-add-fd: fd and set must be non-negative numbers");
        } else if (fd <= STDERR_FILENO) {
            error_setg(errp, "-add-fd: fd cannot be a standard I/O stream");
        } else if (fcntl((int)fd, F_GETFD) < 0) {
            error_setg(errp, "-add-fd: fd %lld is not valid", (long long)fd);
        } else {
            /* Own a close-on-exec copy; the inherited number stays untouched. */
            int dup = fcntl((int)fd, F_DUPFD_CLOEXEC, 3);
            ok = dup >= 0 && fdset_add(set, dup, opaque, NULL, errp);
        }
        keyval_free(&kv);
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool create_chardevs(Error **errp)
{
    for (int i = 0; i < startup.nr_chardevs; i++) {
        if (!chardev_new_from_opts(startup.chardevs[i], errp)) {
            error_prepend(errp, "-chardev %s: ", startup.chardevs[i]);
            return false;
        }
    }
    return true;
}

static bool create_iothreads(Error **errp)
{
    for (int i = 0; i < startup.nr_iothreads; i++) {
        KeyValList kv;
        if (!keyval_parse(startup.iothreads[i], "qom-type", iothread_params, &kv, errp)) {
            return false;
        }
        IOThread *t = iothread_create(&kv, errp);
        keyval_free(&kv);
        if (!t) {
            error_prepend(errp, "-object %s: ", startup.iothreads[i]);
            return false;
        }
    }
    return true;
}

static bool create_monitors(Error **errp)
{
    for (MonitorSpec *m = startup.monitors; m; m = m->next) {
        Chardev *chr = m->legacy ? chardev_new_from_legacy(m->chardev, "compat_monitor", errp)
                                 : chardev_find(m->chardev);
        if (!chr) {
            if (!m->legacy) {
                error_setg(errp, "-mon: chardev '%s' not found", m->chardev);
            }
            return false;
        }
        bool ok = m->qmp ? monitor_new_qmp(chr, m->pretty, errp) : monitor_new_hmp(chr, errp);
        if (!ok) {
            return false;
        }
    }
    return true;
}

/*
 * The qtest chardev connects at start-up, before --preconfig waits, as a
 * test program waits for both its sockets before it sends anything. The
 * accelerator reaches guest RAM through the machine's memory map, which
 * the machine fills in when it is built.
 */
static bool start_qtest(Error **errp)
{
    if (!startup.qtest_chardev) {
        return true;
    }
    Chardev *chr = chardev_new_from_legacy(startup.qtest_chardev, "qtest", errp);
    return chr && qtest_accel_set_log(startup.qtest_log, errp) &&
           qtest_accel_init(chr, machine_guest_memory(), errp);
}

static bool build_machine(Error **errp)
{
    if (!vm_config.accel) {
        vm_config.accel = xstrdup("kvm");
    }
    return machine_init(&vm_config, errp);
}

/*
 * The none board under KVM has no vCPU and no test driving it: there is
 * nothing to run, so it stays in prelaunch and 'cont' says why.
 */
static bool nothing_to_run(void)
{
    return machine_board_of(&vm_config) == MACHINE_BOARD_NONE &&
           (!vm_config.accel || strcmp(vm_config.accel, "qtest") != 0);
}

static bool start_machine(Error **errp)
{
    /* Everything privileged is open now; the guest has not run yet. */
    if (!sandbox_lock_down(errp)) {
        return false;
    }
    iothread_wake_all();    /* each stacks its own filter before guest work arrives */
    if (vm_config.start_paused || nothing_to_run()) {
        runstate_set(RUN_STATE_PRELAUNCH);
    } else {
        vm_start();
    }
    machine_start();
    return true;
}

/* ---- commands that drive the life cycle ---- */

void qmp_x_exit_preconfig(Error **errp)
{
    if (runstate_get() != RUN_STATE_PRECONFIG) {
        error_setg(errp, "The command is permitted only before machine initialization");
        return;
    }
    runstate_set(RUN_STATE_PRELAUNCH);
    if (!build_machine(errp)) {
        runstate_set(RUN_STATE_PRECONFIG);
        return;
    }
    if (!start_machine(errp)) {
        /* Half confined (chroot, user) is no state to run a guest in. */
        system_shutdown_request(SHUTDOWN_CAUSE_HOST_ERROR);
    }
}

void qmp_stop(Error **errp)
{
    if (runstate_get() == RUN_STATE_PRECONFIG) {
        error_setg(errp, "The command 'stop' is permitted only after machine initialization has completed");
        return;
    }
    vm_stop(RUN_STATE_PAUSED);
}

void qmp_cont(Error **errp)
{
    RunState s = runstate_get();
    if (s == RUN_STATE_SHUTDOWN || s == RUN_STATE_GUEST_PANICKED ||
        s == RUN_STATE_INTERNAL_ERROR) {
        error_setg(errp, "Resetting the Virtual Machine is required");
        return;
    }
    if (s != RUN_STATE_PRECONFIG && nothing_to_run()) {
        error_setg(errp, "machine 'none' has nothing to run: it has no vCPUs and no kernel");
        return;
    }
    vm_start();
}

void qmp_quit(Error **errp)
{
    system_shutdown_request(SHUTDOWN_CAUSE_HOST_QMP_QUIT);
}

StatusInfo *qmp_query_status(Error **errp)
{
    StatusInfo *info = xzalloc(sizeof(*info));
    info->running = runstate_is_running();
    info->singlestep = false;
    /* Waiting for x-exit-preconfig is "prelaunch" to clients, as in QEMU 7.2. */
    info->status = runstate_get() == RUN_STATE_PRECONFIG ? RUN_STATE_PRELAUNCH : runstate_get();
    return info;
}

NameInfo *qmp_query_name(Error **errp)
{
    NameInfo *info = xzalloc(sizeof(*info));
    if (vm_config.name) {
        info->has_name = true;
        info->name = xstrdup(vm_config.name);
    }
    return info;
}

void qmp_system_reset(Error **errp)
{
    system_reset_request(SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
}

void qmp_system_powerdown(Error **errp)
{
    system_powerdown_request();
}

/* ---- process plumbing ---- */

static void signal_ready(void *opaque)
{
    struct signalfd_siginfo si;
    while (read(signal_fd, &si, sizeof(si)) == sizeof(si)) {
        system_shutdown_request(SHUTDOWN_CAUSE_HOST_SIGNAL);
    }
}

static bool setup_signals(Error **errp)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    /* Blocked in every thread created from now on; read through signalfd. */
    block_quit_signals(&set);
    signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) {
        error_setg_errno(errp, errno, "signalfd");
        return false;
    }
    main_loop_set_fd_handler(signal_fd, signal_ready, NULL, NULL);
    main_loop_set_stop_request_fd(signal_fd);
    return true;
}

/* Why a pid file could not be opened, in words a user can act on. */
static void pidfile_open_error(const char *path, int err, Error **errp)
{
    if (err == ELOOP) {
        error_setg(errp, "cannot open pid file '%s': it is a symbolic link", path);
    } else {
        error_setg_errno(errp, err, "cannot open pid file '%s'", path);
    }
}

static bool write_pidfile(const char *path, Error **errp)
{
    /* 0600 as QEMU; O_NOFOLLOW: a symlink planted at the path is refused,
     * not followed to somewhere else; O_NONBLOCK: a FIFO there cannot stall
     * start-up (it is refused below). */
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0) {
        pidfile_open_error(path, errno, errp);
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        error_setg(errp, "pid file '%s' is not a regular file", path);
        close(fd);
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        error_setg(errp, "pid file '%s' is locked by another process", path);
        close(fd);
        return false;
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d\n", getpid());
    /* An older file of ours may have been created with wider permissions. */
    if (fchmod(fd, 0600) < 0 || ftruncate(fd, 0) < 0 || write_full(fd, buf, (size_t)len) != len) {
        error_setg_errno(errp, errno, "cannot write pid file '%s'", path);
        close(fd);
        return false;
    }
    pidfile_written = true;
    /* The descriptor stays open: the lock lives as long as vireo. */
    return true;
}

static void remove_pidfile(void)
{
    /* Only our own: a failed start must not delete another vireo's pid file. */
    if (pidfile_written) {
        unlink(startup.pidfile);
    }
}

static void exit_at_once(int sig)
{
    (void)sig;
    _exit(exit_status);
}

/*
 * Shutdown is bounded (chardev and log flushes have deadlines), but a user
 * who signals a second time means "now": from here on SIGTERM/SIGINT end
 * the process at once, without the rest of the clean-up.
 */
static void exit_on_second_signal(int status)
{
    exit_status = status;
    struct sigaction sa = { .sa_handler = exit_at_once };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* The parent waits until the child reports start-up success or failure. */
static void daemonize_start(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        perror("vireo: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("vireo: fork");
        exit(1);
    }
    if (pid > 0) {
        close(fds[1]);
        char status = 1;
        ssize_t n = read_full(fds[0], &status, 1);
        _exit(n == 1 ? status : 1);
    }
    close(fds[0]);
    daemon_pipe = fds[1];
    setsid();
}

static void daemonize_finish(int status)
{
    if (daemon_pipe < 0) {
        return;
    }
    char c = (char)status;
    if (write(daemon_pipe, &c, 1) < 0) {
        /* the parent is gone: nothing to tell */
    }
    close(daemon_pipe);
    daemon_pipe = -1;
    if (status == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(null);
    }
}

static bool uses_stdio(void)
{
    for (MonitorSpec *m = startup.monitors; m; m = m->next) {
        if (m->legacy && !strcmp(m->chardev, "stdio")) {
            return true;
        }
    }
    for (int i = 0; i < vm_config.nr_serial; i++) {
        if (!strcmp(vm_config.serial[i], "stdio")) {
            return true;
        }
    }
    for (int i = 0; i < startup.nr_chardevs; i++) {
        if (!strncmp(startup.chardevs[i], "stdio", 5)) {
            return true;
        }
    }
    return false;
}

static void list_machines(void)
{
    machine_list_types(stdout);
}

static bool start(Error **errp)
{
    if (!main_loop_init(errp) || !setup_signals(errp) || !create_fdsets(errp) ||
        !create_chardevs(errp) || !create_iothreads(errp) || !create_monitors(errp) ||
        !start_qtest(errp) || !block_options_create_nodes(errp)) {
        return false;
    }
    /* Before the machine starts: -chroot and -runas may take the path away. */
    if (startup.pidfile && !write_pidfile(startup.pidfile, errp)) {
        return false;
    }
    if (vm_config.preconfig) {
        runstate_set(RUN_STATE_PRECONFIG);
        return true;
    }
    return build_machine(errp) && start_machine(errp);
}

int main(int argc, char **argv)
{
    sandbox_note_inherited_fds();
    int rc = options_parse(argc, argv);
    if (rc <= 0) {
        return rc < 0 ? 1 : 0;
    }
    if (startup.machine_help) {
        list_machines();
        return 0;
    }
    if (!machine_type_valid(vm_config.machine_type)) {
        error_report("unsupported machine type \"%s\" (-machine help lists them)",
                     vm_config.machine_type);
        return 1;
    }
    sandbox_close_inherited_fds(argc, argv);
    if (startup.daemonize) {
        if (uses_stdio()) {
            error_report("cannot use stdio with -daemonize");
            return 1;
        }
        daemonize_start();
    }
    Error *err = NULL;
    if (!start(&err)) {
        error_report_err(err);
        daemonize_finish(1);
        block_node_close_all();
        chardev_cleanup_all();
        remove_pidfile();
        return 1;
    }
    daemonize_finish(0);
    int status = main_loop_run();
    exit_on_second_signal(status);
    qmp_nbd_cleanup();      /* its thread uses the block nodes */
    machine_cleanup();
    block_node_close_all();     /* after the devices let their nodes go */
    chardev_cleanup_all();
    iothread_stop_all();
    remove_pidfile();
    log_flush(100);
    return status;
}
