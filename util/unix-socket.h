/*
 * Listening UNIX stream sockets for vireo's servers (the QMP socket front
 * end, vireo-ivshmem-server).
 */
#ifndef VIREO_UTIL_UNIX_SOCKET_H
#define VIREO_UTIL_UNIX_SOCKET_H

#include "util/error.h"

/*
 * Listen on path (non-blocking, close-on-exec). A socket file nobody listens
 * on is left over from a dead server and is replaced; a live one, or a file
 * that is not a socket, is an error. Returns the fd, or -1.
 */
int unix_socket_listen(const char *path, Error **errp);

#endif
