"""Start vireo (or QEMU) for a test and talk to it: QMP, HMP and qtest clients.

Everything here uses the real binary over real sockets; nothing is mocked.
"""
import array
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time

import vtest


class QMPError(Exception):
    pass


class QMP:
    """A QMP client on a UNIX or TCP socket."""

    def __init__(self, sock, negotiate=True, timeout=20):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            self.cmd("qmp_capabilities")

    @classmethod
    def unix(cls, path, **kw):
        # The socket file appears at bind(), a moment before listen().
        deadline = time.monotonic() + 10
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return cls(s, **kw)
            except ConnectionRefusedError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def send_raw(self, data, fds=()):
        if isinstance(data, str):
            data = data.encode()
        if fds:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.sock.sendall(data)

    def recv(self):
        """Next JSON message (event or reply)."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("monitor closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self):
        """Next reply, keeping events aside."""
        while True:
            msg = self.recv()
            if "event" in msg:
                self.events.append(msg)
            else:
                return msg

    def execute(self, name, fds=(), id=None, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = {k.replace("_", "-"): v for k, v in args.items()}
        if id is not None:
            req["id"] = id
        self.send_raw(json.dumps(req) + "\n", fds)
        return self.reply()

    def cmd(self, name, **args):
        """Execute and return the 'return' value; raise QMPError on error."""
        r = self.execute(name, **args)
        if "error" in r:
            raise QMPError(r["error"])
        return r["return"]

    def hmp(self, line):
        return self.cmd("human-monitor-command", command_line=line)

    def wait_event(self, name, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} event")
            self.sock.settimeout(left)
            msg = self.recv()
            self.sock.settimeout(20)
            if "event" in msg:
                self.events.append(msg)

    def close(self):
        self.sock.close()


class Qtest:
    """A client of the qtest line protocol."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(20)
        self.buf = b""
        self.irqs = []

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("qtest connection closed")
            self.buf += chunk
        l, self.buf = self.buf.split(b"\n", 1)
        return l.decode()

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\n")
        while True:
            l = self.line()
            if l.startswith("IRQ "):
                self.irqs.append(l)
                continue
            return l

    def ok(self, text):
        r = self.cmd(text)
        if not r.startswith("OK"):
            raise AssertionError(f"{text!r} -> {r!r}")
        return r[3:]

    def outb(self, port, v): self.ok(f"outb 0x{port:x} 0x{v:x}")
    def outw(self, port, v): self.ok(f"outw 0x{port:x} 0x{v:x}")
    def outl(self, port, v): self.ok(f"outl 0x{port:x} 0x{v:x}")
    def inb(self, port): return int(self.ok(f"inb 0x{port:x}"), 16)
    def inw(self, port): return int(self.ok(f"inw 0x{port:x}"), 16)
    def inl(self, port): return int(self.ok(f"inl 0x{port:x}"), 16)
    def readb(self, a): return int(self.ok(f"readb 0x{a:x}"), 16)
    def readw(self, a): return int(self.ok(f"readw 0x{a:x}"), 16)
    def readl(self, a): return int(self.ok(f"readl 0x{a:x}"), 16)
    def readq(self, a): return int(self.ok(f"readq 0x{a:x}"), 16)
    def writeb(self, a, v): self.ok(f"writeb 0x{a:x} 0x{v:x}")
    def writew(self, a, v): self.ok(f"writew 0x{a:x} 0x{v:x}")
    def writel(self, a, v): self.ok(f"writel 0x{a:x} 0x{v:x}")
    def writeq(self, a, v): self.ok(f"writeq 0x{a:x} 0x{v:x}")

    def memread(self, a, n):
        return base64.b64decode(self.ok(f"b64read 0x{a:x} {n}"))

    def memwrite(self, a, data):
        self.ok(f"b64write 0x{a:x} {len(data)} {base64.b64encode(data).decode()}")


class Vireo:
    """One vireo process with a QMP socket (and optionally qtest), cleaned up on exit."""

    def __init__(self, *args, qmp=True, qtest=False, binary=None, stdin=None, env=None,
                 pass_fds=()):
        self.dir = tempfile.mkdtemp(prefix="vireo-test-")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        cmd = [binary or vtest.binary("vireo")]
        self.qtest_listener = None
        if qtest:
            # Like QEMU's test library: the test listens, the VMM connects.
            path = os.path.join(self.dir, "qtest.sock")
            self.qtest_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.qtest_listener.bind(path)
            self.qtest_listener.listen(1)
            cmd += ["-qtest", f"unix:{path}", "-accel", "qtest"]
        if qmp:
            cmd += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        cmd += ["-display", "none"] + list(args)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=stdin or subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, pass_fds=pass_fds)
        self.qtest = None
        if qtest:
            self.qtest_listener.settimeout(20)
            conn, _ = self.qtest_listener.accept()
            self.qtest = Qtest(conn)
        self.monitors = []

    def wait_socket(self, path=None, timeout=20):
        path = path or self.qmp_path
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"vireo exited early: {self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear")
            time.sleep(0.01)

    def qmp(self, negotiate=True):
        self.wait_socket(self.qmp_path)
        m = QMP.unix(self.qmp_path, negotiate=negotiate)
        self.monitors.append(m)
        return m

    def wait(self, timeout=20):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.stdout = self.proc.stdout.read().decode(errors="replace")
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        return rc

    def close(self):
        for m in self.monitors:
            try:
                m.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # ASan reports go to stderr; a leak or error report fails the test.
        # wait() may already have read it.
        err = getattr(self, "stderr", "") or ""
        if self.proc.stderr and not self.proc.stderr.closed:
            err += self.proc.stderr.read().decode(errors="replace")
        if self.qtest_listener:
            self.qtest_listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
            raise AssertionError("sanitizer report:\n" + err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(*args, timeout=20, input=None):
    """Run vireo to completion; returns (rc, stdout, stderr)."""
    p = subprocess.run([vtest.binary("vireo")] + list(args), capture_output=True, text=True,
                       timeout=timeout, input=input)
    return p.returncode, p.stdout, p.stderr
