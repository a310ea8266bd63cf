/*
 * The tap network back-end: a Linux tun/tap interface opened with a virtio
 * net header in front of each packet, so checksum and segmentation offloads
 * pass between the guest and the host kernel untouched.
 */
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/osdep.h"

int tap_open(const char *ifname, bool multi_queue, char *actual_name, Error **errp)
{
    int fd = vireo_open("/dev/net/tun", O_RDWR | O_NONBLOCK, 0, errp);
    if (fd < 0) {
        return -1;
    }
    struct ifreq ifr = { 0 };
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
    if (ifname) {
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    }
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        error_setg_errno(errp, errno, "could not configure /dev/net/tun (%s)",
                         ifname ? ifname : "");
        close(fd);
        return -1;
    }
    if (actual_name) {
        snprintf(actual_name, IFNAMSIZ, "%s", ifr.ifr_name);
    }
    return fd;
}

bool tap_adopt_fd(int fd, Error **errp)
{
    struct ifreq ifr = { 0 };
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
        error_setg_errno(errp, errno, "fd %d is not a tap device", fd);
        return false;
    }
    if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_VNET_HDR)) {
        error_setg(errp, "fd %d: tap %s was not opened with IFF_TAP and IFF_VNET_HDR", fd,
                   ifr.ifr_name);
        return false;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        error_setg_errno(errp, errno, "fd %d: cannot make it non-blocking", fd);
        return false;
    }
    return true;
}

bool tap_set_sndbuf(int fd, uint64_t bytes)
{
    /*
     * The kernel's default is net.core.wmem_default (about 200 KiB): a
     * vhost-net or VMM sender that fills it waits for the socket to drain
     * instead of handing the next frame over.
     */
    int sndbuf = bytes == 0 || bytes > INT_MAX ? INT_MAX : (int)bytes;
    return ioctl(fd, TUNSETSNDBUF, &sndbuf) == 0;
}

bool tap_set_vnet_hdr_len(int fd, int len)
{
    return ioctl(fd, TUNSETVNETHDRSZ, &len) == 0;
}

bool tap_set_offload(int fd, bool csum, bool tso4, bool tso6, bool ecn, bool ufo)
{
    unsigned flags = (csum ? TUN_F_CSUM : 0) | (tso4 ? TUN_F_TSO4 : 0) |
                     (tso6 ? TUN_F_TSO6 : 0) | (ecn ? TUN_F_TSO_ECN : 0) |
                     (ufo ? TUN_F_UFO : 0);
    return ioctl(fd, TUNSETOFFLOAD, flags) == 0;
}

bool tap_probe_ufo(int fd)
{
    bool ok = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_UFO) == 0;
    ioctl(fd, TUNSETOFFLOAD, 0);
    return ok;
}

bool tap_set_queue_enabled(int fd, bool enabled)
{
    struct ifreq ifr = { 0 };
    ifr.ifr_flags = enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    return ioctl(fd, TUNSETQUEUE, &ifr) == 0;
}
