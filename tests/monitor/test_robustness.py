"""Hostile monitor clients: each gets an error or a closed connection, and
vireo keeps serving everyone else."""
import json
import os
import socket
import time

import vmm
import vtest


def alive(v):
    q = v.qmp()
    assert q.cmd("query-status")["status"] in ("running", "paused")
    q.close()
    v.monitors.remove(q)


def test_malformed_json_then_valid_request():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        for bad in ['{"execute":', '"unterminated', '}', '{"a":1,}', '{"execute" "x"}', 'nul',
                    '{"execute":"query-name" "id":1}']:
            q.send_raw(bad + "\n")
        q.send_raw('}\n"\n')      # close anything still open
        q.send_raw('{"execute":"query-status","id":"after"}\n')
        deadline = time.monotonic() + 10
        while True:
            r = q.reply()
            if r.get("id") == "after":
                break
            assert r["error"]["class"] == "GenericError", r
            assert time.monotonic() < deadline
        assert r["return"]["status"] == "running"


def test_64mib_message():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        other = v.qmp()
        big = b'{"execute":"query-name","arguments":{"x":"' + b"a" * (64 << 20) + b'"}}\n'
        q.sock.settimeout(60)
        try:
            q.send_raw(big)
            r = q.reply()
            assert r["error"]["desc"] == "JSON parse error, message too large", r
            q.send_raw('{"execute":"query-status"}\n')
            assert q.reply()["return"]["status"] == "running"
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass        # closing the connection is an allowed answer too
        assert other.cmd("query-status")["status"] == "running"
        alive(v)


def test_deep_nesting():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        deep = '{"execute":"query-name","id":' + "[" * 5000 + "]" * 5000 + "}\n"
        q.send_raw(deep)
        r = q.reply()
        assert r["error"]["desc"] == "JSON parse error, nesting too deep", r
        q.send_raw('{"execute":"query-name","id":' + "[" * 500 + "]" * 500 + "}\n")
        assert "return" in q.reply()          # deep but within the limit
        alive(v)


def test_invalid_utf8():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        for bad in (b'{"execute":"query-name","id":"\xff\xfe"}\n', b'{"execute":"\xc3\x28"}\n',
                    b'{"execute":"query-name","id":"\xed\xa0\x80"}\n'):
            q.send_raw(bad)
            r = q.reply()
            assert r["error"]["class"] == "GenericError", r
        assert q.cmd("query-status")["status"] == "running"


def test_disconnect_mid_command():
    with vmm.Vireo("-accel", "qtest") as v:
        v.wait_socket()
        for partial in (b'{"execute":"query-qmp-sch', b'{"execute":"query-qmp-schema"}\n'):
            s = socket.socket(socket.AF_UNIX)
            s.connect(v.qmp_path)
            s.recv(4096)
            s.sendall(b'{"execute":"qmp_capabilities"}\n')
            s.sendall(partial)
            s.close()                      # gone before (or while) the reply is written
        alive(v)


def test_200_clients_at_once():
    with vmm.Vireo("-accel", "qtest") as v:
        v.wait_socket(v.qmp_path)
        socks = []
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX)
            s.connect(v.qmp_path)
            s.settimeout(20)
            socks.append(s)
        for s in socks:
            s.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n')
        answered = 0
        for s in socks:
            q = vmm.QMP(s, negotiate=False)
            assert q.reply() == {"return": {}}
            assert q.reply()["return"]["status"] == "running"
            answered += 1
        assert answered == 200
        for s in socks:
            s.close()
        alive(v)


def test_client_that_never_reads():
    """A client that floods requests without reading replies is cut off
    once its queue is full; others are unaffected."""
    with vmm.Vireo("-accel", "qtest") as v:
        v.wait_socket()
        s = socket.socket(socket.AF_UNIX)
        s.connect(v.qmp_path)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b'{"execute":"qmp_capabilities"}\n')
        req = b'{"execute":"query-qmp-schema"}\n' * 100
        s.settimeout(30)
        try:
            for _ in range(20):
                s.sendall(req)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        alive(v)
        s.close()


def test_garbage_bytes_on_qmp():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        q.send_raw(bytes(range(256)) * 16 + b"\n}\n]\n\"\n")
        q.send_raw('{"execute":"query-status","id":"end"}\n')
        q.sock.settimeout(20)
        while True:
            r = q.reply()
            if r.get("id") == "end":
                break
        alive(v)


def test_unknown_and_wrong_arguments_everywhere():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        schema = q.cmd("query-qmp-schema")
        cmds = [e["name"] for e in schema if e["meta-type"] == "command"]
        for c in cmds:
            if c in ("quit",):
                continue
            r = q.execute(c, bogus_argument=1)
            desc = r["error"]["desc"]
            # Missing members are reported before unexpected ones, as in QEMU.
            assert desc == "Parameter 'bogus-argument' is unexpected" or desc.endswith("is missing"), (c, r)
        alive(v)


if __name__ == "__main__":
    vtest.main()
