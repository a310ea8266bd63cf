"""Python side of the ivshmem client-server protocol, for the server's tests
and benchmark: start vireo-ivshmem-server, connect clients, read messages.

A message is an 8-byte little-endian signed number, optionally with one
descriptor in SCM_RIGHTS (see ivshmem/proto.h).
"""
import array
import os
import resource
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time

_seq = 0


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Server:
    """vireo-ivshmem-server in the foreground on a private socket and shm name."""

    def __init__(self, binary, *args, vectors=1, size="1M", shm_name=None, sock=None):
        global _seq
        _seq += 1
        self.dir = tempfile.mkdtemp(prefix="ivsh-")
        self.sock = sock or os.path.join(self.dir, "sock")
        self.shm_name = shm_name or f"vireo-ivsh-test-{os.getpid()}-{_seq}"
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.cmd = [binary, "-F", "-v", "-S", self.sock, "-M", self.shm_name,
                    "-l", size, "-n", str(vectors), *args]
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_listening()

    def wait_listening(self, timeout=10):
        """Wait for the log line; a probe connection would take an id."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()}")
            if "listening on" in self.output():
                return
            time.sleep(0.02)
        raise RuntimeError("server did not start listening")

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, remove_shm=True):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        try:
            if remove_shm:
                os.unlink(f"/dev/shm/{self.shm_name}")
        except FileNotFoundError:
            pass
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        log = self.output()
        rc = self.stop()
        if exc_type is None:
            # SIGTERM must end the server cleanly, sanitizers silent
            assert rc == 0, f"server exit status {rc}: {log[-3000:]}"
            assert "Sanitizer" not in log and "runtime error" not in log, log[-3000:]
            shutil.rmtree(self.dir, ignore_errors=True)     # kept when failing


class Peer:
    """One client: its id, shm fd, own eventfds and the peers it knows."""

    def __init__(self, path, setup=True, vectors=None, timeout=10, keep_fds=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.keep_fds = keep_fds   # else peers' eventfds are closed on arrival
        self.id = None
        self.shm = -1
        self.own = []
        self.peers = {}          # id -> list of eventfds
        self.left = []           # ids announced as gone
        self.events = []         # (id, has_fd) in arrival order after set-up
        if setup:
            self.read_setup(vectors, timeout)

    def fileno(self):
        return self.sock.fileno()

    def recv(self, timeout=10):
        """One message as (value, fd or -1); None at end of stream."""
        data, fd = b"", -1
        self.sock.settimeout(timeout)
        while len(data) < 8:
            msg, anc, flags, _ = self.sock.recvmsg(8 - len(data), socket.CMSG_LEN(16))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[:len(payload) - len(payload) % 4])
                    for extra in fds:
                        if fd < 0:
                            fd = extra
                        else:
                            raise AssertionError("two descriptors in one message")
            if not msg:
                if data or fd >= 0:
                    raise AssertionError("stream ended inside a message")
                return None
            data += msg
        return struct.unpack("<q", data)[0], fd

    def read_setup(self, vectors, timeout=10):
        version, fd = self.recv(timeout)
        assert (version, fd) == (0, -1), (version, fd)
        self.id, fd = self.recv(timeout)
        assert fd == -1 and 0 <= self.id <= 65535, self.id
        value, self.shm = self.recv(timeout)
        assert value == -1 and self.shm >= 0, (value, self.shm)
        while vectors is None or len(self.own) < vectors:
            value, fd = self.recv(timeout)
            self.handle(value, fd)
            if vectors is None and self.own and not self.pending(0.1):
                break

    def pending(self, timeout=0):
        return readable(self.sock.fileno(), timeout)

    def handle(self, value, fd):
        assert 0 <= value <= 65535, value
        if value == self.id:
            assert fd >= 0, "own id without a descriptor"
            self.own.append(fd)
        elif fd >= 0:
            if not self.keep_fds:
                os.close(fd)
                fd = -1
            if value not in self.peers:
                self.events.append((value, True))
            self.peers.setdefault(value, []).append(fd)
        else:
            for old in self.peers.pop(value, []):
                if old >= 0:
                    os.close(old)
            self.left.append(value)
            self.events.append((value, False))

    def drain(self, quiet=0.2):
        """Read until the server has been silent for @quiet seconds."""
        while self.pending(quiet):
            if not self.read_one():
                return

    def read_one(self, timeout=10):
        got = self.recv(timeout)
        if got is None:
            return False
        self.handle(*got)
        return True

    def read_until(self, cond, timeout=10):
        end = time.monotonic() + timeout
        while not cond():
            left = end - time.monotonic()
            if left <= 0 or not self.read_one(left):
                raise AssertionError("condition not reached")

    def close(self):
        for fds in self.peers.values():
            for fd in fds:
                if fd >= 0:
                    os.close(fd)
        for fd in self.own + ([self.shm] if self.shm >= 0 else []):
            os.close(fd)
        self.peers, self.own, self.shm = {}, [], -1
        self.sock.close()


def ring(fd):
    os.write(fd, struct.pack("=Q", 1))


def readable(fd, timeout):
    """poll, not select: tests hold descriptors beyond FD_SETSIZE."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(max(0, timeout) * 1000))


def consistent_view(peer):
    """True when every leave @peer saw followed a join of that id; returns
    the ids it should still know."""
    known = set()
    for pid, joined in peer.events:
        assert joined or pid in known, f"leave of {pid} without a join"
        if joined:
            known.add(pid)
        else:
            known.discard(pid)
    assert known == set(peer.peers), (known, set(peer.peers))
    return known
