/*
 * vireo-ivshmem-server: the command line of QEMU's ivshmem-server (-S -M -m
 * -l -n -F -p -v -h), the shared memory object, the listening socket and
 * daemonizing. The protocol itself lives in server.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ivshmem/server-qmp.h"
#include "ivshmem/server.h"
#include "sandbox/sandbox.h"
#include "util/osdep.h"
#include "util/unix-socket.h"

#define DEFAULT_SOCKET "/tmp/ivshmem_socket"
#define DEFAULT_SHM_NAME "ivshmem"
#define DEFAULT_SIZE (4 * 1024 * 1024)
#define DEFAULT_PIDFILE "/var/run/ivshmem-server.pid"
#define DEFAULT_MAX_QUEUE 4096

typedef struct Options {
    const char *socket_path;
    const char *shm_name;       /* -M: POSIX shm object */
    const char *shm_dir;        /* -m: a file in this directory (hugetlbfs) */
    uint64_t size;
    const char *pidfile;
    bool pidfile_given;
    bool foreground;
    const char *qmp_path;       /* --qmp: the monitor's UNIX socket */
    IvshServerConfig cfg;
} Options;

enum { OPT_MAX_PEERS = 256, OPT_MAX_QUEUE, OPT_QMP, OPT_SANDBOX };

static void usage(FILE *out)
{
    fprintf(out,
"Usage: vireo-ivshmem-server [OPTION]...\n"
"Serve ivshmem clients (QEMU's ivshmem-doorbell device, vireo-ivshmem-client)\n"
"a shared memory descriptor, ids and interrupt eventfds.\n"
"\n"
"  -h, --help           show this help\n"
"  -v                   verbose: log every join and leave\n"
"  -F                   stay in the foreground (default: daemonize)\n"
"  -p PIDFILE           write the pid here (default when daemonizing: %s)\n"
"  -S PATH              listening UNIX socket (default: %s)\n"
"  -M NAME              POSIX shared memory object (default: %s)\n"
"  -m DIR               create the shared memory as a file in DIR (hugetlbfs)\n"
"  -l SIZE              shared memory size, K/M/G suffixes (default: 4M)\n"
"  -n VECTORS           interrupt vectors per client, 1 to %d (default: 1)\n"
"      --max-peers N    refuse connections beyond N clients (default: %d)\n"
"      --max-queue N    drop a client with more than N messages unsent beyond\n"
"                       its set-up (default: %d)\n"
"      --qmp PATH       serve a QMP monitor on the UNIX socket PATH\n"
"      --sandbox on|off confine the server with seccomp once set up (default: on)\n",
            DEFAULT_PIDFILE, DEFAULT_SOCKET, DEFAULT_SHM_NAME,
            IVSHMEM_MAX_VECTORS, IVSHMEM_ID_COUNT, DEFAULT_MAX_QUEUE);
}

