"""Helpers for the NBD server tests: images made with qemu-img/qemu-io,
vireo and vireo-storage-daemon with an NBD server, the real clients
(nbdinfo, nbdcopy, qemu-img, qemu-io) and a raw-socket client that speaks
the protocol byte by byte."""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import vmm  # noqa: E402
import vtest  # noqa: E402

INIT_MAGIC = 0x4E42444D41474943
OPTS_MAGIC = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
CHUNK_MAGIC = 0x668E33EF
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO = 1, 2, 3, 5, 6, 7
OPT_STRUCTURED, OPT_LIST_META, OPT_SET_META = 8, 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META = 1, 2, 3, 4
ERR_UNSUP, ERR_POLICY, ERR_INVALID, ERR_UNKNOWN, ERR_TOO_BIG = (
    2**31 + 1, 2**31 + 2, 2**31 + 3, 2**31 + 6, 2**31 + 9)
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_ZEROES, CMD_BS = range(8)
FLAG_FAST_ZERO = 16
EPERM, EIO, EINVAL, ENOSPC, ENOTSUP = 1, 5, 22, 28, 95


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            vtest.skip(f"{t} is not installed (scripts/install-deps)")


def run(*cmd, timeout=120, check=True):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}{p.stdout}")
    return p


def qx(q, cmd, **args):
    """A QMP command with its arguments spelled exactly (dashes, 'name'...)."""
    req = {"execute": cmd}
    if args:
        req["arguments"] = args
    q.send_raw(json.dumps(req) + "\n")
    return q.reply()


def ok(q, cmd, **args):
    r = qx(q, cmd, **args)
    assert "return" in r, f"{cmd} {args}: {r}"
    return r["return"]


def del_export(q, export_id, timeout=10):
    """block-export-del in its safe mode once the server has seen the last
    client go. A client process that has just exited may not have been
    noticed yet (QEMU has the same window), so "still in use" is retried."""
    deadline = time.monotonic() + timeout
    while True:
        r = qx(q, "block-export-del", id=export_id)
        if "return" in r:
            return
        if "still in use" not in r["error"]["desc"] or time.monotonic() > deadline:
            raise AssertionError(f"block-export-del {export_id}: {r}")
        time.sleep(0.05)


def err(q, cmd, **args):
    r = qx(q, cmd, **args)
    assert "error" in r, f"{cmd} {args} succeeded: {r}"
    return r["error"]["desc"]


def uri(sock, name):
    return f"nbd+unix:///{name}?socket={sock}"


class Dir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="vireo-nbd-")

    def __call__(self, name):
        return os.path.join(self.path, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def make_qcow2(path, size="64M", writes=(("0xab", "1M", "2M"),), zeroes=(("8M", "1M"),)):
    run("qemu-img", "create", "-q", "-f", "qcow2", path, size)
    cmds = []
    for pat, off, ln in writes:
        cmds += ["-c", f"write -P {pat} {off} {ln}"]
    for off, ln in zeroes:
        cmds += ["-c", f"write -z {off} {ln}"]
    if cmds:
        run("qemu-io", "-f", "qcow2", *cmds, path)


def vireo_paused(img, fmt="qcow2", share_rw=False, extra=()):
    """A VMM with no guest CPU (qtest), the image as node n0 on virtio-blk."""
    return vmm.Vireo("-S", "-blockdev", f"driver=file,node-name=f0,filename={img}",
                     "-blockdev", f"driver={fmt},node-name=n0,file=f0",
                     "-device", "virtio-blk-pci,drive=n0,id=vd0" +
                     (",share-rw=on" if share_rw else ""), *extra, qtest=True)


def wait_path(path, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


class Daemon:
    """vireo-storage-daemon with a QMP socket."""

    def __init__(self, d, *args):
        self.qmp_path = d("sd-qmp.sock")
        self.proc = subprocess.Popen(
            [vtest.binary("vireo-storage-daemon"), "--chardev",
             f"socket,id=m0,path={self.qmp_path},server=on,wait=off", "--monitor", "m0",
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                raise TimeoutError("daemon QMP socket")
            time.sleep(0.02)
        self.q = vmm.QMP.unix(self.qmp_path)

    def close(self):
        try:
            self.q.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        errtext = self.proc.stderr.read().decode(errors="replace")
        assert self.proc.returncode == 0, f"daemon exit {self.proc.returncode}: {errtext}"
        if "AddressSanitizer" in errtext or "runtime error:" in errtext:
            raise AssertionError("sanitizer report:\n" + errtext)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- a raw protocol client ----

class Raw:
    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.structured = False

    def recvn(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                raise EOFError(f"closed after {len(buf)} of {n} bytes")
            buf += c
        return buf

    def closed(self, timeout=10):
        """True when the server closes the connection (reads EOF)."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def hello(self, flags=3):
        magic, opts, hflags = struct.unpack(">QQH", self.recvn(18))
        assert magic == INIT_MAGIC and opts == OPTS_MAGIC, (hex(magic), hex(opts))
        assert hflags & 1
        self.s.sendall(struct.pack(">I", flags))

    def opt(self, opt, data=b""):
        self.s.sendall(struct.pack(">QII", OPTS_MAGIC, opt, len(data)) + data)

    def reply(self):
        magic, opt, rtype, ln = struct.unpack(">QIII", self.recvn(20))
        assert magic == REP_MAGIC, hex(magic)
        return opt, rtype, self.recvn(ln)

    def replies(self):
        """Option replies up to the final ACK or error."""
        out = []
        while True:
            r = self.reply()
            out.append(r)
            if r[1] == REP_ACK or r[1] & 2**31:
                return out

    def go(self, name, structured=True, meta=()):
        self.hello()
        if structured:
            self.opt(OPT_STRUCTURED)
            assert self.reply()[1] == REP_ACK
            self.structured = True
        if meta:
            self.opt(OPT_SET_META, meta_data(name, meta))
            self.replies()
        n = name.encode()
        self.opt(OPT_GO, struct.pack(">I", len(n)) + n + struct.pack(">H", 0))
        rs = self.replies()
        assert rs[-1][1] == REP_ACK, rs
        info = [r for r in rs if r[1] == REP_INFO and struct.unpack(">H", r[2][:2])[0] == 0]
        self.size, self.tflags = struct.unpack(">QH", info[0][2][2:12])

    def request(self, cmd, offset=0, length=0, flags=0, cookie=1, payload=b""):
        self.s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, cookie, offset, length)
                       + payload)

    def simple(self):
        magic, errno_, cookie = struct.unpack(">IIQ", self.recvn(16))
        assert magic == SIMPLE_MAGIC, hex(magic)
        return errno_, cookie

    def chunks(self):
        """Structured chunks up to the one with DONE: [(flags, type, payload)]."""
        out = []
        while True:
            magic, flags, ctype, cookie, ln = struct.unpack(">IHHQI", self.recvn(20))
            assert magic == CHUNK_MAGIC, hex(magic)
            out.append((flags, ctype, self.recvn(ln)))
            if flags & 1:
                return out

    def close(self):
        self.s.close()


def meta_data(name, queries):
    n = name.encode()
    d = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
    for q in queries:
        qb = q.encode()
        d += struct.pack(">I", len(qb)) + qb
    return d
