"""Helpers shared by the block layer's functional tests: run vireo-img and
the reference qemu-img/qemu-io side by side in a scratch directory."""
import json
import os
import shutil
import struct
import subprocess
import tempfile

import vtest


def vireo_img():
    for rel in ("vireo-img", os.path.join("tools", "vireo-img")):
        path = os.path.join(vtest.BUILD, rel)
        if os.path.exists(path):
            return path
    return vtest.binary("vireo-img")


def need_qemu():
    if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        vtest.skip("qemu-img/qemu-io not installed")


class Scratch:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vireo-blk-")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


def run(args, ok=(0,), cwd=None):
    p = subprocess.run(args, capture_output=True, text=True, cwd=cwd)
    if p.returncode not in ok:
        raise AssertionError(f"{args} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def vimg(*args, ok=(0,), cwd=None):
    return run([vireo_img(), *args], ok=ok, cwd=cwd)


def qimg(*args, ok=(0,), cwd=None):
    return run(["qemu-img", *args], ok=ok, cwd=cwd)


def qio(path, *cmds, fmt="qcow2"):
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    p = run(args + [path])
    if "error" in p.stdout.lower() or "fail" in p.stdout.lower() or "mismatch" in p.stdout.lower():
        raise AssertionError(f"qemu-io {cmds}: {p.stdout}")
    return p


def qemu_check_clean(path, fmt="qcow2"):
    """qemu-img check must find no corruption and no leak."""
    p = qimg("check", "-f", fmt, "--output=json", path, ok=(0, 2, 3))
    r = json.loads(p.stdout)
    assert r.get("corruptions", 0) == 0 and r.get("leaks", 0) == 0, (path, r)
    return r


def same_content(a, b, fa=None, fb=None):
    args = ["compare"]
    if fa:
        args += ["-f", fa]
    if fb:
        args += ["-F", fb]
    qimg(*args, a, b)


def qcow2_bitmap_bits(path, name):
    """Read a persistent bitmap straight from the file, per the qcow2 spec."""
    with open(path, "rb") as f:
        data = f.read()
    hdr = struct.unpack(">IIQIIQIIQQIIQQQQII", data[:104])
    version, cluster_bits, size = hdr[1], hdr[4], hdr[5]
    autoclear = hdr[15]
    header_len = hdr[17] if version >= 3 else 72
    assert autoclear & 1, "bitmaps autoclear bit not set"
    cs = 1 << cluster_bits
    pos = header_len
    while True:
        typ, ln = struct.unpack(">II", data[pos:pos + 8])
        if typ == 0:
            raise KeyError("no bitmaps extension")
        if typ == 0x23852875:
            nb, _, dsize, doff = struct.unpack(">IIQQ", data[pos + 8:pos + 32])
            break
        pos += 8 + (ln + 7) // 8 * 8
    d = data[doff:doff + dsize]
    p = 0
    for _ in range(nb):
        toff, tsize, flags, typ, gbits, nlen, extra = struct.unpack(">QIIBBHI", d[p:p + 24])
        bname = d[p + 24 + extra:p + 24 + extra + nlen].decode()
        p += (24 + extra + nlen + 7) // 8 * 8
        if bname != name:
            continue
        gran = 1 << gbits
        nbits = (size + gran - 1) // gran
        raw = bytearray()
        for i in range(tsize):
            (e,) = struct.unpack(">Q", data[toff + 8 * i:toff + 8 * i + 8])
            off = e & 0x00fffffffffffe00
            if off:
                raw += data[off:off + cs]
            else:
                raw += (b"\xff" if e & 1 else b"\0") * cs
        return {i for i in range(nbits) if raw[i // 8] >> (i % 8) & 1}, gran, flags
    raise KeyError(name)
