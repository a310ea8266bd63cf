"""The human monitor: on a socket and on a terminal, with line editing and
history, and through human-monitor-command."""
import os
import pty
import select
import socket
import subprocess
import time

import vmm
import vtest

PROMPT = b"(vireo) "


class HmpClient:
    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(20)
        self.buf = b""

    def read_until(self, marker, timeout=20):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            assert time.monotonic() < deadline, f"no {marker!r} in {self.buf!r}"
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        out, self.buf = self.buf.split(marker, 1)
        return out

    def command(self, keys):
        self.sock.sendall(keys if isinstance(keys, bytes) else keys.encode())
        # A redraw while editing shows the prompt after "\r\033[K"; the next
        # prompt for a new line follows a newline.
        return self.read_until(b"\n" + PROMPT) + b"\n"


def hmp_socket(v, path):
    v.wait_socket(path)
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    c = HmpClient(s)
    banner = c.read_until(PROMPT)
    assert b"monitor - type 'help' for more information" in banner
    return c


class PtyReader:
    """Reads a pty's output up to markers, with a deadline."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""

    def until(self, marker, timeout=20):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            assert time.monotonic() < deadline, self.buf
            r, _, _ = select.select([self.fd], [], [], 1)
            if r:
                self.buf += os.read(self.fd, 4096)
        out, self.buf = self.buf.split(marker, 1)
        return out


def output_of(raw):
    """The command's output: what follows the echoed line."""
    text = raw.decode(errors="replace")
    return text.split("\r\n", 1)[1] if "\r\n" in text else ""


def test_hmp_socket_session():
    import tempfile
    d = tempfile.mkdtemp()
    path = os.path.join(d, "hmp.sock")
    with vmm.Vireo("-accel", "qtest", "-name", "hmpvm", "-object", "iothread,id=t0",
                   "-monitor", f"unix:{path},server=on,wait=off") as v:
        c = hmp_socket(v, path)
        assert output_of(c.command("info name\r")) == "hmpvm\r\n"
        assert output_of(c.command("info status\r")) == "VM status: running\r\n"
        out = output_of(c.command("info iothreads\r"))
        assert out.startswith("t0:\r\n  thread_id=") and "poll-max-ns=32768" in out
        assert output_of(c.command("info version\r")).startswith("7.2.0 (vireo ")
        c.command("stop\r")
        assert output_of(c.command("info status\r")) == "VM status: paused\r\n"
        c.command("cont\r")
        assert output_of(c.command("info status\r")) == "VM status: running\r\n"
        assert "unknown command: 'bogus'" in output_of(c.command("bogus\r"))
        helptext = output_of(c.command("help\r"))
        for name in ("info", "stop", "cont", "quit", "getfd", "system_reset"):
            assert f"\r\n{name} " in "\r\n" + helptext, name
        # The QMP monitor and the HMP monitor see the same state.
        q = v.qmp()
        c.command("stop\r")
        assert q.cmd("query-status")["status"] == "paused"
        assert q.wait_event("STOP")


def test_line_editing_and_history():
    import tempfile
    d = tempfile.mkdtemp()
    path = os.path.join(d, "hmp.sock")
    with vmm.Vireo("-accel", "qtest", "-name", "edit", "-monitor", f"unix:{path},server=on,wait=off") as v:
        c = hmp_socket(v, path)
        c.command("info name\r")
        # Up arrow recalls the last line.
        assert "edit" in output_of(c.command("\x1b[A\r"))
        # Typing with a mistake, backspace, cursor left/right, insert.
        assert "edit" in output_of(c.command("info nmae\x7f\x7f\x7fame\r"))
        assert "edit" in output_of(c.command("info ame\x1b[D\x1b[D\x1b[Dn\r"))
        # Ctrl-A, Ctrl-K, Ctrl-E.
        assert "edit" in output_of(c.command("xyz\x01\x0binfo name\x05\r"))
        # Ctrl-U clears the line.
        assert "VM status" in output_of(c.command("garbage\x15info status\r"))
        # Tab completes command names.
        c.sock.sendall(b"info sta\t")
        time.sleep(0.3)
        assert "VM status" in output_of(c.command("\r"))


def test_hmp_on_a_terminal():
    """-monitor stdio on a pty: raw mode, echo, prompt, and the terminal restored at exit."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([vtest.binary("vireo"), "-accel", "qtest", "-display", "none",
                             "-name", "tty", "-monitor", "stdio"],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    read_until = PtyReader(master).until

    try:
        read_until(PROMPT)
        os.write(master, b"info name\r")
        out = read_until(PROMPT)
        assert b"tty" in out, out
        os.write(master, b"\x1b[A\r")
        assert b"tty" in read_until(b"\n" + PROMPT)
        os.write(master, b"quit\r")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_human_monitor_command():
    with vmm.Vireo("-accel", "qtest", "-name", "hmc") as v:
        q = v.qmp()
        assert q.hmp("info name") == "hmc\r\n"
        assert q.hmp("info status") == "VM status: running\r\n"
        assert q.hmp("") == ""
        assert "bogus" in q.hmp("bogus")
        assert "dev: " in q.hmp("info qtree") or "bus: main-system-bus" in q.hmp("info qtree")
        q.hmp("stop")
        assert q.wait_event("STOP")
        assert q.hmp("info status") == "VM status: paused\r\n"
        r, w = os.pipe()
        q.execute("human-monitor-command", command_line="getfd viahmp", fds=[r])
        os.close(r); os.close(w)
        assert q.execute("closefd", fdname="viahmp") == {"return": {}}
        # qtest runs no vCPUs: QEMU says so as the command's output.
        assert q.hmp("info registers") == "No CPU available\r\n"
        assert q.hmp("info registers x") == "Error: Parameter 'vcpu' expects an integer\r\n"



def test_serial_and_monitor_share_a_terminal():
    """-serial mon:stdio: console output and HMP on one terminal, Ctrl-A c switches."""
    import socket as _socket
    import tempfile
    d = tempfile.mkdtemp()
    qpath = os.path.join(d, "qt.sock")
    lsock = _socket.socket(_socket.AF_UNIX)
    lsock.bind(qpath)
    lsock.listen(1)
    lsock.settimeout(20)
    master, slave = pty.openpty()
    proc = subprocess.Popen([vtest.binary("vireo"), "-accel", "qtest", "-qtest", f"unix:{qpath}",
                             "-display", "none", "-name", "muxed", "-serial", "mon:stdio"],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    read_until = PtyReader(master).until

    try:
        conn, _ = lsock.accept()
        qt = vmm.Qtest(conn)
        for ch in b"hello-console\n":          # the guest writes to the UART
            qt.outb(0x3f8, ch)
        read_until(b"hello-console")
        os.write(master, b"\x01c")               # to the monitor: a fresh prompt
        read_until(b"\n" + PROMPT)
        os.write(master, b"info name\r")
        assert b"muxed" in read_until(b"\n" + PROMPT + b"")
        os.write(master, b"\x01c")               # back to the console: input goes to the UART
        os.write(master, b"Z")
        deadline = time.monotonic() + 10
        while not (qt.inb(0x3fd) & 1):           # LSR data ready
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert qt.inb(0x3f8) == ord("Z")
        os.write(master, b"\x01x")               # quit
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        lsock.close()


if __name__ == "__main__":
    vtest.main()
