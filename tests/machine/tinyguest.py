"""Tiny hand-assembled guests for the KVM accelerator: 32-bit protected-mode
code (the PVH entry state: paging off, flat segments) wrapped in a minimal
ELF file with a PVH entry note, so vireo boots it like any PVH kernel.
"""
import struct

LOAD = 0x100000

# 32-bit protected-mode fragments (paging off, flat segments: PVH entry state).
def putc(ch):      return bytes([0xb0, ord(ch), 0x66, 0xba, 0xf8, 0x03, 0xee])
I8042_RESET = bytes([0xb0, 0xfe, 0xe6, 0x64])                        # out 0x64, 0xfe
ACPI_S5 = bytes([0x66, 0xb8, 0x00, 0x34, 0x66, 0xba, 0x04, 0x06, 0x66, 0xef])  # SLP_TYP 5|SLP_EN
HALT = bytes([0xf4, 0xeb, 0xfd])                                    # hlt; jmp back


def delay(count):  # mov ecx, count; loop $
    return b"\xb9" + struct.pack("<I", count) + b"\xe2\xfe"


def pvh_elf(code):
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", LOAD)
    eh = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) +
          struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, LOAD, 64, 0, 0, 64, 56, 2, 0, 0, 0))
    ph_load = struct.pack("<IIQQQQQQ", 1, 5, 0x200, LOAD, LOAD, len(code), len(code), 0x1000)
    ph_note = struct.pack("<IIQQQQQQ", 4, 4, 176, 0, 0, len(note), len(note), 4)
    head = eh + ph_load + ph_note + note
    return head + bytes(0x200 - len(head)) + code + bytes(512)


def triple_fault(ch="T"):
    """Print ch, load an empty IDT and raise #BP: a triple fault."""
    idt = LOAD + 0x100                              # six zero bytes: an empty IDT
    code = putc(ch) + b"\x0f\x01\x1d" + struct.pack("<I", idt) + b"\xcc" + HALT
    return code + bytes(0x100 - len(code)) + bytes(8)
