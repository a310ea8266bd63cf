#!/usr/bin/env python3
"""ivshmem on the KVM accelerator, with a tiny hand-assembled guest on this
host's /dev/kvm (no lab needed).

BAR2 must be a real KVM memory slot, not trapped MMIO: the guest *executes*
code the test placed in the shared memory, which KVM cannot do from MMIO
(it stops the vCPU with an emulation failure). The slot must follow the BAR
when the guest moves it and go away when the guest turns decoding off. A
Doorbell write reaches the peer's eventfd.
"""
import mmap
import os
import select
import socket
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import vmm  # noqa: E402
import vtest  # noqa: E402
from test_ivshmem import PyServer, eventfds, wait_for  # noqa: E402
from tinyguest import ACPI_S5, HALT, LOAD, putc, pvh_elf  # noqa: E402

BAR0, BAR2, BAR2_MOVED = 0xfe000000, 0xe0000000, 0xd0000000
SLOT = 1                    # the first free slot after the host bridge
FAKE_PEER = 7               # a peer that is only this test holding two eventfds
MARKER = 0x4b564d21


# ---- a few 32-bit instructions ----

def mov_eax(v): return b"\xb8" + struct.pack("<I", v)
def mov_ebx(v): return b"\xbb" + struct.pack("<I", v)
def mov_dx(v): return b"\x66\xba" + struct.pack("<H", v)
OUT_DX_EAX = b"\xef"
JMP_EAX = b"\xff\xe0"
JMP_EBX = b"\xff\xe3"
def store32(addr, v): return b"\xc7\x05" + struct.pack("<II", addr, v)
def load_eax(addr): return b"\xa1" + struct.pack("<I", addr)
def cmp_eax(v): return b"\x3d" + struct.pack("<I", v)


def cfg_write(off, val):
    return (mov_eax(0x80000000 | SLOT << 11 | off) + mov_dx(0xcf8) + OUT_DX_EAX +
            mov_eax(val) + mov_dx(0xcfc) + OUT_DX_EAX)


def call_shared(target, code_so_far):
    """Jump into the shared memory at target; it jumps back through ebx."""
    ret = LOAD + len(code_so_far) + 5 + 5 + 2
    return mov_ebx(ret) + mov_eax(target) + JMP_EAX


def guest():
    code = b""
    code += cfg_write(0x10, BAR0) + cfg_write(0x18, BAR2) + cfg_write(0x1c, 0)
    code += cfg_write(0x04, 0x6)                            # memory decoding + bus master
    code += store32(BAR2 + 0x100, MARKER)                   # a store into the slot
    code += store32(BAR0 + 12, FAKE_PEER << 16 | 1)         # Doorbell: peer 7, vector 1
    code += putc("A")
    code += call_shared(BAR2, code)
    code += cfg_write(0x18, BAR2_MOVED)                     # move BAR2
    code += call_shared(BAR2_MOVED, code)
    code += cfg_write(0x04, 0x0)                            # decoding off: nothing there
    skip = putc("D")
    code += load_eax(BAR2_MOVED + 0x100) + cmp_eax(0xffffffff) + b"\x75" + bytes([len(skip)])
    code += skip + ACPI_S5 + HALT
    return code


SHARED_CODE = putc("B") + JMP_EBX       # runs from BAR2


def test_bar2_is_a_memory_slot_and_doorbell_reaches_peer():
    if not os.path.exists("/dev/kvm"):
        vtest.skip("no /dev/kvm")
    tmp = tempfile.mkdtemp(prefix="vireo-ivshmem-kvm-")
    sock = os.path.join(tmp, "ivshmem.sock")
    out = os.path.join(tmp, "serial.out")
    kernel = os.path.join(tmp, "tiny.elf")
    with open(kernel, "wb") as f:
        f.write(pvh_elf(guest()))
    peer_fds = [os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)]
    srv = PyServer(sock, extra=[(FAKE_PEER, [fd]) for fd in peer_fds])
    shm = mmap.mmap(srv.shm, 1 << 20)
    shm[0:len(SHARED_CODE)] = SHARED_CODE
    try:
        v = vmm.Vireo("-kernel", kernel, "-m", "16M", "-serial", f"file:{out}", "-S",
                      "-chardev", f"socket,id=iv,path={sock}",
                      "-device", f"ivshmem-doorbell,chardev=iv,vectors=2,addr={SLOT:02x}.0")
        with v:
            qmp = v.qmp()
            # Own vectors (2) and the fake peer's (2) are in before the guest runs.
            wait_for(lambda: eventfds(v.proc.pid) >= reference_eventfds(kernel) + 4, "set-up")
            qmp.cmd("cont")
            assert v.wait(30) == 0, v.stderr
        with open(out, "rb") as f:
            serial = f.read()
        assert serial == b"ABBD", (serial, v.stderr)
        assert struct.unpack_from("<I", shm, 0x100)[0] == MARKER
        r, _, _ = select.select([peer_fds[1]], [], [], 5)
        assert r and struct.unpack("<Q", os.read(peer_fds[1], 8))[0] == 1
        assert not select.select([peer_fds[0]], [], [], 0)[0]
    finally:
        shm.close()
        srv.close()
        for fd in peer_fds:
            os.close(fd)


_reference = []


def reference_eventfds(kernel):
    """How many eventfds the same VM holds without ivshmem (the main loop's own ...)."""
    if not _reference:
        with vmm.Vireo("-kernel", kernel, "-m", "16M", "-S") as v:
            v.qmp()
            _reference.append(eventfds(v.proc.pid))
    return _reference[0]


if __name__ == "__main__":
    vtest.main()
