"""A scripted vhost-user frontend for the back-end tests.

Guest memory is a memfd that both this process and the back-end map; the
rings and buffers are laid out in it by the test, as a guest driver would.
Messages go over the UNIX socket with their fds as SCM_RIGHTS.
"""
import mmap
import os
import select
import socket
import struct
import time

# Requests (the ids of vhost-user/vhost-user-msg.h)
GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_LOG_BASE, SET_LOG_FD, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE = 6, 7, 8, 9, 10
GET_VRING_BASE, SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 11, 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
GET_CONFIG, SET_CONFIG, GET_INFLIGHT_FD, SET_INFLIGHT_FD = 24, 25, 31, 32
GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG, SET_STATUS, GET_STATUS = 36, 37, 38, 39, 40

F_VERSION = 1
F_REPLY = 1 << 2
F_NEED_REPLY = 1 << 3

PF_MQ, PF_LOG_SHMFD, PF_REPLY_ACK, PF_CONFIG = 0, 1, 3, 9
PF_INFLIGHT, PF_MEM_SLOTS, PF_STATUS = 12, 15, 16
VHOST_F_LOG_ALL = 26
F_PROTOCOL_FEATURES = 30
VIRTIO_F_VERSION_1 = 32
RING_F_EVENT_IDX = 29

NOFD = 1 << 8
VRING_F_LOG = 1

DESC_F_NEXT, DESC_F_WRITE = 1, 2
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8

UVA_BASE = 0x7f1200000000      # the frontend's "virtual address" of guest RAM


class Disconnected(Exception):
    pass


class GuestRam:
    def __init__(self, size=16 << 20):
        self.size = size
        self.fd = os.memfd_create("vu-test-ram")
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)

    def write(self, gpa, data):
        self.map[gpa:gpa + len(data)] = data

    def read(self, gpa, n):
        return bytes(self.map[gpa:gpa + n])

    def u16(self, gpa):
        return struct.unpack_from("<H", self.map, gpa)[0]

    def put16(self, gpa, v):
        struct.pack_into("<H", self.map, gpa, v)


class Ring:
    """A split ring of num entries at gpa: desc, avail, then used at the next page."""

    def __init__(self, ram, index, gpa, num=128):
        self.ram, self.index, self.num = ram, index, num
        self.desc = gpa
        self.avail = gpa + 16 * num
        self.used = (self.avail + 6 + 2 * num + 4095) & ~4095
        self.end = self.used + 6 + 8 * num
        self.avail_idx = 0
        self.used_seen = 0
        self.next_desc = 0
        ram.write(gpa, bytes(self.end - gpa))

    def add_chain(self, bufs):
        """bufs: [(gpa, len, writable)]; returns the head."""
        head = self.next_desc
        for i, (addr, ln, w) in enumerate(bufs):
            d = (head + i) % self.num
            flags = (DESC_F_WRITE if w else 0) | (DESC_F_NEXT if i + 1 < len(bufs) else 0)
            self.ram.write(self.desc + 16 * d,
                           struct.pack("<QIHH", addr, ln, flags, (d + 1) % self.num))
        self.next_desc = (head + len(bufs)) % self.num
        self.ram.put16(self.avail + 4 + 2 * (self.avail_idx % self.num), head)
        self.avail_idx = (self.avail_idx + 1) & 0xffff
        self.ram.put16(self.avail + 2, self.avail_idx)
        return head

    def used_idx(self):
        return self.ram.u16(self.used + 2)

    def used_elem(self, i):
        return struct.unpack_from("<II", self.ram.map, self.used + 4 + 8 * (i % self.num))


class Frontend:
    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.reply_ack = False

    def close(self):
        self.sock.close()

    def send(self, req, payload=b"", fds=(), need_reply=False, size=None):
        flags = F_VERSION | (F_NEED_REPLY if need_reply else 0)
        hdr = struct.pack("<III", req, flags, len(payload) if size is None else size)
        socket.send_fds(self.sock, [hdr + payload], list(fds)) if fds else \
            self.sock.sendall(hdr + payload)

    def recv(self):
        data, fds, _, _ = socket.recv_fds(self.sock, 12, 8)
        if len(data) == 0:
            raise Disconnected()
        while len(data) < 12:
            more = self.sock.recv(12 - len(data))
            if not more:
                raise Disconnected()
            data += more
        req, flags, size = struct.unpack("<III", data)
        payload = b""
        while len(payload) < size:
            more = self.sock.recv(size - len(payload))
            if not more:
                raise Disconnected()
            payload += more
        assert flags & F_REPLY, f"reply flag missing in 0x{flags:x}"
        return req, payload, fds

    def call(self, req, payload=b"", fds=()):
        self.send(req, payload, fds)
        rreq, rpayload, rfds = self.recv()
        assert rreq == req, f"reply to {rreq}, asked {req}"
        return rpayload, rfds

    def call_u64(self, req):
        return struct.unpack("<Q", self.call(req)[0])[0]

    def ack(self, req, payload=b"", fds=(), size=None):
        """Send with need-reply; the back-end's u64 status (0: success)."""
        self.send(req, payload, fds, need_reply=True, size=size)
        rreq, rpayload, _ = self.recv()
        assert rreq == req and len(rpayload) == 8, (rreq, rpayload)
        return struct.unpack("<Q", rpayload)[0]

    def do(self, req, payload=b"", fds=()):
        """A message without a reply of its own: with REPLY_ACK, insist on success."""
        if self.reply_ack:
            st = self.ack(req, payload, fds)
            assert st == 0, f"request {req} failed with {st}"
        else:
            self.send(req, payload, fds)

    def expect_drop(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(4096):
                    return
        except ConnectionResetError:
            return


def u64(v):
    return struct.pack("<Q", v)


def state(index, num):
    return struct.pack("<II", index, num)


def region(gpa, size, uva, offset):
    return struct.pack("<QQQQ", gpa, size, uva, offset)


def mem_table(regions):
    return struct.pack("<II", len(regions), 0) + b"".join(region(*r) for r in regions)


def vring_addr(ring, flags=0, log=0):
    return struct.pack("<IIQQQQ", ring.index, flags, UVA_BASE + ring.desc,
                       UVA_BASE + ring.used, UVA_BASE + ring.avail, log or ring.used)


def wait_used(ring, count, timeout=10):
    deadline = time.time() + timeout
    while ring.used_idx() != count:
        if time.time() > deadline:
            raise AssertionError(f"used idx {ring.used_idx()}, waited for {count}")
        time.sleep(0.002)


def wait_fd(fd, timeout=10):
    r, _, _ = select.select([fd], [], [], timeout)
    assert r, "no call notification"
    os.eventfd_read(fd)
