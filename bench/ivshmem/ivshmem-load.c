/*
 * Load generator for bench/ivshmem/run: many ivshmem clients in one process,
 * so the measurement is the server's, not a scripting language's.
 *
 *   ivshmem-load admit SOCKET CLIENTS VECTORS LEAVES
 *     connect CLIENTS at once and time until every one has its set-up and
 *     knows every other's VECTORS eventfds; then LEAVES times close one
 *     client and time until all the others got its leave notice.
 *   ivshmem-load pingpong SOCKET SECONDS
 *     two clients (two processes) ring each other through the eventfds the
 *     server gave them; round trips per second.
 *
 * Prints "key value" lines.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ivshmem/proto.h"

typedef struct Load {
    int sock;
    int64_t id;         /* -1 until received */
    int got;            /* messages of the fixed prefix received (3) */
    long own;           /* own vectors received */
    long known;         /* peer vectors received */
    bool saw_leave;
} Load;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

/* Read one message (the socket is readable); keep counts, close the fd. */
static void load_read(Load *l, int64_t leaving)
{
    int64_t v;
    int fd;
    Error *err = NULL;
    if (ivshmem_recv_msg(l->sock, &v, &fd, &err) != 1) {
        fprintf(stderr, "ivshmem-load: client lost: %s\n", err ? error_get_pretty(err) : "EOF");
        exit(1);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (l->got < 3) {
        if (l->got++ == 1) {
            l->id = v;
        }
    } else if (v == l->id) {
        l->own++;
    } else if (fd >= 0) {
        l->known++;
    } else if (v == leaving) {
        l->saw_leave = true;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void admit(const char *path, long n, long vectors, long leaves)
{
    Load *c = calloc((size_t)n, sizeof(*c));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        c[i].sock = dial(path);
        c[i].id = -1;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].sock, &ev);
    }
    long complete = 0;
    struct epoll_event evs[256];
    while (complete < n) {
        int k = epoll_wait(ep, evs, 256, 20000);
        if (k <= 0) {
            fprintf(stderr, "ivshmem-load: stalled with %ld of %ld complete\n", complete, n);
            exit(1);
        }
        for (int i = 0; i < k; i++) {
            Load *l = evs[i].data.ptr;
            bool was = l->own == vectors && l->known == (n - 1) * vectors;
            load_read(l, -1);
            complete += !was && l->own == vectors && l->known == (n - 1) * vectors;
        }
    }
    printf("admit_s %.6f\n", now_s() - t0);
    double *t = calloc((size_t)leaves + 1, sizeof(double));
    long alive = n;
    for (long r = 0; r < leaves && alive > 1; r++) {
        Load *gone = &c[--alive];
        t0 = now_s();
        close(gone->sock);
        long told = 0;
        while (told < alive) {
            int k = epoll_wait(ep, evs, 256, 20000);
            if (k <= 0) {
                fprintf(stderr, "ivshmem-load: leave told to %ld of %ld\n", told, alive);
                exit(1);
            }
            for (int i = 0; i < k; i++) {
                Load *l = evs[i].data.ptr;
                bool was = l->saw_leave;
                load_read(l, gone->id);
                told += !was && l->saw_leave;
            }
        }
        t[r] = now_s() - t0;
        for (long i = 0; i < alive; i++) {
            c[i].saw_leave = false;
        }
    }
    long done = n - alive;
    qsort(t, (size_t)done, sizeof(double), cmp_double);
    if (done) {
        printf("leave_median_s %.6f\nleave_min_s %.6f\nleave_max_s %.6f\nleave_others %ld\n",
               t[done / 2], t[0], t[done - 1], alive);
    }
    free(t);
    free(c);
}

/* Set a client up and return the eventfd that rings its (single) peer and
 * its own vector 0; waits for the peer when @wait_peer. */
static void pp_setup(const char *path, bool wait_peer, int *ring_peer, int *own, int *sock)
{
    *sock = dial(path);
    *ring_peer = *own = -1;
    int64_t id = -1, v;
    int fd;
    for (int got = 0; *own < 0 || (wait_peer && *ring_peer < 0); got++) {
        if (ivshmem_recv_msg(*sock, &v, &fd, NULL) != 1) {
            fprintf(stderr, "ivshmem-load: set-up failed\n");
            exit(1);
        }
        if (got == 1) {
            id = v;
        } else if (got >= 3 && v == id && *own < 0) {
            *own = fd;
        } else if (got >= 3 && fd >= 0 && *ring_peer < 0) {
            *ring_peer = fd;
        } else if (fd >= 0) {
            close(fd);
        }
    }
}

static void bounce(int ring, int own, double seconds, long *trips)
{
    uint64_t one = 1, got;
    struct pollfd p = { .fd = own, .events = POLLIN };
    double end = now_s() + seconds;
    while (now_s() < end) {
        if (trips && write(ring, &one, 8) != 8) {
            exit(1);
        }
        if (poll(&p, 1, 2000) != 1) {
            return;
        }
        if (read(own, &got, 8) != 8) {
            exit(1);
        }
        if (trips) {
            (*trips)++;
        } else if (write(ring, &one, 8) != 8) {
            exit(1);
        }
    }
}

static void pingpong(const char *path, double seconds)
{
    int a_ring, a_own, a_sock;
    pp_setup(path, false, &a_ring, &a_own, &a_sock);
    pid_t pid = fork();
    if (pid == 0) {
        int b_ring, b_own, b_sock;
        pp_setup(path, true, &b_ring, &b_own, &b_sock);
        bounce(b_ring, b_own, seconds + 5, NULL);
        _exit(0);
    }
    int64_t v;
    int fd;
    while (a_ring < 0) {          /* the child's join */
        if (ivshmem_recv_msg(a_sock, &v, &fd, NULL) != 1) {
            exit(1);
        }
        a_ring = fd;
    }
    long trips = 0;
    double t0 = now_s();
    bounce(a_ring, a_own, seconds, &trips);
    printf("pingpong_per_s %.0f\n", trips / (now_s() - t0));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (argc == 6 && !strcmp(argv[1], "admit")) {
        admit(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]));
    } else if (argc == 4 && !strcmp(argv[1], "pingpong")) {
        pingpong(argv[2], atof(argv[3]));
    } else {
        fprintf(stderr, "usage: ivshmem-load admit SOCKET CLIENTS VECTORS LEAVES\n"
                        "       ivshmem-load pingpong SOCKET SECONDS\n");
        return 1;
    }
    return 0;
}
