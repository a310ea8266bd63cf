/*
 * vireo-vhost-user-net: a vhost-user net back-end on a tap interface.
 *
 *   --socket-path=PATH       listen for the frontend here
 *   --tap=IFNAME | --tap-fd=N[:N...]   the tap (created if needed) or
 *                            inherited tap fds, one per queue pair
 *   --queues=N               queue pairs (a multi-queue tap when N > 1)
 *   --mac=52:54:00:12:34:56  the guest's MAC, offered in config space
 *
 * Start-up errors exit with status 1; then it serves until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <linux/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemons/vhost-user-net/vhost-user-net.h"
#include "net/tap.h"
#include "sandbox/sandbox.h"
#include "util/osdep.h"

#define PROG "vireo-vhost-user-net"

typedef struct Options {
    const char *socket_path;
    const char *tap;
    const char *tap_fds;
    unsigned queues;
    bool has_mac;
    uint8_t mac[6];
} Options;

static bool quit;

static void usage(void)
{
    printf("Usage: " PROG " --socket-path=PATH (--tap=IFNAME | --tap-fd=N[:N...]) "
           "[--queues=N] [--mac=MAC]\n"
           "\n"
           "  --socket-path=PATH   UNIX socket the vhost-user frontend connects to\n"
           "  --tap=IFNAME         tap interface (created if it does not exist)\n"
           "  --tap-fd=N[:N...]    inherited tap fds (IFF_VNET_HDR), one per queue pair\n"
           "  --queues=N           queue pairs, 1 to %d (default 1)\n"
           "  --mac=MAC            the guest's MAC address, offered through GET_CONFIG\n"
           "  --sandbox=on|off     confine the daemon with seccomp once it serves (default on)\n"
           "  -h, --help / -V, --version\n", NET_MAX_PAIRS);
}

static void die(Error *err)
{
    fprintf(stderr, PROG ": %s\n", error_get_pretty(err));
    error_free(err);
    exit(1);
}

static void die_msg(const char *msg)
{
    fprintf(stderr, PROG ": %s\n", msg);
    exit(1);
}

static unsigned parse_queues(const char *s)
{
    char *end;
    unsigned long n = strtoul(s, &end, 10);
    if (*end || !*s || n < 1 || n > NET_MAX_PAIRS) {
        fprintf(stderr, PROG ": --queues must be between 1 and %d\n", NET_MAX_PAIRS);
        exit(1);
    }
    return n;
}

static void parse_mac(const char *s, Options *o)
{
    unsigned b[6];
    int end = 0;
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
               &end) != 6 || s[end] || end != 17) {
        die_msg("--mac wants six hex bytes, as in 52:54:00:12:34:56");
    }
    for (int i = 0; i < 6; i++) {
        o->mac[i] = b[i];
    }
    o->has_mac = true;
}

static void parse_args(int argc, char **argv, Options *o)
{
    Error *err = NULL;
    static const struct option long_opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "socket-path", required_argument, NULL, 's' },
        { "tap", required_argument, NULL, 't' },
        { "tap-fd", required_argument, NULL, 'f' },
        { "queues", required_argument, NULL, 'q' },
        { "mac", required_argument, NULL, 'm' },
        { "sandbox", required_argument, NULL, 'S' },
        { NULL },
    };
    int c;
    *o = (Options){ .queues = 1 };
    while ((c = getopt_long(argc, argv, "hV", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(); exit(0);
        case 'V': printf(PROG " version " VIREO_VERSION "\n"); exit(0);
        case 's': o->socket_path = optarg; break;
        case 't': o->tap = optarg; break;
        case 'f': o->tap_fds = optarg; break;
        case 'q': o->queues = parse_queues(optarg); break;
        case 'm': parse_mac(optarg, o); break;
        case 'S':
            if (!sandbox_program_opt(optarg, &err)) {
                die(err);
            }
            break;
        default: exit(1);       /* getopt printed why */
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        exit(1);
    }
    if (!o->socket_path || !o->tap == !o->tap_fds) {
        die_msg("--socket-path and one of --tap or --tap-fd are needed");
    }
    if (o->tap && strlen(o->tap) >= IFNAMSIZ) {
        die_msg("--tap: interface name too long");
    }
}

/* N[:N...]: exactly one fd per queue pair, counted before any is touched. */
static void adopt_tap_fds(const char *list, unsigned queues, int *fds)
{
    Error *err = NULL;
    unsigned n = 0;
    for (const char *s = list; *s; n++) {
        char *end;
        long fd = strtol(s, &end, 10);
        if (end == s || (*end && *end != ':') || fd < 0 || fd > 65535 || n >= queues) {
            die_msg("--tap-fd wants one fd number per queue pair, separated by ':'");
        }
        fds[n] = fd;
        s = *end ? end + 1 : end;
    }
    if (n != queues) {
        die_msg("--tap-fd wants one fd number per queue pair, separated by ':'");
    }
    for (unsigned i = 0; i < n; i++) {
        if (!tap_adopt_fd(fds[i], &err)) {
            die(err);
        }
    }
}

static void open_taps(const Options *o, int *fds)
{
    Error *err = NULL;
    if (o->tap_fds) {
        adopt_tap_fds(o->tap_fds, o->queues, fds);
        return;
    }
    for (unsigned i = 0; i < o->queues; i++) {
        fds[i] = tap_open(o->tap, o->queues > 1, NULL, &err);
        if (fds[i] < 0) {
            die(err);
        }
    }
}

int main(int argc, char **argv)
{
    static NetDaemon nd;
    Error *err = NULL;
    Options o;
    int fds[NET_MAX_PAIRS];
    sigset_t quit_set;
    block_quit_signals(&quit_set);  /* before the socket listens */
    parse_args(argc, argv, &o);
    open_taps(&o, fds);
    VuLoop *loop = vu_loop_new(&err);
    VuQuitSignals sig = vu_quit_signals_open(&quit);
    if (!loop || sig.fd < 0) {
        die_msg(loop ? "signalfd failed" : error_get_pretty(err));
    }
    int lfd = vu_listen_unix(o.socket_path, &err);
    if (lfd < 0 || !net_daemon_init(&nd, loop, lfd, fds, o.queues, o.has_mac ? o.mac : NULL, &err) ||
        !vu_loop_set_fd(loop, sig.fd, vu_quit_signals_ready, &sig, &err) ||
        !sandbox_confine_program(SANDBOX_PROGRAM_VHOST_USER_NET, &err)) {
        die(err);
    }
    while (!quit) {
        vu_loop_run_once(loop, -1);
    }
    net_daemon_cleanup(&nd);
    unlink(o.socket_path);
    close(sig.fd);
    vu_loop_free(loop);
    return 0;
}
