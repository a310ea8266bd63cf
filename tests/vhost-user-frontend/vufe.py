"""Helpers for the vhost-user frontend tests: back-ends behind vireo.

A scripted back-end (ScriptedBackend) listens on a UNIX socket, answers the
frontend's messages as a well-behaved back-end would, records every message
with its payload and descriptors, and can be told to misbehave on one
request. Real back-ends (qemu-storage-daemon, virtiofsd) are started here
too. The driver side runs over qtest (tests/virtio/vdriver.py).
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "virtio"))
import vdriver  # noqa: E402

# Request ids (vhost-user/vhost-user-msg.h)
GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
GET_CONFIG, SET_CONFIG, GET_INFLIGHT_FD, SET_INFLIGHT_FD = 24, 25, 31, 32
GET_MAX_MEM_SLOTS, ADD_MEM_REG, SET_STATUS = 36, 37, 39
SET_BACKEND_REQ_FD = 21
# Requests on the back-end channel (back-end to frontend)
B_IOTLB_MSG, B_CONFIG_CHANGE_MSG, B_VRING_HOST_NOTIFIER_MSG, B_VRING_CALL = 1, 2, 3, 4

F_VERSION, F_REPLY, F_NEED_REPLY = 1, 4, 8
PF_MQ, PF_LOG_SHMFD, PF_RARP, PF_REPLY_ACK, PF_BACKEND_REQ, PF_CONFIG = 0, 1, 2, 3, 5, 9
PF_INFLIGHT, PF_MEM_SLOTS, PF_STATUS = 12, 15, 16
NOFD = 1 << 8

# What every request that answers carries back (payload size).
ANSWERS = {GET_FEATURES: 8, GET_PROTOCOL_FEATURES: 8, GET_QUEUE_NUM: 8, GET_VRING_BASE: 8,
           GET_MAX_MEM_SLOTS: 8, GET_INFLIGHT_FD: 20}

BLK_FEATURES = ((1 << 32) | (1 << 30) | (1 << 29) | (1 << 28) | (1 << 24) | (1 << 2) | (1 << 1)
                | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14))


def blk_config(sectors, queues=1):
    cfg = bytearray(60)
    struct.pack_into("<QII", cfg, 0, sectors, 65536, 126)
    struct.pack_into("<I", cfg, 20, 512)
    struct.pack_into("<H", cfg, 34, queues)
    return bytes(cfg)


class Msg:
    def __init__(self, req, flags, payload, fds):
        self.req, self.flags, self.payload, self.fds = req, flags, payload, fds

    def u64(self):
        return struct.unpack_from("<Q", self.payload)[0]

    def state(self):
        return struct.unpack_from("<II", self.payload)

    def __repr__(self):
        return f"Msg({self.req}, flags={self.flags:#x}, size={len(self.payload)}, fds={len(self.fds)})"


class ScriptedBackend:
    """A vhost-user back-end played by the test; see the module comment.

    misbehave: {request id: action}, action one of "short" (reply too
    small), "wrong-id", "no-ack" (never acks), "huge" (a 100 MB size
    field), "close" (drop the connection), "silence" (never answer),
    "refuse" (ack with an error), "no-reply-flag".
    """

    def __init__(self, path, features=BLK_FEATURES, protocol=None, queues=2, config=None,
                 misbehave=None):
        self.path = path
        self.features = features
        self.protocol = protocol if protocol is not None else (
            1 << PF_MQ | 1 << PF_REPLY_ACK | 1 << PF_CONFIG | 1 << PF_LOG_SHMFD | 1 << PF_RARP
            | 1 << PF_BACKEND_REQ)
        self.queues = queues
        self.config = config or blk_config(8192)
        self.misbehave = dict(misbehave or {})
        self.log = []
        self.bases = {}
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.conn = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def requests(self):
        with self.lock:
            return [m.req for m in self.log]

    def messages(self, req):
        with self.lock:
            return [m for m in self.log if m.req == req]

    def wait_for(self, req, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.messages(req)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {req} not seen: {self.requests()}")
            time.sleep(0.01)

    def _recv_exact(self, n, fds):
        buf = b""
        while len(buf) < n:
            data, anc, _, _ = self.conn.recvmsg(n - len(buf), socket.CMSG_SPACE(8 * 4))
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(struct.unpack(f"{len(cdata) // 4}i", cdata[:len(cdata) // 4 * 4]))
            if not data:
                raise EOFError
            buf += data
        return buf

    def _send(self, req, payload, flags=F_VERSION | F_REPLY, fds=(), size=None):
        hdr = struct.pack("<III", req, flags, len(payload) if size is None else size)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
        self.conn.sendmsg([hdr + payload], anc)

    def _serve(self):
        try:
            self.conn, _ = self.listener.accept()
            while True:
                fds = []
                req, flags, size = struct.unpack("<III", self._recv_exact(12, fds))
                payload = self._recv_exact(size, fds) if size else b""
                msg = Msg(req, flags, payload, fds)
                with self.lock:
                    self.log.append(msg)
                if not self._answer(msg):
                    break
        except (EOFError, OSError):
            pass
        finally:
            self.done.set()

    def _reply_payload(self, m):
        if m.req == GET_FEATURES:
            return struct.pack("<Q", self.features)
        if m.req == GET_PROTOCOL_FEATURES:
            return struct.pack("<Q", self.protocol)
        if m.req == GET_QUEUE_NUM:
            return struct.pack("<Q", self.queues)
        if m.req == GET_MAX_MEM_SLOTS:
            return struct.pack("<Q", 32)
        if m.req == GET_VRING_BASE:
            idx = m.state()[0]
            return struct.pack("<II", idx, self.bases.get(idx, 0))
        if m.req == GET_CONFIG:
            off, size, flags = struct.unpack_from("<III", m.payload)
            return struct.pack("<III", off, size, flags) + self.config[off:off + size]
        return None

    def channel(self, timeout=10):
        """The back-end channel the frontend handed over (SET_BACKEND_REQ_FD)."""
        self.wait_for(SET_BACKEND_REQ_FD, timeout=timeout)
        with self.lock:
            if getattr(self, "chan", None) is None:
                fd = os.dup(self.messages_unlocked(SET_BACKEND_REQ_FD)[-1].fds[0])
                self.chan = socket.socket(fileno=fd)
            return self.chan

    def messages_unlocked(self, req):
        return [m for m in self.log if m.req == req]

    def backend_request(self, req, payload=b"", flags=F_VERSION, fds=(), size=None,
                        timeout=10):
        """Send a request on the back-end channel; with NEED_REPLY, return the
        frontend's reply as (request, flags, u64)."""
        ch = self.channel()
        hdr = struct.pack("<III", req, flags, len(payload) if size is None else size)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
        ch.sendmsg([hdr + payload], anc)
        if not flags & F_NEED_REPLY:
            return None
        ch.settimeout(timeout)
        buf = b""
        while len(buf) < 20:
            data = ch.recv(20 - len(buf))
            if not data:
                raise EOFError("channel closed")
            buf += data
        rreq, rflags, rsize, value = struct.unpack("<IIIQ", buf)
        assert rsize == 8, rsize
        return rreq, rflags, value

    def _answer(self, m):
        if m.req == SET_VRING_BASE:
            idx, num = m.state()
            self.bases[idx] = num
        action = self.misbehave.pop(m.req, None)
        payload = self._reply_payload(m)
        wants_ack = payload is None and m.flags & F_NEED_REPLY
        if action == "close":
            self.conn.close()
            return False
        if action == "silence" or (action == "no-ack" and wants_ack):
            return True
        if payload is None and not wants_ack:
            return True
        if payload is None:
            payload = struct.pack("<Q", 1 if action == "refuse" else 0)
        if action == "short":
            payload = payload[:len(payload) - 4]
        if action == "huge":
            self._send(m.req, payload, size=100 << 20)
            return True
        req = m.req + 1 if action == "wrong-id" else m.req
        flags = F_VERSION if action == "no-reply-flag" else F_VERSION | F_REPLY
        self._send(req, payload, flags=flags)
        return True

    def close(self):
        for s in (self.conn, self.listener, getattr(self, "chan", None)):
            try:
                s and s.close()
            except OSError:
                pass
        with self.lock:
            for m in self.log:
                for fd in m.fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                m.fds = []