static bool parse_uint(const char *what, const char *str, unsigned min,
                       unsigned max, unsigned *out, Error **errp)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(str, &end, 10);
    if (errno || end == str || *end || *str == '-' || v < min || v > max) {
        error_setg(errp, "invalid %s '%s' (expected %u to %u)", what, str, min, max);
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static bool parse_option(Options *o, int c, const char *arg, Error **errp)
{
    switch (c) {
    case 'v': o->cfg.verbose = true; return true;
    case 'F': o->foreground = true; return true;
    case 'p': o->pidfile = arg; o->pidfile_given = true; return true;
    case 'S': o->socket_path = arg; return true;
    case 'M': o->shm_name = arg; o->shm_dir = NULL; return true;
    case 'm': o->shm_dir = arg; o->shm_name = NULL; return true;
    case 'l':
        if (!parse_size(arg, &o->size, errp)) {
            return false;
        }
        if (o->size == 0 || o->size > (uint64_t)INT64_MAX) {
            error_setg(errp, "invalid size '%s'", arg);
            return false;
        }
        return true;
    case 'n':
        return parse_uint("vector count", arg, 1, IVSHMEM_MAX_VECTORS, &o->cfg.vectors, errp);
    case OPT_MAX_PEERS:
        return parse_uint("--max-peers", arg, 1, IVSHMEM_ID_COUNT, &o->cfg.max_peers, errp);
    case OPT_MAX_QUEUE:
        return parse_uint("--max-queue", arg, 1, 1u << 20, &o->cfg.max_queue, errp);
    case OPT_QMP: o->qmp_path = arg; return true;
    case OPT_SANDBOX: return sandbox_program_opt(arg, errp);
    }
    error_setg(errp, "try 'vireo-ivshmem-server -h'");
    return false;
}

static bool parse_args(Options *o, int argc, char **argv, Error **errp)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "max-peers", required_argument, NULL, OPT_MAX_PEERS },
        { "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
        { "qmp", required_argument, NULL, OPT_QMP },
        { "sandbox", required_argument, NULL, OPT_SANDBOX },
        { NULL, 0, NULL, 0 },
    };
    *o = (Options) {
        .socket_path = DEFAULT_SOCKET,
        .shm_name = DEFAULT_SHM_NAME,
        .size = DEFAULT_SIZE,
        .pidfile = DEFAULT_PIDFILE,
        .cfg = { .vectors = 1, .max_peers = IVSHMEM_ID_COUNT,
                 .max_queue = DEFAULT_MAX_QUEUE },
    };
    int c;
    while ((c = getopt_long(argc, argv, "hvFp:S:m:M:l:n:", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (!parse_option(o, c, optarg, errp)) {
            return false;
        }
    }
    if (optind < argc) {
        error_setg(errp, "unexpected argument '%s'", argv[optind]);
        return false;
    }
    return true;
}

/* ---- shared memory ------------------------------------------------------ */

/*
 * A named object is reused as it is, so a restarted server hands new
 * clients the memory the running ones already share. Its size must match:
 * shrinking it under running guests would fault them.
 */
static int open_shm_name(const char *name, uint64_t size, Error **errp)
{
    int fd = shm_open(name, O_CREAT | O_RDWR | O_CLOEXEC, S_IRWXU);
    if (fd < 0) {
        error_setg_errno(errp, errno, "shm_open '%s'", name);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "fstat '%s'", name);
        goto fail;
    }
    if (st.st_size != 0 && (uint64_t)st.st_size != size) {
        error_setg(errp, "shared memory '%s' exists with %lld bytes, not %llu; "
                   "pass -l %lld or remove /dev/shm/%s", name, (long long)st.st_size,
                   (unsigned long long)size, (long long)st.st_size, name);
        goto fail;
    }
    if (st.st_size == 0 && ftruncate(fd, (off_t)size) < 0) {
        error_setg_errno(errp, errno, "resizing '%s' to %llu bytes", name,
                         (unsigned long long)size);
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* An unlinked file in @dir: the memory lives exactly as long as its users. */
static int open_shm_dir(const char *dir, uint64_t size, Error **errp)
{
    char *path = xasprintf("%s/vireo-ivshmem.XXXXXX", dir);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "creating a file in '%s'", dir);
        free(path);
        return -1;
    }
    unlink(path);
    free(path);
    if (ftruncate(fd, (off_t)size) < 0) {
        error_setg_errno(errp, errno, "resizing the file in '%s' to %llu bytes "
                         "(on hugetlbfs, a multiple of the huge page size)", dir,
                         (unsigned long long)size);
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- process ------------------------------------------------------------ */

/* Every client costs its vectors in eventfds: take all the kernel allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static bool write_pidfile(const char *path, Error **errp)
{
    FILE *f = fopen(path, "we");
    if (!f) {
        error_setg_errno(errp, errno, "writing pid file '%s'", path);
        return false;
    }
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0) {
        error_setg_errno(errp, errno, "writing pid file '%s'", path);
        return false;
    }
    return true;
}

/*
 * Detach. The parent exits only once the child reports start-up through the
 * returned pipe (finish_daemon), so a script that starts the server can read
 * the pid file and connect at once (the socket listens before the fork).
 * Returns the pipe's write end in the daemon, -1 on failure.
 */
static int daemonize(void)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid > 0) {
        char status = 1;
        close(ready[1]);
        if (read(ready[0], &status, 1) != 1) {
            status = 1;
        }
        _exit(status);
    }
    close(ready[0]);
    setsid();
    if (fork() > 0) {
        _exit(0);           /* the grandchild cannot reacquire a terminal */
    }
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    return ready[1];
}

