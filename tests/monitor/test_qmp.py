"""QMP protocol behaviour: greeting, negotiation, ids, events, several
monitors, streaming input, run state commands, fd passing and fd sets."""
import json
import os
import signal
import socket
import tempfile
import time

import vmm
import vtest


def test_greeting_shape():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp(negotiate=False)
        g = q.greeting["QMP"]
        assert set(g["version"]["qemu"]) == {"major", "minor", "micro"}
        assert g["version"]["package"].startswith("vireo")
        assert g["capabilities"] == ["oob"]


def test_events_reach_every_monitor_with_timestamps():
    with vmm.Vireo("-accel", "qtest") as v:
        a, b = v.qmp(), v.qmp()
        before = time.time()
        a.cmd("stop")
        for m in (a, b):
            e = m.wait_event("STOP")
            ts = e["timestamp"]
            assert set(ts) == {"seconds", "microseconds"}
            assert 0 <= ts["microseconds"] < 1000000
            assert abs(ts["seconds"] + ts["microseconds"] / 1e6 - before) < 5
        assert a.cmd("query-status") == {"running": False, "singlestep": False, "status": "paused"}
        b.cmd("cont")
        a.wait_event("RESUME")
        assert b.cmd("query-status")["status"] == "running"


def test_monitor_in_negotiation_gets_no_events():
    with vmm.Vireo("-accel", "qtest") as v:
        waiting = v.qmp(negotiate=False)
        active = v.qmp()
        active.cmd("stop")
        active.wait_event("STOP")
        waiting.send_raw('{"execute":"qmp_capabilities"}\n')
        assert waiting.recv() == {"return": {}}      # no STOP queued before the reply


def test_partial_reads_and_many_messages_per_read():
    with vmm.Vireo("-accel", "qtest", "-name", "split") as v:
        q = v.qmp()
        msg = '{"execute": "query-name", "id": 1}'
        for ch in msg:                                # one byte at a time
            q.send_raw(ch)
        q.send_raw("\n")
        assert q.reply() == {"return": {"name": "split"}, "id": 1}
        q.send_raw("".join('{"execute":"query-name","id":%d}' % i for i in range(50)))
        for i in range(50):
            assert q.reply()["id"] == i


def test_ids_of_any_type_are_echoed():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        for ident in (0, "abc", [1, {"x": None}], {"n": 2**63 + 5}, 1.5, True):
            q.send_raw(json.dumps({"execute": "query-status", "id": ident}) + "\n")
            assert q.reply()["id"] == ident


def test_query_commands_lists_the_schema():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        names = {c["name"] for c in q.cmd("query-commands")}
        schema = q.cmd("query-qmp-schema")
        schema_cmds = {e["name"] for e in schema if e["meta-type"] == "command"}
        assert names == schema_cmds
        for expected in ("query-name", "query-iothreads", "stop", "cont", "x-exit-preconfig",
                         "human-monitor-command", "getfd", "closefd", "add-fd", "remove-fd",
                         "query-fdsets", "query-command-line-options", "add_client",
                         "query-version", "query-status", "quit", "query-qmp-schema"):
            assert expected in names, expected
        events = {e["name"] for e in schema if e["meta-type"] == "event"}
        assert {"RTC_CHANGE", "VFU_CLIENT_HANGUP", "STOP", "RESUME", "SHUTDOWN"} <= events


def test_schema_types_resolve():
    with vmm.Vireo("-accel", "qtest") as v:
        schema = v.qmp().cmd("query-qmp-schema")
        by_name = {e["name"]: e for e in schema}
        assert len(by_name) == len(schema), "duplicate entity names"

        def check(t):
            assert t in by_name, f"unresolved type {t}"
        for e in schema:
            mt = e["meta-type"]
            if mt == "command":
                check(e["arg-type"]); check(e["ret-type"])
            elif mt == "event":
                check(e["arg-type"])
            elif mt == "object":
                for m in e["members"]:
                    check(m["type"])
            elif mt == "array":
                check(e["element-type"])
        rtc = by_name["RTC_CHANGE"]
        members = {m["name"]: m["type"] for m in by_name[rtc["arg-type"]]["members"]}
        assert members == {"offset": "int", "qom-path": "str"}
        x = by_name["x-exit-preconfig"]
        assert x.get("features") == ["unstable"]


def test_query_name_without_name():
    with vmm.Vireo("-accel", "qtest") as v:
        assert v.qmp().cmd("query-name") == {}


