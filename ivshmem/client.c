/*
 * vireo-ivshmem-client: a debug client for an ivshmem server. It prints its
 * id, its peers as they join and leave and the interrupts it receives, and
 * rings peers on command (from -c, or from stdin line by line).
 *
 * Output lines are stable so scripts can wait for them:
 *   "connected: id N", "shared memory: N bytes", "peer P joined",
 *   "peer P: vector V", "own vector V", "ready" (set-up complete),
 *   "peer P left", "interrupt on vector V (count C)", "rang peer P vector V".
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ivshmem/proto.h"
#include "sandbox/sandbox.h"
#include "util/osdep.h"

#define DEFAULT_SOCKET "/tmp/ivshmem_socket"
#define QUIET_MS 100            /* a pause this long ends the set-up burst */

typedef struct Peer {
    unsigned nvectors;
    int vectors[IVSHMEM_MAX_VECTORS];
} Peer;

typedef enum { WANT_VERSION, WANT_ID, WANT_SHM, RUNNING } Phase;

typedef struct Client {
    int sock;
    Phase phase;
    int id;                         /* ours, once received */
    int shm_fd;
    unsigned nown;                  /* our own vectors: we are rung through them */
    int own[IVSHMEM_MAX_VECTORS];
    Peer *peers[IVSHMEM_ID_COUNT];
    bool ready;                     /* set-up burst over: commands may run */
    bool quit;
} Client;

