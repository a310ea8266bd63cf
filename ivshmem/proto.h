/*
 * The ivshmem client-server wire format, shared by vireo-ivshmem-server and
 * vireo-ivshmem-client.
 *
 * The stream is one-way, server to client. Every message is one 8-byte
 * little-endian signed number, optionally with one file descriptor passed
 * in SCM_RIGHTS. On connect a client receives, in order:
 *   IVSHMEM_PROTOCOL_VERSION, its own id, -1 with the shared memory fd,
 *   for each existing peer: the peer's id once per vector, each with an eventfd,
 *   its own id once per vector, each with the eventfd it is rung through.
 * Afterwards: a peer id with an fd is a peer's vector (a join), a peer id
 * without an fd is a leave.
 */
#ifndef VIREO_IVSHMEM_PROTO_H
#define VIREO_IVSHMEM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

#define IVSHMEM_PROTOCOL_VERSION 0
#define IVSHMEM_MSG_SIZE 8
#define IVSHMEM_SHM_MSG (-1)        /* the value that carries the shm fd */
#define IVSHMEM_MAX_ID 65535        /* the Doorbell register has 16 bits */
#define IVSHMEM_ID_COUNT (IVSHMEM_MAX_ID + 1)
#define IVSHMEM_MAX_VECTORS 64

/*
 * Send bytes [off, 8) of the message @value, with @fd attached when it is
 * not -1 (the caller passes an fd only while nothing of the message has gone
 * out, off == 0). Never blocks. Returns the number of bytes sent, or -1 with
 * errno set (EAGAIN when the socket buffer is full).
 */
ssize_t ivshmem_send_part(int sock, int64_t value, int fd, size_t off);

/*
 * Receive one whole message from a blocking socket. *fd is the descriptor
 * that came with it or -1. Returns 1 on a message, 0 at end of stream,
 * -1 with errp set on an error or a malformed message (extra descriptors
 * are closed).
 */
int ivshmem_recv_msg(int sock, int64_t *value, int *fd, Error **errp);

#endif
