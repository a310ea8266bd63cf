/*
 * vireo-storage-daemon: serves block nodes to vhost-user frontends, with
 * qemu-storage-daemon's command line:
 *
 *   --blockdev driver=file,node-name=file0,filename=disk.qcow2
 *   --blockdev driver=qcow2,node-name=disk0,file=file0
 *   --export type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,
 *            addr.path=vub.sock,writable=on,num-queues=2
 *   --object iothread,id=io0  --daemonize  --pidfile PATH
 *   --chardev socket,id=qmp0,path=qmp.sock,server=on,wait=off --monitor qmp0
 *
 * Start-up: parse and open everything (errors exit with status 1 before
 * daemonizing), write the pid file, then serve until SIGTERM, SIGINT or
 * the monitor's quit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "daemons/storage-daemon/storage-daemon.h"
#include "sandbox/sandbox.h"
#include "util/keyval.h"
#include "util/osdep.h"

#define PROG "vireo-storage-daemon"

static bool quit;
static char *pidfile;
static bool pidfile_written;

static void usage(void)
{
    printf("Usage: " PROG " [options]\n"
           "\n"
           "  -h, --help                show this help\n"
           "  -V, --version             print the version\n"
           "  --blockdev [driver=]file,node-name=N,filename=F[,aio=threads|io_uring]\n"
           "                            [,cache.direct=on][,read-only=on]\n"
           "  --blockdev [driver=]raw|qcow2|parallels,node-name=N,file=NODE\n"
           "  --export [type=]vhost-user-blk,id=ID,node-name=N,addr.type=unix,addr.path=P\n"
           "           |addr.type=fd,addr.str=FD[,writable=on|off][,num-queues=N]\n"
           "           [,logical-block-size=N]\n"
           "  --export [type=]nbd,id=ID,node-name=N[,name=NAME][,description=D]\n"
           "           [,writable=on|off][,bitmaps.0=BITMAP][,allocation-depth=on|off]\n"
           "  --nbd-server addr.type=unix,addr.path=P|addr.type=inet,addr.host=H,addr.port=P\n"
           "               [,max-connections=N]\n"
           "  --object iothread,id=ID   accepted (one event loop serves all exports)\n"
           "  --chardev socket,id=ID,path=P,server=on,wait=off\n"
           "  --monitor [chardev=]ID[,mode=control]\n"
           "                            QMP on that socket\n"
           "  --daemonize               run in the background once everything is open\n"
           "  --pidfile PATH            write the process id to PATH\n"
           "  --sandbox on|off          confine the daemon with seccomp once it serves\n"
           "                            (default on)\n");
}

static void die(Error *err)
{
    fprintf(stderr, PROG ": %s\n", error_get_pretty(err));
    error_free(err);
    exit(1);
}

/* --object iothread,id=..,poll-max-ns=..: accepted; anything else is refused. */
static bool object_add(const char *opts, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(opts, "qom-type", NULL, &kv, errp)) {
        return false;
    }
    const char *type = keyval_get(&kv, "qom-type");
    bool ok = type && !strcmp(type, "iothread") && keyval_get(&kv, "id");
    if (!ok) {
        error_setg(errp, "object type '%s' is not supported (only iothread)",
                   type ? type : "");
    }
    keyval_free(&kv);
    return ok;
}

/* qemu-storage-daemon lets driver= and type= be implied first values too. */
static char *with_key(const char *opts, const char *key)
{
    const char *eq = strchr(opts, '='), *comma = strchr(opts, ',');
    if (eq && (!comma || eq < comma)) {
        return xstrdup(opts);
    }
    char *s = xmalloc(strlen(key) + strlen(opts) + 2);
    sprintf(s, "%s=%s", key, opts);
    return s;
}

/* Does an --export option string (with type= made explicit) say type=nbd? */
static bool is_nbd_export(const char *opts)
{
    return !strncmp(opts, "type=nbd,", 9) || !strcmp(opts, "type=nbd") ||
           strstr(opts, ",type=nbd,") || (strlen(opts) >= 9 &&
           !strcmp(opts + strlen(opts) - 9, ",type=nbd"));
}

enum { OPT_BLOCKDEV = 256, OPT_EXPORT, OPT_OBJECT, OPT_DAEMONIZE, OPT_PIDFILE, OPT_MONITOR,
       OPT_CHARDEV, OPT_NBD, OPT_SANDBOX };

