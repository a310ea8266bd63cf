#!/usr/bin/env python3
"""Run inside the lab (or on a KVM host): boot a VMM with a guest that loads
virtio drivers and uses the devices, wait until the guest says it is done,
then dump every virtio introspection answer as JSON.

usage: guest_query.py OUT.json VMM-ARGV...   (a QMP socket is added)
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vmm  # noqa: E402

READY = b"VIRTIO-GUEST-READY"


def inflate_balloon(q, target=192 << 20, timeout=120):
    """Ask the guest's balloon driver to give memory back; record what the
    VMM reports before, after the driver settled (or timed out), and whether
    a BALLOON_CHANGE event came."""
    if not any(d["name"] == "virtio-balloon" for d in q.cmd("x-query-virtio")):
        return None
    before = q.cmd("query-balloon")["actual"]
    q.cmd("balloon", value=target)
    deadline = time.monotonic() + timeout
    actual = before
    while time.monotonic() < deadline:
        actual = q.cmd("query-balloon")["actual"]
        if actual <= target:
            break
        time.sleep(0.5)
    changed = any(e["event"] == "BALLOON_CHANGE" for e in q.events)
    return {"before": before, "after": actual, "event": changed,
            "hmp": q.hmp("info balloon")}


def reset_and_requery(q, console, timeout=240):
    """system_reset, wait for the guest to come up again, report each
    device's status then (back-ends that left the VMM must come back)."""
    q.cmd("system_reset")
    deadline = time.monotonic() + timeout
    while open(console, "rb").read().count(READY) < 2:
        if time.monotonic() > deadline:
            return {"error": "guest not ready after reset"}
        time.sleep(0.2)
    return {d["name"]: q.cmd("x-query-virtio-status", path=d["path"])
            for d in q.cmd("x-query-virtio")}


def main():
    out_path, argv = sys.argv[1], sys.argv[2:]
    tmp = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR") or "/tmp"
    sock = os.path.join(tmp, f"qmp-{os.getpid()}.sock")
    console = os.path.join(tmp, f"console-{os.getpid()}.log")
    cmd = argv + ["-qmp", f"unix:{sock},server=on,wait=off", "-serial", f"file:{console}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    result = {"argv": cmd}
    try:
        deadline = time.monotonic() + 240
        while True:
            if os.path.exists(console) and READY in open(console, "rb").read():
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                text = open(console, "rb").read()[-2000:] if os.path.exists(console) else b""
                err = proc.stderr.read() if proc.poll() is not None else b"(still running)"
                raise RuntimeError("guest never got ready:\n" + text.decode(errors="replace") +
                                   "\n" + err.decode(errors="replace"))
            time.sleep(0.2)
        q = vmm.QMP.unix(sock)
        devices = q.cmd("x-query-virtio")
        result["devices"] = devices
        result["status"], result["queues"], result["elements"], result["hmp"] = {}, {}, {}, {}
        for d in devices:
            name = d["name"]
            st = q.cmd("x-query-virtio-status", path=d["path"])
            result["status"][name] = st
            qs = []
            for i in range(st["num-vqs"]):
                qs.append(q.execute("x-query-virtio-queue-status", path=d["path"], queue=i))
            result["queues"][name] = qs
            result["elements"][name] = q.execute("x-query-virtio-queue-element", path=d["path"], queue=0)
            result.setdefault("vhost", {})[name] = [
                q.execute("x-query-virtio-vhost-queue-status", path=d["path"], queue=i)
                for i in range(st["num-vqs"])]
            result["hmp"][name] = q.hmp(f"info virtio-status {d['path']}")
        result["errors"] = {
            "bad-path": q.execute("x-query-virtio-status", path="/machine/nope"),
            "bad-queue": q.execute("x-query-virtio-queue-status", path=devices[0]["path"], queue=999),
            "no-vhost": q.execute("x-query-virtio-vhost-queue-status", path=devices[0]["path"], queue=0),
        }
        result["balloon"] = inflate_balloon(q)
        if os.environ.get("GUEST_QUERY_RESET"):
            result["after_reset"] = reset_and_requery(q, console)
        result["console"] = open(console, "rb").read().decode(errors="replace")[-4000:]
        if proc.poll() is not None:
            raise RuntimeError(f"the VMM exited with status {proc.returncode}:\n" +
                               proc.stderr.read().decode(errors="replace")[-3000:])
        q.cmd("quit")
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
