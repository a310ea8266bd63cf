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
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

typedef void ChildBody(void);

static SandboxConfig child_config;
static SandboxKind child_kind;

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
        if (!sandbox_install(&child_config, child_kind, false, &err)) {
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
        cmocka_unit_test(test_option_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
