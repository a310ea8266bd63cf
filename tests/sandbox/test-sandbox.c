/*
 * The filters themselves, in forked children: a child installs a filter
 * through the module's API and makes a call; the parent checks how the
 * child ended. Allowed calls must work, denied ones must end the process
 * with SIGSYS (and, with log=on, name the call first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "block/block.h"
#include "sandbox/sandbox.h"
#include "util/osdep.h"

typedef void ChildBody(void);

static void body_unix_socket(void);

static SandboxConfig child_config;
static SandboxKind child_kind;
static bool child_lock_down;    /* the whole start-up path: sandbox_lock_down() */
static int child_program = -1;  /* else a daemon's start-up: sandbox_confine_program() */

/* Run body in a child under child_config/child_kind; return its wait status. */
static int run_child(ChildBody *body, char *out, size_t out_size)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        Error *err = NULL;
        if (child_program >= 0) {
            if (!sandbox_confine_program((SandboxProgram)child_program, &err)) {
                _exit(100);
            }
        } else if (child_lock_down) {
            sandbox_config = child_config;
            if (!sandbox_lock_down(&err)) {
                _exit(100);
            }
        } else if (!sandbox_install(&child_config, child_kind, false, &err)) {
            _exit(100);
        }
        body();
        _exit(0);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < out_size && (n = read(pipefd[0], out + len, out_size - 1 - len)) > 0) {
        len += (size_t)n;
    }
    out[len] = 0;
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_killed_by_sigsys(int status)
{
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void assert_exited_zero(int status)
{
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void setup_child(SandboxKind kind, bool log)
{
    memset(&child_config, 0, sizeof(child_config));
    child_config.enable = true;
    child_config.log = log;
    child_kind = kind;
    child_lock_down = false;
    child_program = -1;
}

/*
 * A thread started the way vireo starts vCPU threads (every signal
 * blocked) that enters its vCPU list and then runs body.
 */
static void *vcpu_like_thread(void *opaque)
{
    seccomp_thread_enter(SANDBOX_VCPU);
    ((ChildBody *)opaque)();
    return NULL;
}

static void in_blocked_vcpu_thread(ChildBody *body)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, vcpu_like_thread, (void *)body) != 0) {
        _exit(3);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_join(t, NULL);
}

static void body_socket_in_vcpu_thread(void)
{
    in_blocked_vcpu_thread(body_unix_socket);
}

/*
 * Converting a time on a vCPU thread (the RTC does, when the guest reads
 * the clock) must open no file: the C library reads /etc/localtime on the
 * first conversion unless the lock-down did it first. A filter of this
 * test's own, stacked on the thread, kills on any open, so the check holds
 * even in sanitizer builds, whose lists allow opening.
 */
static void convert_times(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(openat), 0) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(open), 0) < 0 ||
        seccomp_load(ctx) < 0) {
        _exit(4);
    }
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !localtime_r(&now, &tm) || timegm(&tm) == (time_t)-1) {
        _exit(5);
    }
    tm.tm_isdst = -1;
    if (mktime(&tm) == (time_t)-1) {
        _exit(6);
    }
}

static void body_time_in_vcpu_thread(void)
{
    in_blocked_vcpu_thread(convert_times);
}

static void body_execve(void)
{
    char *argv[] = { (char *)"true", NULL };
    execve("/bin/true", argv, NULL);
}

static void body_everyday_calls(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "x", 1) != 1 || getpid() <= 0) {
        _exit(1);
    }
    close(fd);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || munmap(p, 4096) < 0) {
        _exit(2);
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        _exit(3);
    }
    close(s);
}