static const struct option long_opts[] = {
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { "blockdev", required_argument, NULL, OPT_BLOCKDEV },
    { "export", required_argument, NULL, OPT_EXPORT },
    { "object", required_argument, NULL, OPT_OBJECT },
    { "daemonize", no_argument, NULL, OPT_DAEMONIZE },
    { "pidfile", required_argument, NULL, OPT_PIDFILE },
    { "monitor", required_argument, NULL, OPT_MONITOR },
    { "chardev", required_argument, NULL, OPT_CHARDEV },
    { "nbd-server", required_argument, NULL, OPT_NBD },
    { "sandbox", required_argument, NULL, OPT_SANDBOX },
    { NULL },
};

static void parse_args(int argc, char **argv, VuLoop *loop, bool *daemonize)
{
    Error *err = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "hV", long_opts, NULL)) != -1) {
        char *opts = NULL;
        bool ok = true;
        switch (c) {
        case 'h': usage(); exit(0);
        case 'V': printf(PROG " version " VIREO_VERSION "\n"); exit(0);
        case OPT_BLOCKDEV:
            /* JSON as it is; key=value with driver= made explicit */
            opts = optarg[0] == '{' ? xstrdup(optarg) : with_key(optarg, "driver");
            ok = blockdev_add(opts, &err);
            break;
        case OPT_EXPORT:
            opts = with_key(optarg, "type");
            ok = is_nbd_export(opts) ? sd_nbd_export_opt(opts, &err)
                                     : blk_export_add(loop, opts, &err);
            break;
        case OPT_OBJECT: ok = object_add(optarg, &err); break;
        case OPT_DAEMONIZE: *daemonize = true; break;
        case OPT_PIDFILE: pidfile = optarg; break;
        case OPT_CHARDEV: ok = sd_chardev_add(optarg, &err); break;
        case OPT_MONITOR: ok = sd_monitor_add(loop, optarg, &quit, &err); break;
        case OPT_NBD: ok = sd_nbd_server_opt(optarg, &err); break;
        case OPT_SANDBOX: ok = sandbox_program_opt(optarg, &err); break;
        default:
            exit(1);    /* getopt printed why */
        }
        free(opts);
        if (!ok) {
            die(err);
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        exit(1);
    }
}

static void write_pidfile(void)
{
    int fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (fd < 0 || write(fd, buf, n) != n) {
        fprintf(stderr, PROG ": cannot write pid file '%s': %s\n", pidfile, strerror(errno));
        exit(1);
    }
    close(fd);
    pidfile_written = true;
}

/*
 * Fork; the parent exits once the child has written the pid file and is
 * about to serve (as qemu-storage-daemon does), so a script may read the pid
 * file as soon as the command returns. Returns the pipe to report on.
 */
static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        char ok;
        close(p[1]);
        _exit(read(p[0], &ok, 1) == 1 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        /* stderr stays: log lines about dropped frontends are worth keeping. */
        close(null);
    }
    return p[1];
}

static void daemonize_done(int fd)
{
    if (fd >= 0) {
        if (write(fd, "", 1) != 1) {
            /* the parent is gone; nothing to tell */
        }
        close(fd);
    }
}

int main(int argc, char **argv)
{
    Error *err = NULL;
    bool bg = false;
    sigset_t quit_set;
    /* Before --export and --nbd-server listen: see block_quit_signals(). */
    block_quit_signals(&quit_set);
    VuLoop *loop = vu_loop_new(&err);
    if (!loop) {
        die(err);
    }
    parse_args(argc, argv, loop, &bg);
    int ready_fd = bg ? daemonize() : -1;
    /* After the fork: a signalfd reports readiness for the process that made it. */
    VuQuitSignals sig = vu_quit_signals_open(&quit);
    if (sig.fd < 0) {
        error_setg_errno(&err, errno, "signalfd");
        die(err);
    }
    if (!vu_loop_set_fd(loop, sig.fd, vu_quit_signals_ready, &sig, &err)) {
        die(err);
    }
    if (pidfile) {
        write_pidfile();
    }
    if (!sandbox_confine_program(SANDBOX_PROGRAM_STORAGE_DAEMON, &err)) {
        die(err);
    }
    daemonize_done(ready_fd);
    while (!quit) {
        vu_loop_run_once(loop, -1);
    }
    sd_nbd_close_all();
    sd_monitor_close_all();
    blk_export_close_all();
    blockdev_close_all();
    if (pidfile_written) {
        unlink(pidfile);
    }
    close(sig.fd);
    vu_loop_free(loop);
    return 0;
}
