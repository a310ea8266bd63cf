"""Helpers shared by the block layer's functional tests: run vireo-img and
the reference qemu-img/qemu-io side by side in a scratch directory."""
import json
import contextlib
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


@contextlib.contextmanager
def in_dir(path):
    """qemu 7.2 opens a relative data file name from its working directory
    (vireo from the image's directory, like backing files): run both from
    the image's directory so they find the same file."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


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


# ---- parallels images built byte by byte, per the format's spec ----

PAR_MAGIC_OLD = b"WithoutFreeSpace"
PAR_MAGIC_EXT = b"WithouFreSpacExt"
PAR_INUSE_OPEN = 0x746F6E59
PAR_INUSE_CLOSED = 0x312e3276
PAR_EXT_MAGIC = 0xAB234CEF23DCEA87
PAR_FEAT_BITMAP = 0x20385FAE252CB34A


def parallels_header(magic=PAR_MAGIC_EXT, version=2, tracks=128, bat_entries=16,
                     nb_sectors=None, in_use=0, data_off=None, flags=0, ext_off=0):
    if nb_sectors is None:
        nb_sectors = bat_entries * tracks
    if data_off is None:
        cs = tracks * 512
        data_off = (64 + bat_entries * 4 + cs - 1) // cs * cs // 512
    return struct.pack("<16sIIIIIQIIIQ", magic, version, 16, 1, tracks, bat_entries,
                       nb_sectors, in_use, data_off, flags, ext_off)


def parallels_image(path, clusters, magic=PAR_MAGIC_EXT, tracks=128, bat_entries=16,
                    bat=None, tail=b"", **hdr):
    """clusters: {guest cluster index: fill byte}; stored in order after data_off.
    bat: explicit BAT values (overrides the layout computed from clusters)."""
    cs = tracks * 512
    header = parallels_header(magic, tracks=tracks, bat_entries=bat_entries, **hdr)
    data_off = struct.unpack_from("<I", header, 48)[0] * 512
    if data_off == 0:
        data_off = (64 + bat_entries * 4 + 511) // 512 * 512
    unit = cs if magic == PAR_MAGIC_EXT else 512
    entries = [0] * bat_entries
    body = bytearray()
    for n, (idx, fill) in enumerate(sorted(clusters.items())):
        entries[idx] = (data_off + n * cs) // unit
        body += bytes([fill]) * cs
    if bat is not None:
        entries = bat
    raw = bytearray(header + struct.pack(f"<{len(entries)}I", *entries))
    raw += b"\0" * (data_off - len(raw))
    raw += body + tail
    with open(path, "wb") as f:
        f.write(raw)
    return data_off, cs


def parallels_ext_cluster(cs, features, good_md5=True, magic=PAR_EXT_MAGIC):
    """features: [(magic, flags, data bytes)]; the end marker is appended."""
    import hashlib
    body = bytearray()
    for fmagic, fflags, data in features:
        body += struct.pack("<QQII", fmagic, fflags, len(data), 0) + data
        body += b"\0" * (-len(data) % 8)
    body += b"\0" * 24
    rest = bytes(body) + b"\0" * (cs - 24 - len(body))
    digest = hashlib.md5(rest).digest()
    if not good_md5:
        digest = bytes(16)
    return struct.pack("<Q", magic) + digest + rest


def parallels_bitmap_feature(disk_sectors, uuid16, gran_sectors, l1):
    return struct.pack("<Q16sII", disk_sectors, uuid16, gran_sectors, len(l1)) + \
        struct.pack(f"<{len(l1)}Q", *l1)


def parallels_read_ext(path):
    """Parse the format extension: (in_use, [(magic, flags, data)])."""
    import hashlib
    with open(path, "rb") as f:
        data = f.read()
    tracks, in_use, ext_off = (struct.unpack_from("<I", data, 28)[0],
                               struct.unpack_from("<I", data, 44)[0],
                               struct.unpack_from("<Q", data, 56)[0])
    if not ext_off:
        return in_use, None
    cs = tracks * 512
    c = data[ext_off * 512:ext_off * 512 + cs]
    assert struct.unpack_from("<Q", c)[0] == PAR_EXT_MAGIC
    assert hashlib.md5(c[24:]).digest() == c[8:24], "bad MD5"
    feats, pos = [], 24
    while True:
        m, fl, size = struct.unpack_from("<QQI", c, pos)
        if m == 0:
            return in_use, feats
        feats.append((m, fl, c[pos + 24:pos + 24 + size]))
        pos += 24 + (size + 7) // 8 * 8


def parallels_bitmap_set_bits(path, feature_data):
    """Set bit numbers of a dirty bitmap feature read straight from the file."""
    with open(path, "rb") as f:
        data = f.read()
    cs = struct.unpack_from("<I", data, 28)[0] * 512
    size, _, gran, l1_size = struct.unpack_from("<Q16sII", feature_data)
    nbits = (size + gran - 1) // gran
    raw = bytearray()
    for i in range(l1_size):
        (e,) = struct.unpack_from("<Q", feature_data, 32 + 8 * i)
        raw += (b"\0" * cs if e == 0 else b"\xff" * cs if e == 1
                else data[e * 512:e * 512 + cs].ljust(cs, b"\0"))
    return {i for i in range(nbits) if raw[i // 8] >> (i % 8) & 1}, gran