# ---- real back-ends ----

def have(prog):
    return shutil.which(prog) is not None or os.path.exists(prog)


def wait_path(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError(f"back-end exited: {proc.stderr.read().decode(errors='replace')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)


def start_qsd(image, sock, queues=2):
    """qemu-storage-daemon exporting a raw image as vhost-user-blk."""
    proc = subprocess.Popen([
        "qemu-storage-daemon",
        "--blockdev", f"driver=file,node-name=file0,filename={image}",
        "--blockdev", "driver=raw,node-name=disk0,file=file0",
        "--export", f"type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
                    f"addr.path={sock},writable=on,num-queues={queues}",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_path(sock, proc)
    return proc


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tmpdir():
    return tempfile.mkdtemp(prefix="vu-frontend-")


class Blk:
    """virtio-blk requests from the qtest driver side, over one queue."""

    def __init__(self, v, queues=(0,)):
        self.v = v
        v.alloc = getattr(v, "alloc", vdriver.Alloc())
        slot = vdriver.Pci(v.qtest).find()[0][0]
        self.d = vdriver.VirtioPciDevice(v.qtest, slot, v.alloc)
        self.vqs = self.d.init(queues)
        self.hdr = self.d.alloc.take(16 * 64, 16)
        self.st = self.d.alloc.take(64, 16)
        self.data = self.d.alloc.take(1 << 20)
        self.n = 0

    def submit(self, rtype, sector, out=b"", in_len=0, vq=None):
        vq = vq or self.vqs[0]
        qt = self.v.qtest
        h = self.hdr + 16 * (self.n % 64)
        st = self.st + self.n % 64
        self.n += 1
        qt.memwrite(h, struct.pack("<IIQ", rtype, 0, sector))
        qt.writeb(st, 0xee)
        bufs = [(h, 16, False)]
        if out:
            qt.memwrite(self.data, out)
            bufs.append((self.data, len(out), False))
        if in_len:
            bufs.append((self.data, in_len, True))
        bufs.append((st, 1, True))
        vq.add_chain(bufs)
        vq.kick()
        return st

    def request(self, rtype, sector, out=b"", in_len=0, vq=None, timeout=10):
        vq = vq or self.vqs[0]
        st = self.submit(rtype, sector, out, in_len, vq)
        _, written = vq.wait_used(timeout)
        qt = self.v.qtest
        data = qt.memread(self.data, in_len) if in_len else b""
        return qt.readb(st), written, data
