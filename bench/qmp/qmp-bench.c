/*
 * QMP round-trip benchmark client: connects to a UNIX socket, negotiates,
 * then sends one command at a time and waits for its reply, N times.
 * Prints "<commands per second> <seconds>". The same program measures any
 * VMM that speaks QMP, so the comparison is fair.
 *
 * usage: qmp-bench SOCKET COUNT [COMMAND [ARGUMENTS-JSON]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 20];
static size_t buf_len;

/* Read until one complete line (a reply or an event) is buffered; return its length. */
static size_t read_line(int fd)
{
    for (;;) {
        char *nl = memchr(buf, '\n', buf_len);
        if (nl) {
            return (size_t)(nl - buf) + 1;
        }
        ssize_t n = read(fd, buf + buf_len, sizeof(buf) - buf_len);
        if (n <= 0) {
            fprintf(stderr, "qmp-bench: connection closed\n");
            exit(1);
        }
        buf_len += (size_t)n;
    }
}

static void consume(size_t len)
{
    memmove(buf, buf + len, buf_len - len);
    buf_len -= len;
}

/* Wait for the reply to the last command, skipping events. */
static void wait_reply(int fd)
{
    for (;;) {
        size_t len = read_line(fd);
        int is_event = memmem(buf, len, "\"event\"", 7) != NULL;
        if (!is_event && !memmem(buf, len, "\"return\"", 8)) {
            fprintf(stderr, "qmp-bench: error reply: %.*s", (int)len, buf);
            exit(1);
        }
        consume(len);
        if (!is_event) {
            return;
        }
    }
}

static void send_all(int fd, const char *s, size_t len)
{
    while (len) {
        ssize_t n = write(fd, s, len);
        if (n <= 0) {
            perror("qmp-bench: write");
            exit(1);
        }
        s += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: qmp-bench SOCKET COUNT [COMMAND [ARGUMENTS-JSON]]\n");
        return 2;
    }
    long count = atol(argv[2]);
    const char *cmd = argc > 3 ? argv[3] : "query-name";
    char req[4096];
    int len = argc > 4
        ? snprintf(req, sizeof(req), "{\"execute\":\"%s\",\"arguments\":%s}\n", cmd, argv[4])
        : snprintf(req, sizeof(req), "{\"execute\":\"%s\"}\n", cmd);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("qmp-bench: connect");
        return 1;
    }
    consume(read_line(fd));                             /* greeting */
    const char *caps = "{\"execute\":\"qmp_capabilities\"}\n";
    send_all(fd, caps, strlen(caps));
    wait_reply(fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < count; i++) {
        send_all(fd, req, (size_t)len);
        wait_reply(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%.0f %.3f\n", (double)count / secs, secs);
    return 0;
}