def test_query_iothreads_are_real_threads():
    with vmm.Vireo("-accel", "qtest", "-object", "iothread,id=io0",
                   "-object", "iothread,id=io1,poll-max-ns=1000,poll-grow=2,poll-shrink=3,aio-max-batch=4") as v:
        threads = v.qmp().cmd("query-iothreads")
        assert [t["id"] for t in threads] == ["io0", "io1"]
        assert threads[0]["poll-max-ns"] == 32768
        assert (threads[1]["poll-max-ns"], threads[1]["poll-grow"], threads[1]["poll-shrink"],
                threads[1]["aio-max-batch"]) == (1000, 2, 3, 4)
        for t in threads:
            task = f"/proc/{v.proc.pid}/task/{t['thread-id']}"
            assert os.path.isdir(task), task
            with open(task + "/comm") as f:
                assert f.read().strip() == "IO " + t["id"]
        assert threads[0]["thread-id"] != threads[1]["thread-id"] != v.proc.pid


def test_start_paused_and_cont():
    with vmm.Vireo("-accel", "qtest", "-S") as v:
        q = v.qmp()
        assert q.cmd("query-status")["status"] == "prelaunch"
        q.cmd("cont")
        q.wait_event("RESUME")
        assert q.cmd("query-status") == {"running": True, "singlestep": False, "status": "running"}


def test_preconfig_flow():
    with vmm.Vireo("-accel", "qtest", "--preconfig", "-name", "pc") as v:
        q = v.qmp()
        assert q.cmd("query-status")["status"] == "prelaunch"
        assert q.cmd("query-name") == {"name": "pc"}           # allowed in preconfig
        r = q.execute("stop")
        assert r["error"]["desc"] == ("The command 'stop' is permitted only after machine "
                                      "initialization has completed"), r
        q.cmd("x-exit-preconfig")
        assert q.cmd("query-status")["status"] == "running"
        r = q.execute("x-exit-preconfig")
        assert r["error"]["desc"] == "The command is permitted only before machine initialization"


def test_quit_sends_shutdown_and_exits_zero():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        assert q.cmd("quit") == {}
        e = q.wait_event("SHUTDOWN")
        assert e["data"] == {"guest": False, "reason": "host-qmp-quit"}
        assert v.wait() == 0


def test_sigterm_and_sigint_exit_zero():
    for sig in (signal.SIGTERM, signal.SIGINT):
        with vmm.Vireo("-accel", "qtest") as v:
            q = v.qmp()
            v.proc.send_signal(sig)
            e = q.wait_event("SHUTDOWN")
            assert e["data"] == {"guest": False, "reason": "host-signal"}
            assert v.wait() == 0


def test_getfd_closefd_and_add_client():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        mine, theirs = socket.socketpair()
        assert q.execute("getfd", fds=[theirs.fileno()], fdname="cli") == {"return": {}}
        theirs.close()
        # add_client hands the socket to the QMP chardev: a new session greets it.
        q.cmd("add_client", protocol="compat_monitor0", fdname="cli")
        mine.settimeout(10)
        client = vmm.QMP(mine)
        assert client.cmd("query-status")["status"] == "running"
        r = q.execute("closefd", fdname="cli")       # consumed by add_client
        assert r["error"]["desc"] == "File descriptor named 'cli' not found"
        r, w = os.pipe()
        q.execute("getfd", fds=[r], fdname="p")
        assert q.execute("closefd", fdname="p") == {"return": {}}
        os.close(r); os.close(w)
        r = q.execute("add_client", protocol="vnc", fdname="none")
        assert "error" in r


def test_fdsets_shared_between_monitors():
    with vmm.Vireo("-accel", "qtest") as v:
        a, b = v.qmp(), v.qmp()
        r, w = os.pipe()
        info = a.cmd("add-fd", fds=[r], fdset_id=3, opaque="read end")
        assert info["fdset-id"] == 3 and info["fd"] > 2
        info2 = b.cmd("add-fd", fds=[w])
        assert info2["fdset-id"] == 0                  # lowest free id
        os.close(r); os.close(w)
        sets = b.cmd("query-fdsets")
        assert sets == [{"fdset-id": 0, "fds": [{"fd": info2["fd"]}]},
                        {"fdset-id": 3, "fds": [{"fd": info["fd"], "opaque": "read end"}]}]
        b.cmd("remove-fd", fdset_id=3, fd=info["fd"])
        assert [s["fdset-id"] for s in a.cmd("query-fdsets")] == [0]
        a.cmd("remove-fd", fdset_id=0)
        assert a.cmd("query-fdsets") == []
        # The descriptor is really closed in vireo.
        assert not os.path.exists(f"/proc/{v.proc.pid}/fd/{info['fd']}")