static int connect_unix(const char *path, Error **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "socket path '%s' is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        error_setg_errno(errp, errno, "connecting to '%s'", path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* ---- messages from the server ------------------------------------------- */

static void peer_add_vector(Client *c, unsigned id, int fd)
{
    Peer *p = c->peers[id];
    if (!p) {
        p = c->peers[id] = xzalloc(sizeof(*p));
        printf("peer %u joined\n", id);
    }
    if (p->nvectors == IVSHMEM_MAX_VECTORS) {
        close(fd);              /* more than we can use: the spec says close */
        return;
    }
    printf("peer %u: vector %u\n", id, p->nvectors);
    p->vectors[p->nvectors++] = fd;
}

static void peer_remove(Client *c, unsigned id)
{
    Peer *p = c->peers[id];
    if (!p) {
        printf("leave of unknown peer %u\n", id);
        return;
    }
    for (unsigned v = 0; v < p->nvectors; v++) {
        close(p->vectors[v]);
    }
    free(p);
    c->peers[id] = NULL;
    printf("peer %u left\n", id);
}

static void own_add_vector(Client *c, int fd)
{
    if (c->nown == IVSHMEM_MAX_VECTORS) {
        close(fd);
        return;
    }
    printf("own vector %u\n", c->nown);
    c->own[c->nown++] = fd;
}

static bool handle_running(Client *c, int64_t value, int fd, Error **errp)
{
    if (value < 0 || value > IVSHMEM_MAX_ID) {
        error_setg(errp, "the server sent an invalid peer id %lld", (long long)value);
        return false;
    }
    unsigned id = (unsigned)value;
    if (fd >= 0 && (int)id == c->id) {
        own_add_vector(c, fd);
    } else if (fd >= 0) {
        peer_add_vector(c, id, fd);
    } else if ((int)id != c->id) {
        peer_remove(c, id);
    }
    return true;
}

static bool handle_msg(Client *c, int64_t value, int fd, Error **errp)
{
    switch (c->phase) {
    case WANT_VERSION:
        if (value != IVSHMEM_PROTOCOL_VERSION || fd >= 0) {
            error_setg(errp, "unsupported protocol version %lld", (long long)value);
            return false;
        }
        c->phase = WANT_ID;
        return true;
    case WANT_ID:
        if (value < 0 || value > IVSHMEM_MAX_ID || fd >= 0) {
            error_setg(errp, "the server sent an invalid own id %lld", (long long)value);
            return false;
        }
        c->id = (int)value;
        printf("connected: id %d\n", c->id);
        c->phase = WANT_SHM;
        return true;
    case WANT_SHM: {
        struct stat st;
        if (value != IVSHMEM_SHM_MSG || fd < 0 || fstat(fd, &st) < 0) {
            error_setg(errp, "expected the shared memory descriptor");
            return false;
        }
        c->shm_fd = fd;
        printf("shared memory: %lld bytes\n", (long long)st.st_size);
        c->phase = RUNNING;
        return true;
    }
    case RUNNING:
        return handle_running(c, value, fd, errp);
    }
    return false;
}

static bool read_server(Client *c, Error **errp)
{
    int64_t value;
    int fd;
    int r = ivshmem_recv_msg(c->sock, &value, &fd, errp);
    if (r == 0) {
        error_setg(errp, "the server closed the connection");
        return false;
    }
    if (r < 0) {
        return false;
    }
    if (!handle_msg(c, value, fd, errp)) {
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    return true;
}

/* ---- commands ----------------------------------------------------------- */

static void ring(Client *c, unsigned id, unsigned vector)
{
    Peer *p = c->peers[id];
    if (!p || vector >= p->nvectors) {
        printf("no peer %u vector %u\n", id, vector);
        return;
    }
    uint64_t one = 1;
    if (write(p->vectors[vector], &one, sizeof(one)) != sizeof(one)) {
        printf("ringing peer %u vector %u failed: %s\n", id, vector, strerror(errno));
        return;
    }
    printf("rang peer %u vector %u\n", id, vector);
}

static void ring_all(Client *c)
{
    for (unsigned id = 0; id < IVSHMEM_ID_COUNT; id++) {
        for (unsigned v = 0; c->peers[id] && v < c->peers[id]->nvectors; v++) {
            ring(c, id, v);
        }
    }
}

static void dump(Client *c)
{
    printf("own id %d: %u vectors\n", c->id, c->nown);
    for (unsigned id = 0; id < IVSHMEM_ID_COUNT; id++) {
        if (c->peers[id]) {
            printf("peer %u: %u vectors\n", id, c->peers[id]->nvectors);
        }
    }
}

/* A decimal number in [0, max], the whole word. */
static bool parse_word(const char *word, unsigned max, unsigned *out)
{
    char *end;
    if (!word || !*word || *word == '-') {
        return false;
    }
    errno = 0;
    unsigned long v = strtoul(word, &end, 10);
    if (errno || *end || v > max) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static void run_command(Client *c, const char *line)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", line);
    char *words[4] = { NULL };
    int n = 0;
    for (char *w = strtok_r(buf, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == (int)ARRAY_SIZE(words)) {
            n++;
            break;
        }
        words[n++] = w;
    }
    unsigned id, vector;
    if (n == 0) {
        return;
    } else if (n == 2 && !strcmp(words[0], "int") && !strcmp(words[1], "all")) {
        ring_all(c);
    } else if (n == 3 && !strcmp(words[0], "int") && parse_word(words[1], IVSHMEM_MAX_ID, &id) &&
               parse_word(words[2], IVSHMEM_MAX_VECTORS - 1, &vector)) {
        ring(c, id, vector);
    } else if (n == 1 && !strcmp(words[0], "dump")) {
        dump(c);
    } else if (n == 1 && !strcmp(words[0], "quit")) {
        c->quit = true;
    } else {
        printf("commands: int PEER VECTOR | int all | dump | quit\n");
    }
}

/* ---- loop --------------------------------------------------------------- */

static void drain_interrupts(Client *c, unsigned v)
{
    uint64_t count;
    if (read(c->own[v], &count, sizeof(count)) == sizeof(count)) {
        printf("interrupt on vector %u (count %llu)\n", v, (unsigned long long)count);
    }
}

static void read_stdin(Client *c)
{
    char line[256];
    if (!fgets(line, sizeof(line), stdin)) {
        c->quit = true;
        return;
    }
    run_command(c, line);
}

/*
 * Serve until quit. The protocol has no end-of-set-up marker: the set-up is
 * over once our own vectors came and the server then stays quiet a moment.
 * Commands (@cmds, else stdin) run only from then on. With @cmds, linger
 * @linger_ms afterwards to print interrupts, then return.
 */
static bool client_loop(Client *c, char **cmds, int ncmds, int linger_ms, Error **errp)
{
    int64_t deadline = -1;
    while (!c->quit) {
        struct pollfd pfd[2 + IVSHMEM_MAX_VECTORS];
        int n = 0;
        pfd[n++] = (struct pollfd){ .fd = c->sock, .events = POLLIN };
        bool use_stdin = c->ready && ncmds == 0;
        if (use_stdin) {
            pfd[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
        }
        int first_own = n;
        for (unsigned v = 0; v < c->nown; v++) {
            pfd[n++] = (struct pollfd){ .fd = c->own[v], .events = POLLIN };
        }
        int timeout = c->ready ? -1 : QUIET_MS;
        if (deadline >= 0) {
            timeout = (int)MAX(0, deadline - monotonic_ms());
        }
        fflush(stdout);
        int r = poll(pfd, (nfds_t)n, timeout);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            error_setg_errno(errp, errno, "poll");
            return false;
        }
        if (r == 0 && !c->ready && c->nown > 0) {
            c->ready = true;
            printf("ready\n");
            for (int i = 0; i < ncmds; i++) {
                run_command(c, cmds[i]);
            }
            if (ncmds) {
                deadline = monotonic_ms() + linger_ms;
            }
            continue;
        }
        if (r == 0 && deadline >= 0) {
            return true;
        }
        for (int i = first_own; i < n; i++) {
            if (pfd[i].revents & POLLIN) {
                drain_interrupts(c, (unsigned)(i - first_own));
            }
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR) && !read_server(c, errp)) {
            return false;
        }
        if (use_stdin && pfd[1].revents & (POLLIN | POLLHUP)) {
            read_stdin(c);
        }
    }
    return true;
}

static void usage(FILE *out)
{
    fprintf(out,
"Usage: vireo-ivshmem-client [-S PATH] [-c COMMAND]... [-t SECONDS]\n"
"Connect to an ivshmem server, show peers and interrupts, ring peers.\n"
"\n"
"  -S PATH     the server's socket (default: %s)\n"
"  -c COMMAND  run COMMAND once set up, instead of reading stdin (repeatable)\n"
"  -t SECONDS  with -c, keep printing interrupts this long, then exit (default 0)\n"
"  -h          show this help\n"
"  --sandbox on|off  confine the client with seccomp once connected (default on)\n"
"\n"
"Commands: int PEER VECTOR (ring a peer), int all (ring every vector of every\n"
"peer), dump (list peers), quit.\n", DEFAULT_SOCKET);
}

typedef struct ClientArgs {
    const char *path;
    char **cmds;            /* the -c commands, in order */
    int ncmds;
    unsigned linger_s;
} ClientArgs;

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, ClientArgs *a)
{
    enum { OPT_SANDBOX = 256 };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "sandbox", required_argument, NULL, OPT_SANDBOX },
        { NULL },
    };
    Error *err = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "hS:c:t:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            return 0;
        case 'S':
            a->path = optarg;
            break;
        case 'c':
            a->cmds[a->ncmds++] = optarg;
            break;
        case 't':
            if (!parse_word(optarg, 24 * 3600, &a->linger_s)) {
                fprintf(stderr, "vireo-ivshmem-client: invalid -t '%s'\n", optarg);
                return 1;
            }
            break;
        case OPT_SANDBOX:
            if (!sandbox_program_opt(optarg, &err)) {
                fprintf(stderr, "vireo-ivshmem-client: %s\n", error_get_pretty(err));
                error_free(err);
                return 1;
            }
            break;
        default:
            usage(stderr);
            return 1;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    ClientArgs args = { .path = DEFAULT_SOCKET, .cmds = xzalloc(sizeof(char *) * (size_t)argc) };
    int status = parse_args(argc, argv, &args);
    if (status >= 0) {
        free(args.cmds);
        return status;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    Error *err = NULL;
    Client *c = xzalloc(sizeof(*c));
    c->id = -1;
    c->shm_fd = -1;
    c->sock = connect_unix(args.path, &err);
    /* Everything after the connect comes from the server: confine it. */
    bool ok = c->sock >= 0 && sandbox_confine_program(SANDBOX_PROGRAM_IVSHMEM_CLIENT, &err) &&
              client_loop(c, args.cmds, args.ncmds, (int)args.linger_s * 1000, &err);
    if (!ok) {
        fprintf(stderr, "vireo-ivshmem-client: %s\n", error_get_pretty(err));
        error_free(err);
    }
    for (unsigned id = 0; id < IVSHMEM_ID_COUNT; id++) {
        Peer *p = c->peers[id];
        for (unsigned v = 0; p && v < p->nvectors; v++) {
            close(p->vectors[v]);
        }
        free(p);
    }
    for (unsigned v = 0; v < c->nown; v++) {
        close(c->own[v]);
    }
    if (c->shm_fd >= 0) {
        close(c->shm_fd);
    }
    if (c->sock >= 0) {
        close(c->sock);
    }
    free(c);
    free(args.cmds);
    return ok ? 0 : 1;
}
