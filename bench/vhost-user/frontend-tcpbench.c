/*
 * TCP throughput for bench/vhost-user/frontend-net: one stream, either side.
 *
 *   frontend-tcpbench recv PORT             accept one connection, count bytes
 *                                           until the sender closes
 *   frontend-tcpbench send ADDR PORT SECS   connect (retrying for 20 s), write
 *                                           64 KiB blocks for SECS seconds
 *
 * Both print "RESULT MBps N" (the receiver's figure is the one that counts:
 * bytes that arrived over the time they took). Built static, so the same
 * binary runs in the guest's busybox initramfs and on the lab host.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (64 * 1024)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int receiver(int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0) {
        perror("listen");
        return 1;
    }
    printf("READY %d\n", port);
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    if (c < 0) {
        perror("accept");
        return 1;
    }
    static char buf[BLOCK];
    long long total = 0;
    double t0 = 0, t1 = 0;
    for (;;) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        if (total == 0) {
            t0 = now();         /* from the first byte: connection set-up excluded */
        }
        total += n;
        t1 = now();
    }
    double secs = t1 > t0 ? t1 - t0 : 1e-3;
    printf("RESULT MBps %.1f bytes %lld secs %.2f\n", total / 1e6 / secs, total, secs);
    return total > 0 ? 0 : 1;
}

static int sender(const char *addr, int port, double secs)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", addr);
        return 2;
    }
    int s = -1;
    for (double until = now() + 20; now() < until; usleep(100000)) {
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
            break;
        }
        close(s);
        s = -1;
    }
    if (s < 0) {
        perror("connect");
        return 1;
    }
    static char buf[BLOCK];
    memset(buf, 0x5a, sizeof(buf));
    long long total = 0;
    double t0 = now(), end = t0 + secs;
    while (now() < end) {
        ssize_t n = write(s, buf, sizeof(buf));
        if (n <= 0) {
            perror("write");
            return 1;
        }
        total += n;
    }
    close(s);
    printf("SENT MBps %.1f bytes %lld\n", total / 1e6 / (now() - t0), total);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "recv") == 0) {
        return receiver(atoi(argv[2]));
    }
    if (argc == 5 && strcmp(argv[1], "send") == 0) {
        return sender(argv[2], atoi(argv[3]), atof(argv[4]));
    }
    fprintf(stderr, "usage: frontend-tcpbench recv PORT | send ADDR PORT SECS\n");
    return 2;
}