static void body_unix_socket(void)
{
    socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static void body_exec_mapping(void)
{
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void body_packet_socket(void)
{
    socket(AF_PACKET, SOCK_RAW, 0);
}

static void body_setuid(void)
{
    if (setuid(getuid()) < 0) {
        _exit(1);
    }
}

static void test_spawn_deny_kills_execve(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    child_config.spawn = SANDBOX_DENY;
    assert_killed_by_sigsys(run_child(body_execve, out, sizeof(out)));
}

static void test_log_names_the_call(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, true);
    child_config.spawn = SANDBOX_DENY;
    assert_killed_by_sigsys(run_child(body_execve, out, sizeof(out)));
    assert_non_null(strstr(out, "forbidden system call execve"));
    assert_non_null(strstr(out, "main loop thread"));
}

static void test_main_loop_everyday_calls_work(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    assert_exited_zero(run_child(body_everyday_calls, out, sizeof(out)));
}

static void test_vcpu_cannot_make_sockets(void **state)
{
    char out[512];
    setup_child(SANDBOX_VCPU, true);
    assert_killed_by_sigsys(run_child(body_unix_socket, out, sizeof(out)));
    assert_non_null(strstr(out, "vCPU thread made the forbidden system call socket"));
}

static void test_no_executable_mappings(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    assert_killed_by_sigsys(run_child(body_exec_mapping, out, sizeof(out)));
}

static void test_socket_families_are_checked(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    assert_killed_by_sigsys(run_child(body_packet_socket, out, sizeof(out)));
}

static void test_elevateprivileges(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    assert_exited_zero(run_child(body_setuid, out, sizeof(out)));
    child_config.elevate = SANDBOX_DENY;
    assert_killed_by_sigsys(run_child(body_setuid, out, sizeof(out)));
}

static void body_inet_socket(void)
{
    socket(AF_INET, SOCK_STREAM, 0);
}

static void body_bind(void)
{
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);     /* syslog's kind: allowed */
    if (s < 0) {
        _exit(1);
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    bind(s, (struct sockaddr *)&sa, sizeof(sa_family_t));
}

/* What the ivshmem server does after start-up: eventfds, /dev/null read-only. */
static void body_ivshmem_work(void)
{
    int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int n = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (e < 0 || n < 0) {
        _exit(1);
    }
}

/* The storage daemon opens images and makes sockets at run time. */
static void body_storage_daemon_work(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || s < 0) {
        _exit(1);
    }
}

static void test_vhost_user_net_makes_no_sockets(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    child_program = SANDBOX_PROGRAM_VHOST_USER_NET;
    assert_killed_by_sigsys(run_child(body_inet_socket, out, sizeof(out)));
    assert_non_null(strstr(out, "vireo-vhost-user-net: sandbox: the daemon thread made the "
                                "forbidden system call socket"));
}

static void test_ivshmem_server_list(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    child_program = SANDBOX_PROGRAM_IVSHMEM_SERVER;
    assert_exited_zero(run_child(body_ivshmem_work, out, sizeof(out)));
    assert_killed_by_sigsys(run_child(body_bind, out, sizeof(out)));
    assert_non_null(strstr(out, "vireo-ivshmem-server: sandbox: the daemon thread made the "
                                "forbidden system call bind"));
    assert_killed_by_sigsys(run_child(body_inet_socket, out, sizeof(out)));
}

static void test_storage_daemon_list(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    child_program = SANDBOX_PROGRAM_STORAGE_DAEMON;
    assert_exited_zero(run_child(body_storage_daemon_work, out, sizeof(out)));
    assert_killed_by_sigsys(run_child(body_execve, out, sizeof(out)));
    assert_non_null(strstr(out, "forbidden system call execve"));
    assert_killed_by_sigsys(run_child(body_setuid, out, sizeof(out)));
}

/* vCPU threads block every signal: log=on must still name the call. */
static void test_log_names_the_call_of_a_thread_blocking_signals(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, true);
    child_lock_down = true;
    assert_killed_by_sigsys(run_child(body_socket_in_vcpu_thread, out, sizeof(out)));
    assert_non_null(strstr(out, "vCPU thread made the forbidden system call socket"));
}

static void test_time_conversion_opens_nothing_after_lock_down(void **state)
{
    char out[512];
    setup_child(SANDBOX_MAIN, false);
    child_lock_down = true;
    assert_exited_zero(run_child(body_time_in_vcpu_thread, out, sizeof(out)));
}

/* ---- the NBD workers' and the compression helpers' lists ---- */

/* Made in the parent before the filter, as the NBD server makes them. */
static int pair[2] = { -1, -1 }, image_fd = -1, listen_fd = -1, epoll_fd = -1;

static void *nothing(void *opaque)
{
    return opaque;
}

