#!/usr/bin/env python3
"""--image-opts lists with qcow2 open options, side by side with qemu-img 7.2:
the metadata cache sizes (accepted, or refused with the same message), an
external data file named at open (data-file.filename) that replaces the
header's name for that open only, and amend's LUKS keyslot options (listed,
refused on an image without encryption)."""
import json
import shutil

import vtest
from imgtest import Scratch, in_dir, need_qemu, qimg, qio, vimg


def same_open(path, extra):
    spec = f"driver=qcow2,file.filename={path}" + (f",{extra}" if extra else "")
    a = vimg("info", "--image-opts", spec, ok=(0, 1))
    b = qimg("info", "--image-opts", spec, ok=(0, 1))
    assert a.returncode == b.returncode, (extra, a.stderr, b.stderr)
    assert a.stderr.replace("vireo-img", "qemu-img") == b.stderr, (extra, a.stderr, b.stderr)
    return a.returncode


def test_cache_options():
    need_qemu()
    with Scratch() as s:
        img = s.path("c.qcow2")
        qimg("create", "-q", "-f", "qcow2", img, "64M")
        for ok in ("l2-cache-entry-size=4096", "l2-cache-size=1M", "refcount-cache-size=256k",
                   "cache-size=8M", "cache-size=2M,l2-cache-size=1M",
                   "cache-clean-interval=30", "l2-cache-size=1T"):
            assert same_open(img, ok) == 0, ok
        for bad in ("l2-cache-entry-size=1000", "l2-cache-entry-size=256",
                    "l2-cache-entry-size=131072",
                    "cache-size=4M,l2-cache-size=1M,refcount-cache-size=1M",
                    "cache-size=1M,l2-cache-size=2M", "cache-size=1M,refcount-cache-size=2M",
                    "cache-clean-interval=99999999999", "l2-cache-size=lots", "no-such-key=1"):
            assert same_open(img, bad) == 1, bad


def test_cache_options_keep_data():
    """A tiny L2 cache (two tables) still reads and writes every table right."""
    need_qemu()
    with Scratch() as s:
        img = s.path("t.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", img, "64M")
        qio(img, *[f"write -P {i + 1} {i * 8}M 4k" for i in range(8)])
        out = s.path("out.raw")
        vimg("dd", "--image-opts", f"if=driver=qcow2,file.filename={img},l2-cache-size=8k",
             f"of={out}", "-O", "raw")
        data = open(out, "rb").read()
        for i in range(8):
            assert data[i * 8 << 20:(i * 8 << 20) + 4096] == bytes([i + 1]) * 4096, i


def test_data_file_named_at_open():
    need_qemu()
    with Scratch() as s, in_dir(s.dir):
        img = s.path("d.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-o", f"data_file={img}.data", img, "64M")
        qio(img, "write -P 7 0 64k")
        qimg("amend", "-o", "data_file=missing", img)
        spec = f"data-file.filename={img}.data,file.filename={img}"
        a = vimg("info", "--output=json", "--image-opts", spec)
        b = qimg("info", "--output=json", "--image-opts", spec)
        assert json.loads(a.stdout)["format-specific"] == json.loads(b.stdout)["format-specific"]
        assert json.loads(a.stdout)["format-specific"]["data"]["data-file"] == "missing"
        # Without the option the header's name is used, and it does not exist.
        r = vimg("info", img, ok=(1,))
        assert "missing" in r.stderr, r.stderr
        # Clearing the name through an open that names the file.
        vimg("amend", "-o", "data_file=", "--image-opts", spec)
        a = vimg("info", "--output=json", "--image-opts", spec)
        fs = json.loads(a.stdout)["format-specific"]["data"]
        assert "data-file" not in fs and fs["data-file-raw"] is False, fs
        r = vimg("info", img, ok=(1,))
        assert "'data-file' is required for this image" in r.stderr, r.stderr
        out = s.path("out.raw")
        vimg("dd", "--image-opts", f"if=driver=qcow2,{spec}", f"of={out}", "-O", "raw",
             "bs=64k", "count=1")
        assert open(out, "rb").read() == b"\x07" * 65536
        # An image without the data file feature refuses one named at open.
        plain = s.path("p.qcow2")
        qimg("create", "-q", "-f", "qcow2", plain, "64M")
        r = vimg("info", "--image-opts",
                 f"driver=qcow2,file.filename={plain},data-file.filename={img}.data", ok=(1,))
        assert "can only be set for images with an external data file" in r.stderr


def test_amend_keyslot_options_listed_and_refused():
    need_qemu()
    with Scratch() as s:
        img = s.path("k.qcow2")
        qimg("create", "-q", "-f", "qcow2", img, "64M")
        ref = s.path("k-q.qcow2")
        shutil.copyfile(img, ref)
        a = vimg("amend", "-f", "qcow2", "-o", "help", img)
        b = qimg("amend", "-f", "qcow2", "-o", "help", ref)
        assert a.stdout == b.stdout
        for opts in ("encrypt.keyslot=0", "encrypt.new-secret=sec0,encrypt.state=active",
                     f"backing_file={img},,help", "cluster_size=4k", "compat=2.0"):
            a = vimg("amend", "-f", "qcow2", "-o", opts, img, ok=(1,))
            b = qimg("amend", "-f", "qcow2", "-o", opts, ref, ok=(1,))
            assert a.stderr.replace("vireo-img", "qemu-img") == b.stderr, (opts, a.stderr)


vtest.main()
