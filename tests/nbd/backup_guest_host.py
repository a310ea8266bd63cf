#!/usr/bin/env python3
"""The host side of tests/nbd/test_backup_guest.py; runs where KVM boots
Linux (in the lab's L1, or on a KVM host).

usage: backup_guest_host.py OUT.json VIREO KERNEL INITRD

A guest whose /init keeps writing random data at random offsets of its
virtio-blk disk (a qcow2 node) while this script, over QMP:
  1. stops the guest, adds the persistent bitmap b0, lets it run again;
  2. copies the whole disk with nbdcopy from a read-only NBD export while
     the guest keeps writing (every cluster it touches from then on is
     recorded in b0, so the copy may be torn only where b0 is set);
  3. lets the guest write more, stops it, adds b1 for the next increment
     and disables b0 (a read-only export takes only a disabled bitmap),
     then exports the node with bitmaps [b0], reads the dirty extents with
     nbdinfo --map=qemu:dirty-bitmap:b0 and with qemu-img map
     (x-dirty-bitmap), copies exactly those extents with qemu-img onto the
     full copy and compares it with the export;
  4. removes b0, lets the guest write again, stops it and applies the
     increment b1 recorded the same way;
  5. compares the result, after quit, with the image file, and records the
     persistent bitmap Debian's qemu-img finds there.
Everything it saw goes to OUT.json; the test judges it.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmm  # noqa: E402
from nbdtest import del_export, qx  # noqa: E402

DISK_MIB = 256
GRANULARITY = 65536


def sh(*cmd, check=True, timeout=300):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}{p.stdout}")
    return p


class Console:
    """The guest's serial console, written by vireo to a file."""

    def __init__(self, path):
        self.path = path

    def text(self):
        try:
            with open(self.path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def writes(self):
        """How many writes the guest reported finished so far."""
        m = re.findall(r"^WROTE (\d+)", self.text(), re.M)
        return int(m[-1]) if m else 0

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}; console:\n{self.text()[-2000:]}")
            time.sleep(0.1)


def coalesce(extents):
    out = []
    for off, ln in sorted(extents):
        if out and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + ln)
        else:
            out.append((off, ln))
    return out


def call(q, cmd, **args):
    """A QMP command with its arguments spelled exactly ('node-name', 'name'); its return."""
    r = qx(q, cmd, **args)
    if "error" in r:
        raise RuntimeError(f"{cmd} {args}: {r['error']}")
    return r["return"]


def bitmaps(q):
    for n in call(q, "query-named-block-nodes", flat=True):
        if n.get("node-name") == "n0":
            return {b["name"]: b for b in n.get("dirty-bitmaps", [])}
    raise RuntimeError("node n0 not listed")


def increment(q, nbd, export, bitmap, tmp, full):
    """Export node n0 with @bitmap (disabled, the guest stopped), read its
    dirty extents with nbdinfo and with qemu-img map, copy exactly those
    onto @full with qemu-img, and compare @full with the export before and
    after. The export stays for the caller to delete."""
    r = {}
    call(q, "block-export-add", type="nbd", id=export, **{"node-name": "n0"}, name=export,
         bitmaps=[bitmap])
    uri = f"nbd+unix:///{export}?socket={nbd}"
    m = sh("nbdinfo", f"--map=qemu:dirty-bitmap:{bitmap}", uri).stdout
    rows = [line.split() for line in m.splitlines() if line.strip()]
    r["nbdinfo_dirty"] = coalesce((int(x[0]), int(x[1])) for x in rows
                                  if len(x) >= 4 and x[3] == "dirty")
    r["nbdinfo_covered"] = sum(int(x[1]) for x in rows)
    j = sh("qemu-img", "map", "--output=json", "--image-opts",
           f"driver=nbd,server.type=unix,server.path={nbd},export={export},"
           f"x-dirty-bitmap=qemu:dirty-bitmap:{bitmap}").stdout
    qmap = json.loads(j)
    # qemu-img reads a set bit of the bitmap context as a hole: data false
    r["qemu_img_dirty"] = coalesce((e["start"], e["length"]) for e in qmap if not e["data"])
    r["qemu_img_covered"] = sum(e["length"] for e in qmap)
    # without this increment the copy is not the disk
    c = sh("qemu-img", "compare", "-f", "raw", "-F", "raw", full, uri, check=False)
    r["before_compare_status"] = c.returncode
    # copy exactly the dirty extents: one qemu-img convert, one source per
    # extent, concatenated; then each piece goes to its place in the copy
    dirty = r["nbdinfo_dirty"]
    pieces = os.path.join(tmp, "pieces.raw")
    copied = 0
    for i in range(0, len(dirty), 50):
        batch = dirty[i:i + 50]
        srcs = [f"driver=raw,offset={off},size={ln},file.driver=nbd,file.server.type=unix,"
                f"file.server.path={nbd},file.export={export}" for off, ln in batch]
        sh("qemu-img", "convert", "-O", "raw", "--image-opts", *srcs, pieces)
        with open(pieces, "rb") as src, open(full, "r+b") as dst:
            got = os.fstat(src.fileno()).st_size
            if got != sum(ln for _, ln in batch):
                raise RuntimeError(f"qemu-img convert gave {got} bytes for {batch}")
            for off, ln in batch:
                dst.seek(off)
                dst.write(src.read(ln))
                copied += ln
    r["copied_bytes"] = copied
    c = sh("qemu-img", "compare", "-f", "raw", "-F", "raw", full, uri, check=False)
    r["compare_export_status"] = c.returncode
    r["compare_export_output"] = c.stdout + c.stderr
    return r


