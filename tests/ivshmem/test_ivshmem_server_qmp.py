#!/usr/bin/env python3
"""vireo-ivshmem-server --qmp: the QMP handshake and error classes of the
shared monitor core, exactly the daemon's commands, query-ivshmem-peers
against real connecting processes, peer events, a QMP client that stops
reading, and quit."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest
from ivpeer import Peer, Server, readable, ring

SERVER = vtest.binary("vireo-ivshmem-server")
COMMANDS = {"qmp_capabilities", "query-version", "query-commands", "quit",
            "query-qmp-schema", "query-ivshmem-peers"}
EVENTS = {"IVSHMEM_PEER_CONNECTED", "IVSHMEM_PEER_DISCONNECTED"}

# A client in its own process: connects, says so, holds on until stdin closes.
HOLDER = ("import socket, sys\n"
          "s = socket.socket(socket.AF_UNIX)\n"
          "s.connect(sys.argv[1])\n"
          "print('up', flush=True)\n"
          "sys.stdin.read()\n")


class Qmp:
    """A QMP client on a UNIX socket; events are kept aside as they arrive."""

    def __init__(self, path, negotiate=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            assert self.cmd("qmp_capabilities") == {"return": {}}

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else json.dumps(data).encode())

    def recv(self, timeout=10):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            assert left > 0, "no message from the server"
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self, timeout=10):
        while True:
            msg = self.recv(timeout)
            if "event" not in msg:
                return msg
            self.events.append(msg)

    def cmd(self, name, args=None, id=None):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        if id is not None:
            req["id"] = id
        self.send(req)
        return self.reply()

    def event(self, name, id=None, timeout=10):
        """The first event @name (about peer @id if given), in arrival order."""
        end = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name and (id is None or ev["data"]["id"] == id):
                    return self.events.pop(i)
            self.events.append(self.recv(max(end - time.monotonic(), 0.01)))

    def quiet(self, wait=0.3):
        """True if nothing at all arrives within @wait seconds."""
        return not self.buf and not readable(self.sock.fileno(), wait)

    def close(self):
        self.sock.close()


class QmpServer(Server):
    def __init__(self, vectors=1, *args):
        self.qmp_dir = tempfile.mkdtemp(prefix="ivsh-qmp-")
        self.qmp_path = os.path.join(self.qmp_dir, "qmp")
        super().__init__(SERVER, "--qmp", self.qmp_path, *args, vectors=vectors)

    def __exit__(self, exc_type, *exc):
        super().__exit__(exc_type, *exc)
        if exc_type is None:
            assert not os.path.exists(self.qmp_path), "QMP socket left behind"
            os.rmdir(self.qmp_dir)


def error_of(reply):
    assert set(reply) <= {"error", "id"}, reply
    return reply["error"]["class"], reply["error"]["desc"]


def holder(path):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "up\n"
    return p


def release(p):
    p.stdin.close()
    p.wait(10)
    p.stdout.close()


def test_handshake_and_negotiation():
    with QmpServer() as srv:
        q = Qmp(srv.qmp_path, negotiate=False)
        g = q.greeting["QMP"]
        assert g["capabilities"] == ["oob"], g
        assert g["version"]["qemu"] == {"major": 7, "minor": 2, "micro": 0}, g
        assert g["version"]["package"].startswith("vireo-ivshmem-server "), g
        assert error_of(q.cmd("query-ivshmem-peers", id=1)) == (
            "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'")
        assert q.cmd("qmp_capabilities", id="neg") == {"return": {}, "id": "neg"}
        assert error_of(q.cmd("qmp_capabilities")) == (
            "CommandNotFound", "Capabilities negotiation is already complete, command ignored")
        assert error_of(q.cmd("query-status", id=[1, 2])) == (
            "CommandNotFound", "The command query-status has not been found")
        r = q.cmd("query-version", id={"n": 3})
        assert r["id"] == {"n": 3} and r["return"] == g["version"], r
        q.close()


def test_exactly_the_daemons_commands():
    with QmpServer() as srv:
        q = Qmp(srv.qmp_path)
        names = [c["name"] for c in q.cmd("query-commands")["return"]]
        assert sorted(names) == sorted(COMMANDS), names
        schema = q.cmd("query-qmp-schema")["return"]
        cmds = {e["name"] for e in schema if e["meta-type"] == "command"}
        events = {e["name"] for e in schema if e["meta-type"] == "event"}
        assert cmds == COMMANDS, cmds
        assert events == EVENTS, events
        # every type a command or event refers to is described
        described = {e["name"] for e in schema}
        for e in schema:
            for key in ("arg-type", "ret-type", "element-type"):
                assert key not in e or e[key] in described, e
        peers = next(e for e in schema if e["name"] == "query-ivshmem-peers")
        elem = next(e for e in schema if e["name"] == peers["ret-type"])["element-type"]
        info = next(e for e in schema if e["name"] == elem)
        assert [m["name"] for m in info["members"]] == \
            ["id", "vectors", "pid", "uid", "connected"], info
        q.close()


def test_peers_are_the_connecting_processes():
    with QmpServer(vectors=3) as srv:
        q = Qmp(srv.qmp_path)
        assert q.cmd("query-ivshmem-peers") == {"return": []}
        t0 = time.time()
        a = holder(srv.sock)
        b = holder(srv.sock)
        c = Peer(srv.sock, vectors=3)          # this very process
        t1 = time.time()
        peers = q.cmd("query-ivshmem-peers")["return"]
        assert [(p["id"], p["vectors"], p["pid"], p["uid"]) for p in peers] == [
            (0, 3, a.pid, os.getuid()), (1, 3, b.pid, os.getuid()),
            (2, 3, os.getpid(), os.getuid())], peers
        for p in peers:
            when = p["connected"]["seconds"] + p["connected"]["microseconds"] / 1e6
            assert 0 <= p["connected"]["microseconds"] < 1000000, p
            assert t0 - 1 <= when <= t1 + 1, (t0, when, t1)
        when = [(p["connected"]["seconds"], p["connected"]["microseconds"]) for p in peers]
        assert when == sorted(when), when
        release(a)
        assert q.event("IVSHMEM_PEER_DISCONNECTED")["data"] == {"id": 0, "dropped": False}
        d = holder(srv.sock)                   # ids are not reused at once
        q.event("IVSHMEM_PEER_CONNECTED")
        peers = q.cmd("query-ivshmem-peers")["return"]
        assert [(p["id"], p["pid"]) for p in peers] == [
            (1, b.pid), (2, os.getpid()), (3, d.pid)], peers
        release(b)
        release(d)
        c.close()
        for _ in range(3):
            q.event("IVSHMEM_PEER_DISCONNECTED")
        assert q.cmd("query-ivshmem-peers") == {"return": []}
        q.close()


def test_events_for_join_leave_and_drop_reach_every_client():
    with QmpServer(vectors=2) as srv:
        q1 = Qmp(srv.qmp_path)
        q2 = Qmp(srv.qmp_path)
        idle = Qmp(srv.qmp_path, negotiate=False)   # not in command mode: no events
        before = time.time()
        a = Peer(srv.sock, vectors=2)
        for q in (q1, q2):
            ev = q.event("IVSHMEM_PEER_CONNECTED")
            assert ev["data"] == {"id": 0, "vectors": 2, "pid": os.getpid(),
                                  "uid": os.getuid()}, ev
            ts = ev["timestamp"]["seconds"] + ev["timestamp"]["microseconds"] / 1e6
            assert before - 1 <= ts <= time.time() + 1, ev
        b = Peer(srv.sock, vectors=2)
        b.close()
        for q in (q1, q2):
            assert q.event("IVSHMEM_PEER_CONNECTED")["data"]["id"] == 1
            assert q.event("IVSHMEM_PEER_DISCONNECTED")["data"] == {"id": 1, "dropped": False}
        a.sock.sendall(b"x" * 8)           # the protocol is server to client only
        for q in (q1, q2):
            ev = q.event("IVSHMEM_PEER_DISCONNECTED")["data"]
            assert ev["id"] == 0 and ev["dropped"] is True, ev
            assert "sent data" in ev["reason"], ev
        assert not q1.events and not q2.events, (q1.events, q2.events)
        assert idle.quiet(), "a client still negotiating received an event"
        assert idle.cmd("qmp_capabilities") == {"return": {}}
        a.close()
        for q in (q1, q2, idle):
            q.close()


def test_a_qmp_client_that_never_reads_is_dropped_not_waited_for():
    with QmpServer() as srv:
        stalled = Qmp(srv.qmp_path)
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        q = Qmp(srv.qmp_path)
        a = Peer(srv.sock, vectors=1)
        b = Peer(srv.sock, vectors=1)
        a.read_until(lambda: b.id in a.peers)
        request = b'{"execute": "query-qmp-schema"}'
        schema_size = len(json.dumps(q.cmd("query-qmp-schema")))
        sent, broke = 0, False
        stalled.sock.settimeout(10)
        try:
            # well past the 1 MiB bound plus what the sockets hold
            while sent < (4 << 20) // schema_size:
                stalled.sock.sendall(request)
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            broke = True
        # meanwhile everyone else is served at once
        for _ in range(3):
            ring(a.peers[b.id][0])
            assert readable(b.own[0], 2), "doorbell not delivered"
            os.read(b.own[0], 8)
        assert q.cmd("query-version", id=7)["id"] == 7
        c = Peer(srv.sock, vectors=1)
        q.event("IVSHMEM_PEER_CONNECTED", id=c.id)
        end = time.monotonic() + 10
        while "dropping QMP client: too much output unread" not in srv.output():
            assert time.monotonic() < end, srv.output()
            time.sleep(0.05)
        if not broke:
            # its connection is gone: reading ends after what was sent
            stalled.sock.settimeout(10)
            while stalled.sock.recv(1 << 16):
                pass
        assert srv.alive()
        for p in (a, b, c):
            p.close()
        stalled.close()
        q.close()


def test_garbage_gets_qemus_error_classes():
    with QmpServer() as srv:
        q = Qmp(srv.qmp_path)
        cases = [
            (b'{"execute": foo}', "JSON parse error, "),
            (b'{"execute": "query-version"\xff}', "JSON parse error, stray '\ufffd'"),
            (b'[1, 2]', "QMP input must be a JSON object"),
            (b'{"arguments": {}}', "QMP input lacks member 'execute'"),
            (b'{"execute": 1}', "QMP input member 'execute' must be a string"),
            (b'{"execute": "quit", "bogus": 1}', "QMP input member 'bogus' is unexpected"),
            (b'{"execute": "quit", "arguments": []}',
             "QMP input member 'arguments' must be an object"),
            (b'{"execute": "query-ivshmem-peers", "arguments": {"x": 1}}',
             "Parameter 'x' is unexpected"),
        ]
        for raw, desc in cases:
            q.send(raw)
            cls, got = error_of(q.reply())
            assert cls == "GenericError", (raw, cls, got)
            assert got.startswith(desc) if desc.endswith(" ") else got == desc, (raw, got)
        # split across writes and several in one write still work afterwards
        q.send(b'{"execute": "query-')
        time.sleep(0.1)
        q.send(b'version", "id": 1}{"execute": "query-commands", "id": 2}')
        assert q.reply()["id"] == 1 and q.reply()["id"] == 2
        assert srv.alive()
        q.close()


def test_quit_ends_the_server_cleanly():
    srv = QmpServer()
    q = Qmp(srv.qmp_path)
    a = Peer(srv.sock, vectors=1)
    assert q.cmd("quit", id="bye") == {"return": {}, "id": "bye"}
    assert srv.proc.wait(10) == 0, srv.output()
    assert a.recv() is None                # the peers' connections are closed
    a.close()
    q.close()
    assert not os.path.exists(srv.sock), "ivshmem socket left behind"
    with srv:                              # checks the exit status and the log
        pass


def test_bad_qmp_path_is_refused_at_start():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "file")
        open(path, "w").close()
        r = subprocess.run([SERVER, "-F", "-S", os.path.join(d, "s"), "-M",
                            f"vireo-ivsh-qmp-{os.getpid()}", "--qmp", path],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and "is not a socket" in r.stderr, r
        assert not os.path.exists(os.path.join(d, "s")), "ivshmem socket left behind"


if __name__ == "__main__":
    vtest.main()