/* An NBD worker's day: epoll, accept, socket bytes, image I/O, a block worker. */
static void body_nbd_worker_work(void)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = pair[1] };
    char buf[4096] = { 0 };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pair[1], &ev) < 0 ||
        sendto(pair[0], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT, NULL, 0) != 1 ||
        epoll_wait(epoll_fd, &ev, 1, 1000) != 1 ||
        recvfrom(pair[1], buf, sizeof(buf), MSG_DONTWAIT, NULL, NULL) != 1) {
        _exit(1);
    }
    int one = 1;
    setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
    if (accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC) >= 0 || errno != EAGAIN) {
        _exit(2);
    }
    if (pwrite(image_fd, buf, sizeof(buf), 4096) != (ssize_t)sizeof(buf) ||
        pread(image_fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
        fallocate(image_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) < 0 ||
        fdatasync(image_fd) < 0 || lseek(image_fd, 0, SEEK_DATA) < 0) {
        _exit(3);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0 || pthread_join(t, NULL) != 0) {
        _exit(4);
    }
}

static void body_open_listener(void)
{
    socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static void make_nbd_worker_fds(void)
{
    char path[] = "/tmp/vireo-sandbox-XXXXXX";
    image_fd = mkstemp(path);
    assert_true(image_fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(image_fd, 1 << 20), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };     /* an abstract, autobound name */
    assert_int_equal(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa_family_t)), 0);
    assert_int_equal(listen(listen_fd, 1), 0);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(epoll_fd >= 0);
}

static void close_nbd_worker_fds(void)
{
    close(image_fd);
    close(pair[0]);
    close(pair[1]);
    close(listen_fd);
    close(epoll_fd);
}

static void test_nbd_worker_list(void **state)
{
    char out[512];
    make_nbd_worker_fds();
    setup_child(SANDBOX_NBD_WORKER, true);
    assert_exited_zero(run_child(body_nbd_worker_work, out, sizeof(out)));
    assert_killed_by_sigsys(run_child(body_open_listener, out, sizeof(out)));
    assert_non_null(strstr(out, "NBD worker thread made the forbidden system call socket"));
    close_nbd_worker_fds();
}

/* Deflate in memory, as compress_cluster() does: allowed. */
static void body_deflate(void)
{
    size_t n = 1 << 20;
    uint8_t *in = malloc(n), *z = malloc(compressBound(n));
    uLongf zlen = compressBound(n);
    if (!in || !z) {
        _exit(1);
    }
    memset(in, 0x33, n);
    if (compress2(z, &zlen, in, n, 6) != Z_OK || zlen >= n) {
        _exit(2);
    }
    free(in);
    free(z);
}

static void body_write_image(void)
{
    if (pwrite(image_fd, "x", 1, 0) < 0) {
        _exit(1);
    }
}

static void test_compress_worker_list(void **state)
{
    char out[512];
    make_nbd_worker_fds();
    setup_child(SANDBOX_COMPRESS_WORKER, true);
    assert_exited_zero(run_child(body_deflate, out, sizeof(out)));
    assert_killed_by_sigsys(run_child(body_write_image, out, sizeof(out)));
    assert_non_null(strstr(out, "compression worker thread made the forbidden system call "
                                "pwrite64"));
    close_nbd_worker_fds();
}

/*
 * A compressed qcow2 write under the storage daemon's filter, its helper
 * threads each stacking the list of the kind they name. The hook stands in
 * for the sandbox's own (which does the same) to note which kinds came by.
 */
static BlockImage *qcow2_image;
static bool kinds_seen[SANDBOX_NR_KINDS];

static void noting_hook(SandboxKind kind)
{
    static const SandboxConfig log_on = { .enable = true, .log = true };
    __atomic_store_n(&kinds_seen[kind], true, __ATOMIC_RELAXED);
    Error *err = NULL;
    if (!sandbox_install(&log_on, kind, false, &err)) {
        _exit(20);
    }
}

static void body_compressed_write(void)
{
    seccomp_set_thread_hook(noting_hook);
    size_t cs = blk_cluster_size(qcow2_image), len = 8 * cs;
    uint8_t *buf = malloc(len), *back = malloc(len);
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i / 4096);
    }
    Error *err = NULL;
    if (blk_pwrite_compressed(qcow2_image, 0, buf, len, &err) < 0 ||
        blk_pread(qcow2_image, 0, back, len, &err) < 0 || memcmp(buf, back, len) != 0) {
        _exit(1);
    }
    BlockCheckResult res = { 0 };
    if (blk_check(qcow2_image, &res, 0, &err) < 0 || res.corruptions || res.leaks ||
        res.compressed_clusters != 8) {
        _exit(2);       /* stored plain, or a damaged image */
    }
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 1 &&
        !__atomic_load_n(&kinds_seen[SANDBOX_COMPRESS_WORKER], __ATOMIC_RELAXED)) {
        _exit(3);       /* no helper thread said what it is */
    }
    if (blk_close(qcow2_image, &err) < 0) {
        _exit(4);
    }
}

