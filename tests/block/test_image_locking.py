#!/usr/bin/env python3
"""Image locking as QEMU does it (OFD locks at bytes 100+perm and 200+perm):
while vireo holds an image, Debian's qemu-img and qemu-io get exactly the
answers they get while QEMU 7.2 holds it (side by side, same command
line); vireo refuses an image qemu-io holds with QEMU's message;
locking=off takes no locks; backing files are locked for reading.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import vmm  # noqa: E402
import vtest  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
TMP = tempfile.mkdtemp(prefix="vireo-lock-")
IMG = os.path.join(TMP, "d.qcow2")
BASE = os.path.join(TMP, "base.qcow2")
TOP = os.path.join(TMP, "top.qcow2")
RAW = os.path.join(TMP, "r.raw")


def img(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, cwd=TMP, capture_output=True)


def setup():
    img("create", "-q", "-f", "qcow2", IMG, "16M")
    img("create", "-q", "-f", "qcow2", BASE, "16M")
    img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", TOP)
    img("create", "-q", "-f", "raw", RAW, "16M")


def holder(args, qemu):
    """A paused VMM holding the images; its QMP socket answers once they are open."""
    if qemu:
        v = vmm.Vireo("-M", "pc", "-nodefaults", "-S", *args, binary=QEMU)
    else:
        v = vmm.Vireo("-nodefaults", "-S", *args, qtest=True)
    v.qmp()
    return v


def tool(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    first = (r.stderr.strip().splitlines() or [""])[0]
    return r.returncode, first


PROBES = [
    ["qemu-img", "info", IMG],
    ["qemu-img", "info", "-U", IMG],
    ["qemu-io", "-c", "read 0 4k", IMG],
    ["qemu-io", "-r", "-c", "read 0 4k", IMG],
    ["qemu-io", "-c", "write 0 4k", IMG],
    ["qemu-img", "info", "-f", "raw", RAW],
    ["qemu-io", "-f", "raw", "-c", "write 0 4k", RAW],
    ["qemu-io", "-f", "raw", "-r", "-c", "read 0 4k", RAW],
    ["qemu-img", "info", "--backing-chain", TOP],
    ["qemu-io", "-c", "write 0 4k", BASE],
    ["qemu-io", "-r", "-c", "read 0 4k", BASE],
]

CASES = {
    "blockdev qcow2 with a device": [
        "-blockdev", f"driver=file,node-name=f0,filename={IMG}",
        "-blockdev", "driver=qcow2,node-name=d0,file=f0",
        "-device", "virtio-blk-pci,drive=d0"],
    "blockdev qcow2 read-only": [
        "-blockdev", f"driver=file,node-name=f0,filename={IMG},read-only=on",
        "-blockdev", "driver=qcow2,node-name=d0,file=f0,read-only=on",
        "-device", "virtio-blk-pci,drive=d0"],
    "blockdev raw, no device": [
        "-blockdev", f"driver=file,node-name=f0,filename={RAW}",
        "-blockdev", "driver=raw,node-name=d0,file=f0"],
    "drive raw with a device, drive qcow2 with a backing file": [
        "-drive", f"file={RAW},format=raw,if=none,id=r0",
        "-device", "virtio-blk-pci,drive=r0",
        "-drive", f"file={TOP},format=qcow2,if=none,id=t0",
        "-device", "virtio-blk-pci,drive=t0"],
    "drive raw shared": [
        "-drive", f"file={RAW},format=raw,if=none,id=r0",
        "-device", "virtio-blk-pci,drive=r0,share-rw=on"],
    "locking off": [
        "-blockdev", f"driver=file,node-name=f0,filename={IMG},locking=off",
        "-blockdev", "driver=qcow2,node-name=d0,file=f0",
        "-device", "virtio-blk-pci,drive=d0"],
}


def answers(args, qemu):
    v = holder(args, qemu)
    try:
        return [tool(p) for p in PROBES]
    finally:
        v.close()


def test_qemu_tools_see_vireo_as_they_see_qemu():
    for name, args in CASES.items():
        q = answers(args, True)
        v = answers(args, False)
        for probe, a, b in zip(PROBES, q, v):
            assert a == b, f"{name}: {' '.join(probe)}\nwith QEMU:  {a}\nwith vireo: {b}"
        if name == "blockdev qcow2 with a device":
            assert q[0] == (1, "qemu-img: Could not open '%s': Failed to get shared \"write\" "
                               "lock" % IMG), q[0]
            assert q[4][0] == 1 and 'Failed to get "write" lock' in q[4][1], q[4]
    # Released at exit: the tools work again.
    assert tool(["qemu-io", "-c", "write 0 4k", IMG])[0] == 0


def message(err):
    """The message after the program name and the option it is about, with the hint lines."""
    lines = err.strip().splitlines()
    lines[0] = re.sub(r"^(qemu-system-x86_64|vireo): (-\w+ \S+: )?", "", lines[0])
    return "\n".join(lines)


def test_vireo_refuses_an_image_qemu_io_holds():
    for io_args, args in [
            (["-f", "qcow2", IMG], ["-blockdev", f"driver=file,node-name=f0,filename={IMG}",
                                    "-blockdev", "driver=qcow2,node-name=d0,file=f0"]),
            (["-r", "-f", "qcow2", IMG], ["-drive", f"file={IMG},format=qcow2,if=none,id=d0",
                                          "-device", "virtio-blk-pci,drive=d0"]),
            (["-f", "raw", RAW], ["-drive", f"file={RAW},format=raw,if=none,id=d0",
                                  "-device", "virtio-blk-pci,drive=d0"]),
            (["-f", "qcow2", BASE], ["-drive", f"file={TOP},format=qcow2,if=none,id=d0"])]:
        io = subprocess.Popen(["qemu-io"] + io_args, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            io.stdout.read(len("qemu-io> "))      # the prompt: the image is open
            out = []
            for cmd in ([QEMU, "-M", "pc"], [vtest.binary("vireo"), "-accel", "qtest"]):
                r = subprocess.run(cmd + ["-nodefaults", "-S", "-display", "none"] + args,
                                   capture_output=True, text=True, timeout=30)
                out.append((r.returncode, message(r.stderr) if r.returncode else ""))
            assert out[0] == out[1], f"qemu-io {io_args}: QEMU {out[0]}, vireo {out[1]}"
        finally:
            io.stdin.close()
            io.wait(10)
    # QMP blockdev-add gives the same answer.
    io = subprocess.Popen(["qemu-io", "-f", "qcow2", IMG], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        io.stdout.read(len("qemu-io> "))
        errs = []
        for qemu in (True, False):
            v = holder([], qemu)
            try:
                qmp = v.monitors[0]     # QEMU serves one client per -qmp socket
                r = qmp.execute("blockdev-add", driver="qcow2", **{"node-name": "d0"},
                                file={"driver": "file", "filename": IMG})
                errs.append(r.get("error"))
            finally:
                v.close()
        assert errs[0] == errs[1] and errs[0]["desc"] == 'Failed to get "write" lock', errs
    finally:
        io.stdin.close()
        io.wait(10)


if __name__ == "__main__":
    try:
        setup()
        vtest.main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
