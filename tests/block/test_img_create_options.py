#!/usr/bin/env python3
"""vireo-img's -o option tables: help listings for create, convert and
amend, measure's -o, option lists with ",," escapes, the Formatting line, the checks made
after it, and AES-encrypted qcow2 creation -- each compared with qemu-img
running the same command line."""
import os
import struct

import vtest
from imgtest import Scratch, need_qemu, qimg, qio, run, vimg, vireo_img

def both(*args, cwd=None):
    """(vireo-img's, qemu-img's) combined output and exit status, program names unified."""
    out = []
    for prog in (vireo_img(), "qemu-img"):
        p = run([prog, *args], ok=range(256), cwd=cwd)
        text = (p.stdout + p.stderr).replace(os.path.basename(prog) + ":", "PROG:")
        out.append((text, p.returncode))
    return out


def same(*args, cwd=None):
    mine, theirs = both(*args, cwd=cwd)
    assert mine == theirs, f"{args}\nvireo-img: {mine}\nqemu-img:  {theirs}"
    return mine


def test_create_help_listings():
    need_qemu()
    with Scratch() as s:
        img = s.path("t.qcow2")
        for fmt in ("qcow2", "raw", "parallels"):
            for opt in ("help", "?", "cluster_size=4k,help", "help,cluster_size=4k"):
                same("create", "-f", fmt, "-o", opt, img, "1M")
            # Without a file name: the format's own options and a note on the protocol's.
            text, _ = same("create", "-f", fmt, "-o", "help")
            assert text.startswith(f"Supported {fmt} options:\n"), text
        same("create", "-o", "help")
        same("create", "-f", "bochs", "-o", "help")
        same("create", "-f", "nosuchformat", "-o", "help", img)
        text, _ = same("create", "-f", "qcow2", "-o", "help", img)
        lines = text.splitlines()[1:]
        assert lines == sorted(lines) and len(lines) > 10, lines


def test_convert_and_amend_help_listings():
    need_qemu()
    with Scratch() as s:
        img = s.path("t.qcow2")
        qimg("create", "-q", "-f", "qcow2", img, "1M")
        same("convert", "-O", "qcow2", "-o", "help", img, img + ".out")
        same("convert", "-O", "qcow2", "-o", "cluster_size=4k", "-o", "?", img, img + ".out")
        same("convert", "-O", "qcow2", "-o", "help")
        same("convert", "-o", "help")
        same("convert", "-O", "bochs", "-o", "help")
        for args in (("-f", "qcow2", "-o", "help", img), ("-o", "help", img),
                     ("-f", "qcow2", "-o", "help"), ("-o", "help"),
                     ("-f", "bochs", "-o", "help")):
            same("amend", *args)
        assert not os.path.exists(img + ".out")


def test_option_lists_and_escapes():
    need_qemu()
    with Scratch() as s:
        img = s.path("t.qcow2")
        for cmd in (["create", "-f", "qcow2"], ["amend", "-f", "qcow2"]):
            for bad in ("backing_file=x,", ",help", ",,", ""):
                mine, _ = same(*cmd, "-o", "lazy_refcounts=on", "-o", bad, "-o", "help", img)
                assert f"Invalid option list: {bad}" in mine, mine
        # ",," is a comma inside a value, echoed doubled on the Formatting line.
        same("create", "-f", "qcow2", "-u", "-o", f"backing_file={img},,help", "-F", "qcow2",
             img, "1M")
        # Repeated options: the last one wins; -o lists are merged.
        same("create", "-f", "qcow2", "-o", "cluster_size=4k", "-o", "lazy_refcounts=on",
             "-o", "cluster_size=8k", img, "1M")
        assert "cluster_size: 8192" in qimg("info", img).stdout


def test_formatting_line_and_late_checks():
    need_qemu()
    with Scratch() as s:
        img = s.path("t.img")
        cases = [
            ("qcow2", "compat=0.42"), ("qcow2", "compat=v2"), ("qcow2", "preallocation=1234"),
            ("qcow2", "compression_type=foo"), ("qcow2", "refcount_bits=3"),
            ("qcow2", "refcount_bits=0"), ("qcow2", "cluster_size=1000"),
            ("qcow2", "encryption=off"), ("qcow2", "lazy_refcounts=maybe"),
            ("qcow2", "refcount_bits=x"), ("qcow2", "nosuch=1"), ("qcow2", "nocow=on"),
            ("qcow2", "extent_size_hint=1M,preallocation=metadata"),
            ("raw", "preallocation=metadata"), ("raw", "preallocation=falloc,nocow=off"),
            ("raw", "cluster_size=4k"), ("parallels", "cluster_size=64k"),
            ("parallels", "preallocation=off"),
        ]
        for fmt, opts in cases:
            same("create", "-f", fmt, "-o", opts, img, "1M")
        same("create", "-f", "nosuchformat", img, "1M")
        same("create", "-f", "bochs", img, "1M")


