/*
 * Listening UNIX stream sockets (see unix-socket.h).
 */
#include "util/unix-socket.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A socket file nobody listens on is left over from a dead server; a live
 * one means another server runs there and must not be stolen from. */
static bool clear_stale_socket(const struct sockaddr_un *addr, Error **errp)
{
    struct stat st;
    if (lstat(addr->sun_path, &st) < 0) {
        return true;
    }
    if (!S_ISSOCK(st.st_mode)) {
        error_setg(errp, "'%s' exists and is not a socket", addr->sun_path);
        return false;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 &&
                connect(probe, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
    if (probe >= 0) {
        close(probe);
    }
    if (live) {
        error_setg(errp, "a server is already listening on '%s'", addr->sun_path);
        return false;
    }
    unlink(addr->sun_path);
    return true;
}

int unix_socket_listen(const char *path, Error **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "socket path '%s' is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    if (!clear_stale_socket(&addr, errp)) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, SOMAXCONN) < 0) {
        error_setg_errno(errp, errno, "listening on '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}