def test_add_fd_at_startup_and_dev_fdset_open():
    """-add-fd puts an inherited descriptor in a set; -chardev file opens it as /dev/fdset/N."""
    with tempfile.NamedTemporaryFile() as out:
        fd = os.open(out.name, os.O_WRONLY)
        os.set_inheritable(fd, True)
        try:
            v = vmm.Vireo("-accel", "qtest", "-add-fd", f"fd={fd},set=7,opaque=log",
                          "-chardev", "file,id=log,path=/dev/fdset/7", pass_fds=[fd])
            v.proc  # started
        finally:
            os.close(fd)
        with v:
            q = v.qmp()
            sets = q.cmd("query-fdsets")
            assert sets[0]["fdset-id"] == 7 and sets[0]["fds"][0]["opaque"] == "log"
            info = q.hmp("info chardev")
            assert "log: filename=file:/dev/fdset/7" in info


def test_exec_oob():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp(negotiate=False)
        q.cmd("qmp_capabilities", enable=["oob"])
        q.send_raw('{"exec-oob":"query-name","id":"o"}\n')
        r = q.reply()
        assert r["error"]["desc"] == "The command query-name does not support OOB" and r["id"] == "o"
        plain = v.qmp()
        plain.send_raw('{"exec-oob":"query-name"}\n')
        assert plain.reply()["error"]["desc"] == "QMP input member 'exec-oob' is unexpected"


def test_command_line_options_introspection():
    with vmm.Vireo("-accel", "qtest") as v:
        q = v.qmp()
        all_opts = {o["option"]: o["parameters"] for o in q.cmd("query-command-line-options")}
        for name in ("chardev", "mon", "add-fd", "name", "machine", "object", "fw_cfg", "rtc"):
            assert name in all_opts, name
        chardev = {p["name"]: p["type"] for p in all_opts["chardev"]}
        assert chardev["server"] == "boolean" and chardev["path"] == "string"
        assert all_opts["device"] == []
        assert q.cmd("query-command-line-options", option="add-fd") == [
            {"option": "add-fd", "parameters": all_opts["add-fd"]}]
        r = q.execute("query-command-line-options", option="nope")
        assert r["error"]["desc"] == "invalid option name: nope"


def test_tcp_monitor():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with vmm.Vireo("-accel", "qtest", "-chardev", f"socket,id=tq,host=127.0.0.1,port={port},server=on,wait=off",
                   "-mon", "chardev=tq,mode=control", qmp=False) as v:
        deadline = time.monotonic() + 20
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        q = vmm.QMP(c)
        assert q.cmd("query-status")["status"] == "running"


def test_qmp_pretty():
    import subprocess
    d = tempfile.mkdtemp()
    path = os.path.join(d, "p.sock")
    p = subprocess.Popen([vtest.binary("vireo"), "-accel", "qtest", "-display", "none", "-name", "pp",
                          "-qmp-pretty", f"unix:{path},server=on,wait=off"])
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.settimeout(10)
        s.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-name"}\n')
        data = b""
        while data.count(b"}\r\n") < 3 and b'"pp"' not in data:
            data += s.recv(65536)
        while b'"pp"' not in data or not data.rstrip().endswith(b"}"):
            data += s.recv(65536)
        text = data.decode()
        assert "\n  " in text                      # indented, several lines per message
        last = text.rstrip().rsplit("\r\n", 1)[-1]
        assert json.loads(last) == {"return": {"name": "pp"}}
        s.close()
    finally:
        p.kill()
        p.wait()


def test_client_mode_chardev_connects_out():
    """server=off: vireo connects to a listener, as QEMU's test library expects."""
    d = tempfile.mkdtemp()
    path = os.path.join(d, "listen.sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(path)
    lsock.listen(1)
    lsock.settimeout(20)
    with vmm.Vireo("-accel", "qtest", "-chardev", f"socket,id=out,path={path}",
                   "-mon", "chardev=out,mode=control", qmp=False) as v:
        conn, _ = lsock.accept()
        q = vmm.QMP(conn)
        assert q.cmd("query-status")["status"] == "running"
    lsock.close()


if __name__ == "__main__":
    vtest.main()