def test_convert_option_errors():
    need_qemu()
    with Scratch() as s:
        src, dst = s.path("s.qcow2"), s.path("d.qcow2")
        qimg("create", "-q", "-f", "qcow2", src, "1M")
        for opts in ("nosuch=1", "lazy_refcounts=maybe", "compat=0.42", "preallocation=1234"):
            same("convert", "-O", "qcow2", "-o", opts, src, dst)
        for flags in (["-C", "-S", "4k"], ["-C", "-c"], ["-C", "--salvage"]):
            same("convert", *flags, "-O", "qcow2", src, dst)
        vimg("convert", "-O", "qcow2", "-o", "cluster_size=4k,lazy_refcounts=on", src, dst)
        info = qimg("info", dst).stdout
        assert "cluster_size: 4096" in info and "lazy refcounts: true" in info, info


def test_measure_options_like_qemu_img():
    """measure reads -o with create's tables (several -o joined, in any order
    with -O) and refuses what no qcow2 image could be, in qemu-img's words."""
    need_qemu()
    with Scratch() as s:
        src = s.path("src.qcow2")
        qimg("create", "-f", "qcow2", src, "64M")
        qio(src, "write -P 7 1M 3M", "write -P 9 40M 100k")
        for opts in (["-o", "cluster_size=4k"], ["-o", "cluster_size=4k", "-o", "refcount_bits=64"],
                     ["-o", "extended_l2=on,cluster_size=64k"], ["-o", "compat=0.10"],
                     ["-o", "cluster_size=foo"], ["-o", "nosuch=1"], ["-o", "help"],
                     ["-o", "cluster_size=3k"], ["-o", "cluster_size=4M"], ["-o", "refcount_bits=3"],
                     ["-o", "compat=0.10,refcount_bits=1"], ["-o", "extended_l2=on,cluster_size=4k"],
                     ["-o", "backing_file=x"]):
            same("measure", *opts, "-O", "qcow2", "--size", "1G")
            same("measure", "-O", "qcow2", *opts, src)
        same("measure", "-O", "raw", "-o", "cluster_size=4k", "--size", "1G")
        same("measure", "-O", "qcow2", "-o", "cluster_size=512", "--size", "100T")
        same("measure", "--output=json", "-O", "qcow2", "-o", "cluster_size=1M", src)


def crypt_method(path):
    with open(path, "rb") as f:
        return struct.unpack(">I", f.read(36)[32:36])[0]


def test_aes_encrypted_qcow2_is_usable_by_qemu():
    need_qemu()
    with Scratch() as s:
        img = s.path("enc.qcow2")
        secret = "secret,id=sec0,data=123456"
        same("create", "-f", "qcow2", "--object", secret, "-o",
             "encryption=on,encrypt.key-secret=sec0", img, "64M")
        assert crypt_method(img) == 1
        vimg("create", "-q", "-f", "qcow2", "--object", secret, "-o",
             "encrypt.format=aes,encrypt.key-secret=sec0", img, "64M")
        assert crypt_method(img) == 1
        opts = f"driver=qcow2,file.filename={img},encrypt.key-secret=sec0"
        p = run(["qemu-io", "--object", secret, "--image-opts", opts,
                 "-c", "write -P 0x5a 0 64k", "-c", "read -P 0x5a 0 64k"])
        assert "Pattern verification failed" not in p.stdout, p.stdout
        qimg("check", "--object", secret, "--image-opts", opts)
        # The data is not stored in the clear.
        with open(img, "rb") as f:
            assert b"\x5a" * 4096 not in f.read()
        # Refusals, worded as qemu-img's.
        for opts in ("encryption=on", "encrypt.format=aes,encrypt.key-secret=nope",
                     "encrypt.key-secret=sec0", "encryption=on,encrypt.format=aes",
                     "encrypt.format=foo,encrypt.key-secret=sec0"):
            same("create", "-f", "qcow2", "--object", secret, "-o", opts, img, "1M")
        same("create", "-f", "qcow2", "--object", "foo,id=x", img, "1M")
        # LUKS options that make no sense for the format given (LUKS itself: test_qcow2_luks.py).
        same("create", "-f", "qcow2", "--object", secret, "-o",
             "encrypt.format=aes,encrypt.key-secret=sec0,encrypt.hash-alg=sha1", img, "1M")


vtest.main()
