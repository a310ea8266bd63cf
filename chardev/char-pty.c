/*
 * pty character devices: vireo opens a pseudo-terminal and serves the
 * front-end (a UART) on its master side; `virsh console`, screen or
 * minicom open the terminal side, whose path query-chardev reports as
 * "pty:/dev/pts/N" and stderr announces as QEMU does.
 */
#include "chardev/chardev-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "util/osdep.h"

bool pty_chardev_open(Chardev *chr, Error **errp)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) {
        error_setg_errno(errp, errno, "Failed to create PTY");
        return false;
    }
    char name[64];
    if (grantpt(master) < 0 || unlockpt(master) < 0 ||
        ptsname_r(master, name, sizeof(name)) != 0) {
        error_setg_errno(errp, errno, "Failed to set up PTY");
        close(master);
        return false;
    }
    /* Holding the terminal side open keeps reads on the master from failing
     * with EIO while no console is attached. */
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct termios t;
    if (slave < 0 || tcgetattr(slave, &t) < 0) {
        error_setg_errno(errp, errno, "Failed to open PTY %s", name);
        if (slave >= 0) {
            close(slave);
        }
        close(master);
        return false;
    }
    cfmakeraw(&t);          /* bytes pass unchanged both ways, no echo */
    tcsetattr(slave, TCSANOW, &t);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    chr->pty_slave_fd = slave;
    chr->filename = xasprintf("pty:%s", name);
    fprintf(stderr, "char device redirected to %s (label %s)\n", name, chr->id);
    chardev_conn_new(chr, master, master, false, true);
    return true;
}