def main():
    out_path, vireo, kernel, initrd = sys.argv[1:5]
    tmp = os.environ.get("LAB_TMP") or os.environ.get("TMPDIR", "/tmp")
    res = {"timeline": []}
    t0 = time.monotonic()

    def note(what):
        res["timeline"].append([round(time.monotonic() - t0, 1), what])

    img = os.path.join(tmp, "disk.qcow2")
    full = os.path.join(tmp, "full.raw")
    nbd = os.path.join(tmp, "nbd.sock")
    qmp_path = os.path.join(tmp, "qmp.sock")
    con = Console(os.path.join(tmp, "console"))
    sh("qemu-img", "create", "-q", "-f", "qcow2", img, f"{DISK_MIB}M")
    # Data the guest finds already there, so the full copy carries some.
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 8M", "-c", "write -P 0xa5 100M 4M", img)
    proc = subprocess.Popen(
        [vireo, "-m", "256M", "-kernel", kernel, "-initrd", initrd,
         "-append", "console=ttyS0 quiet", "-display", "none", "-no-reboot",
         "-serial", f"file:{con.path}",
         "-qmp", f"unix:{qmp_path},server=on,wait=off",
         "-blockdev", f"driver=file,node-name=f0,filename={img}",
         "-blockdev", "driver=qcow2,node-name=n0,file=f0",
         "-device", "virtio-blk-pci,drive=n0,id=vd0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    q = None
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(qmp_path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("vireo did not open its QMP socket")
            time.sleep(0.05)
        q = vmm.QMP.unix(qmp_path, timeout=120)
        con.wait(lambda: con.writes() >= 5, 240, "the guest did not start writing")
        note(f"guest writing ({con.writes()} writes)")

        # 1. the bitmap starts while the guest is stopped
        call(q, "stop")
        res["status_stopped_1"] = call(q, "query-status")["status"]
        call(q, "block-dirty-bitmap-add", node="n0", name="b0", persistent=True,
              granularity=GRANULARITY)
        res["b0_at_add"] = bitmaps(q)["b0"]
        writes_at_add = con.writes()
        call(q, "cont")
        note(f"b0 added at {writes_at_add} writes")

        # 2. the full copy, the guest running
        call(q, "nbd-server-start", addr={"type": "unix", "data": {"path": nbd}})
        call(q, "block-export-add", type="nbd", id="full", **{"node-name": "n0"}, name="full")
        sh("nbdcopy", f"nbd+unix:///full?socket={nbd}", full)
        del_export(q, "full")
        res["writes_during_full_copy"] = con.writes() - writes_at_add
        note(f"full copy done ({res['writes_during_full_copy']} writes meanwhile)")

        # 3. more guest writes, then stop: b0 holds the increment
        base = con.writes()
        con.wait(lambda: con.writes() >= base + 30, 240, "the guest stopped writing")
        call(q, "stop")
        res["status_stopped_2"] = call(q, "query-status")["status"]
        res["writes_total"] = con.writes() - writes_at_add
        note(f"stopped after {res['writes_total']} writes since b0")
        call(q, "block-dirty-bitmap-add", node="n0", name="b1", persistent=True,
              granularity=GRANULARITY)
        call(q, "block-dirty-bitmap-disable", node="n0", name="b0")
        bm = bitmaps(q)
        res["b0"], res["b1_at_add"] = bm["b0"], bm["b1"]
        res["disk_size"] = DISK_MIB << 20
        res.update(increment(q, nbd, "inc", "b0", tmp, full))
        note(f"increment 1 applied: {res['copied_bytes']} bytes")
        res["b1_after"] = bitmaps(q)["b1"]
        del_export(q, "inc")
        # the backup is taken: b0 goes, b1 carries the chain on
        call(q, "block-dirty-bitmap-remove", node="n0", name="b0")

        # 4. a second increment, from b1, onto the same copy
        base = con.writes()
        call(q, "cont")
        con.wait(lambda: con.writes() >= base + 20, 240, "the guest stopped writing")
        call(q, "stop")
        res["writes_inc2"] = con.writes() - base
        call(q, "block-dirty-bitmap-disable", node="n0", name="b1")
        res["b1"] = bitmaps(q)["b1"]
        res["inc2"] = increment(q, nbd, "inc2", "b1", tmp, full)
        note(f"increment 2 applied: {res['inc2']['copied_bytes']} bytes "
             f"after {res['writes_inc2']} writes")
        res["status_before_quit"] = call(q, "query-status")["status"]
        del_export(q, "inc2")
        call(q, "quit")
        proc.wait(60)
        res["exit_status"] = proc.returncode
        c = sh("qemu-img", "compare", "-f", "raw", "-F", "qcow2", full, img, check=False)
        res["compare_file_status"] = c.returncode
        res["compare_file_output"] = c.stdout + c.stderr
        res["image_info"] = json.loads(sh("qemu-img", "info", "--output=json", img).stdout)
        res["image_check"] = sh("qemu-img", "check", img, check=False).returncode
    except Exception as e:  # the test reports it with the console and stderr
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        res["stderr"] = proc.stderr.read().decode(errors="replace")
        res["console"] = con.text()[-20000:]
        with open(out_path, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
