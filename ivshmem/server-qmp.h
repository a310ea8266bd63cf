/*
 * vireo-ivshmem-server's QMP monitor (--qmp PATH): the commands of
 * qapi/ivshmem-server.json over the shared monitor core, served from the
 * server's own epoll loop, and the peer events.
 */
#ifndef VIREO_IVSHMEM_SERVER_QMP_H
#define VIREO_IVSHMEM_SERVER_QMP_H

#include "ivshmem/server.h"

/* Listen on @path; before detaching, so a failure reaches the caller and
 * the socket accepts connections as soon as the parent exits. */
bool ivsh_qmp_listen(const char *path, Error **errp);
/* Serve from @s's loop and report its peers (after ivsh_server_init()). */
bool ivsh_qmp_attach(IvshServer *s, Error **errp);
/* Close the monitor; clients get the replies their socket can take. */
void ivsh_qmp_stop(void);

#endif