static void test_compressed_write_in_the_storage_daemon(void **state)
{
    char out[512], dir[] = "/tmp/vireo-sandbox-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/c.qcow2", dir);
    Error *err = NULL;
    BlockCreateOptions o = { .format = "qcow2", .size = 4 << 20 };
    assert_int_equal(blk_create(path, &o, &err), 0);
    qcow2_image = blk_open(path, "qcow2", BLK_O_RDWR, &err);
    assert_non_null(qcow2_image);
    setup_child(SANDBOX_MAIN, true);
    child_program = SANDBOX_PROGRAM_STORAGE_DAEMON;
    int status = run_child(body_compressed_write, out, sizeof(out));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child: status 0x%x: %s\n", status, out);
    }
    assert_exited_zero(status);
    assert_null(strstr(out, "forbidden"));
    blk_close(qcow2_image, NULL);
    unlink(path);
    rmdir(dir);
    free(path);
}

/*
 * A thread under a list that may not open files gives memory back from the
 * top of its malloc arena; the first time, the C library reads
 * /proc/sys/vm/overcommit_memory, so the lock-down must have made that
 * happen already. (Release builds: the sanitizers have a malloc of their
 * own.) The thresholds are set to the C library's defaults first, as
 * earlier tests in this process may have raised them.
 */
static void *block_worker_freeing(void *opaque)
{
    seccomp_thread_enter(SANDBOX_BLOCK_WORKER);
    enum { N = 64, SIZE = 48 * 1024 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(SIZE);
        memset(p[i], 0x11, SIZE);
    }
    for (int i = N; i-- > 0;) {
        free(p[i]);
    }
    return opaque;
}

static void body_thread_gives_memory_back(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, block_worker_freeing, NULL) != 0) {
        _exit(2);
    }
    pthread_join(t, NULL);
}

static void test_thread_gives_memory_back_after_lock_down(void **state)
{
    char out[512];
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    setup_child(SANDBOX_MAIN, true);
    child_lock_down = true;
    int status = run_child(body_thread_gives_memory_back, out, sizeof(out));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child: status 0x%x: %s\n", status, out);
    }
    assert_exited_zero(status);
}

static void test_option_parsing(void **state)
{
    Error *err = NULL;
    assert_true(sandbox_opt_sandbox("on,obsolete=deny,elevateprivileges=children,spawn=deny,"
                                    "resourcecontrol=deny,log=on", &err));
    assert_true(sandbox_config.enable && sandbox_config.log);
    assert_int_equal(sandbox_config.obsolete, SANDBOX_DENY);
    assert_int_equal(sandbox_config.elevate, SANDBOX_CHILDREN);
    assert_int_equal(sandbox_config.spawn, SANDBOX_DENY);
    assert_int_equal(sandbox_config.resourcecontrol, SANDBOX_DENY);
    assert_true(sandbox_opt_sandbox("off", &err));
    assert_false(sandbox_config.enable);
    assert_false(sandbox_opt_sandbox("on,spawn=children", &err));
    assert_non_null(strstr(error_get_pretty(err), "spawn"));
    error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_deny_kills_execve),
        cmocka_unit_test(test_log_names_the_call),
        cmocka_unit_test(test_main_loop_everyday_calls_work),
        cmocka_unit_test(test_vcpu_cannot_make_sockets),
        cmocka_unit_test(test_no_executable_mappings),
        cmocka_unit_test(test_socket_families_are_checked),
        cmocka_unit_test(test_elevateprivileges),
        cmocka_unit_test(test_log_names_the_call_of_a_thread_blocking_signals),
        cmocka_unit_test(test_time_conversion_opens_nothing_after_lock_down),
        cmocka_unit_test(test_vhost_user_net_makes_no_sockets),
        cmocka_unit_test(test_ivshmem_server_list),
        cmocka_unit_test(test_storage_daemon_list),
        cmocka_unit_test(test_nbd_worker_list),
        cmocka_unit_test(test_compress_worker_list),
        cmocka_unit_test(test_compressed_write_in_the_storage_daemon),
        cmocka_unit_test(test_thread_gives_memory_back_after_lock_down),
        cmocka_unit_test(test_option_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