/* Tell the waiting parent how start-up went; logs then go to syslog. */
static void finish_daemon(int ready, bool ok)
{
    char status = ok ? 0 : 1;
    if (write(ready, &status, 1) != 1) {
        /* the parent is gone: nobody to tell */
    }
    close(ready);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDERR_FILENO);
        close(null);
    }
    ivsh_log_to_syslog();
}

/* What must exist before the server detaches, so errors reach the caller. */
static bool open_resources(const Options *o, int *shm_fd, int *listen_fd, Error **errp)
{
    *shm_fd = o->shm_name ? open_shm_name(o->shm_name, o->size, errp)
                          : open_shm_dir(o->shm_dir, o->size, errp);
    if (*shm_fd < 0) {
        return false;
    }
    *listen_fd = unix_socket_listen(o->socket_path, errp);
    if (*listen_fd < 0) {
        close(*shm_fd);
        return false;
    }
    if (o->qmp_path && !ivsh_qmp_listen(o->qmp_path, errp)) {
        close(*listen_fd);
        unlink(o->socket_path);
        close(*shm_fd);
        return false;
    }
    return true;
}

/* Detach unless -F, write the pid file; on failure the caller cleans up. */
static bool become_server(Options *o, Error **errp)
{
    int ready = -1;
    if (!o->foreground) {
        ready = daemonize();
        if (ready < 0) {
            error_setg_errno(errp, errno, "daemonizing");
            return false;
        }
    }
    bool ok = true;
    if (o->pidfile_given || !o->foreground) {
        Error *err = NULL;
        if (!write_pidfile(o->pidfile, &err) && o->pidfile_given) {
            error_propagate(errp, err);
            ok = false;
        } else if (err) {   /* only the default path: not worth failing for */
            ivsh_warn("%s", error_get_pretty(err));
            error_free(err);
            o->pidfile = NULL;
        }
    } else {
        o->pidfile = NULL;
    }
    if (ready >= 0) {
        if (!ok) {
            ivsh_warn("%s", error_get_pretty(*errp));
        }
        finish_daemon(ready, ok);
    }
    return ok;
}

int main(int argc, char **argv)
{
    Options o;
    Error *err = NULL;
    int shm_fd, listen_fd;
    sigset_t quit_set;
    block_quit_signals(&quit_set);  /* before the socket listens */
    if (!parse_args(&o, argc, argv, &err) ||
        !open_resources(&o, &shm_fd, &listen_fd, &err)) {
        ivsh_warn("%s", error_get_pretty(err));
        error_free(err);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    /* The epoll set and signalfd are made after detaching: a signalfd
     * watched by epoll wakes only for the process that registered it. */
    if (!become_server(&o, &err)) {
        ivsh_warn("%s", error_get_pretty(err));
        error_free(err);
        ivsh_qmp_stop();
        close(listen_fd);
        close(shm_fd);
        unlink(o.socket_path);
        return 1;
    }
    IvshServer *s = xzalloc(sizeof(*s));
    bool ok = ivsh_server_init(s, &o.cfg, listen_fd, shm_fd, &err) &&
              (!o.qmp_path || ivsh_qmp_attach(s, &err)) &&
              sandbox_confine_program(SANDBOX_PROGRAM_IVSHMEM_SERVER, &err);
    if (ok) {
        ivsh_log(s, "listening on %s, %llu bytes of shared memory, %u vectors per client",
                 o.socket_path, (unsigned long long)o.size, o.cfg.vectors);
        ok = ivsh_server_run(s, &err);
    }
    if (!ok) {
        ivsh_warn("%s", error_get_pretty(err));
        error_free(err);
    }
    ivsh_qmp_stop();
    ivsh_server_cleanup(s);
    unlink(o.socket_path);
    if (o.pidfile) {
        unlink(o.pidfile);
    }
    free(s);
    return ok ? 0 : 1;
}
