#!/usr/bin/env python3
"""Regenerates the seed corpora of the fuzz targets in tests/fuzz/: a few
small inputs per target, each reaching a different part of the parser.
The seeds are committed; run this only to refresh them.

A corpus directory also holds seeds added by hand, above all the
reproducers of fixed bugs (a crash file moved into the corpus so the smoke
test keeps running it). Those are never touched: corpus/GENERATED lists the
files this script wrote, and only those are replaced or removed when it
runs again. A generated name that collides with a hand-added file is an
error, not an overwrite.
Usage: make-corpus.py [TARGET...]   (default: every target)"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATORS = {}


def target(fn):
    GENERATORS[fn.__name__.replace("_", "-")] = fn
    return fn


MANIFEST = os.path.join(HERE, "corpus", "GENERATED")


def read_manifest():
    """{target: set of file names this script generated}"""
    out = {}
    if os.path.exists(MANIFEST):
        with open(MANIFEST) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "/" in line:
                    t, fname = line.split("/", 1)
                    out.setdefault(t, set()).add(fname)
    return out


def write_manifest(manifest):
    with open(MANIFEST + ".tmp", "w") as f:
        f.write("# Seeds written by tests/fuzz/make-corpus.py (TARGET/FILE); every other\n"
                "# file in a corpus directory was added by hand and is kept as it is.\n")
        for t in sorted(manifest):
            for fname in sorted(manifest[t]):
                f.write(f"{t}/{fname}\n")
    os.replace(MANIFEST + ".tmp", MANIFEST)


def write(name, seeds, manifest):
    """Replace the generated seeds of corpus @name; hand-added files stay."""
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    old = manifest.get(name, set())
    hand = set(os.listdir(d)) - old
    clash = hand & set(seeds)
    if clash:
        sys.exit(f"make-corpus: {name}: generated seed(s) {', '.join(sorted(clash))} would "
                 "overwrite hand-added files; rename one of them")
    for fname in old - set(seeds):
        if os.path.exists(os.path.join(d, fname)):
            os.unlink(os.path.join(d, fname))
    for fname, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)
    manifest[name] = set(seeds)
    if hand:
        print(f"{name}: kept {len(hand)} hand-added seed(s): {', '.join(sorted(hand))}")


# ---- fuzz-qmp: mode byte, then what a client writes ----
@target
def qmp():
    neg = b'{"execute":"qmp_capabilities"}\r\n'
    # mode bit 1: negotiated already; bits 3-7: cut into short reads
    return {
        "negotiate": b"\x00" + neg + b'{"execute":"query-version","id":1}',
        "before-negotiation": b"\x00" + b'{"execute":"query-commands"}' + neg,
        "scalars": b"\x02" + b'{"execute":"fuzz-scalars","arguments":{"i":-1,"i8":127,'
                   b'"i16":-32768,"i32":7,"i64":-9223372036854775808,"u8":255,"u16":1,'
                   b'"u32":4294967295,"u64":18446744073709551615,"sz":4096,"n":1.5e3,'
                   b'"b":true,"s":"x\\u00e9\\n"},"id":"a"}',
        "scalars-bad": b"\x0a" + b'{"execute":"fuzz-scalars","arguments":{"i":1,"u8":256}}'
                       b'{"execute":"fuzz-scalars","arguments":{"i":"1"}}'
                       b'{"execute":"fuzz-scalars","arguments":{"i":1,"zz":0}}',
        "nested": b"\x03" + b'{"execute":"fuzz-nested","arguments":{"mode":"auto",'
                  b'"inner":{"id":"d0","size":1,"flags":["on","off"],"weight":0.25},'
                  b'"items":[{"id":"d1","mode":"on","size":2}],"tags":["a","b"],'
                  b'"counts":[1,65535]},"id":[1,{"x":null}]}',
        "nested-bad": b"\x02" + b'{"execute":"fuzz-nested","arguments":{"mode":"read-only",'
                      b'"items":[{"id":"d1","size":-2}]}}'
                      b'{"execute":"fuzz-nested","arguments":{"mode":"read-only",'
                      b'"items":[{"id":"ro","size":0}]}}',
        "any-fail": b"\x02" + b'{"execute":"fuzz-any","arguments":{"value":[1,"2",{"3":false}],'
                    b'"also":null}}{"execute":"fuzz-fail","arguments":{"class":"DeviceNotFound",'
                    b'"why":"gone"}}',
        "oob": b"\x06" + b'{"exec-oob":"fuzz-oob","arguments":{"n":3},"id":9}'
               b'{"exec-oob":"query-version"}{"execute":"fuzz-quiet","arguments":{"n":-1}}'
               b'{"execute":"fuzz-quiet"}{"execute":"fuzz-unstable"}',
        "schema": b"\x02" + b'{"execute":"query-qmp-schema"}{"execute":"quit"}',
        "envelope": b"\x02" + b'[]{"arguments":{}}{"execute":1}{"execute":"x","arguments":[]}'
                    b'{"execute":"quit","exec-oob":"quit"}{"execute":"quit","bogus":1}'
                    b'{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}',
        "stream": b"\xfa" + b'{"execute":"query-version"} 42 "str\\"ing" true [1,[2,[3]]]'
                  b"\n{'execute':'quit'}{\"a\":\"\xc3\x28\"}{\"a\":\"\xed\xa0\x80\"}"
                  b'}]{"execute":"query-version",}',
        "deep": b"\x02" + b"[" * 1030 + b"]" * 1030 + b'{"execute":"quit"}',
    }


# ---- fuzz-virtqueue: 16-byte header, then guest RAM from address 0 ----
DESC, AVAIL, USED, BUF = 0x0, 0x200, 0x300, 0x500
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


class Ram:
    def __init__(self):
        self.b = bytearray()

    def put(self, addr, data):
        if len(self.b) < addr + len(data):
            self.b.extend(bytes(addr + len(data) - len(self.b)))
        self.b[addr:addr + len(data)] = data

    def desc(self, table, i, addr, length, flags=0, nxt=0):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def avail(self, heads, idx=None):
        self.put(AVAIL, struct.pack("<HH", 0, len(heads) if idx is None else idx))
        for i, h in enumerate(heads):
            self.put(AVAIL + 4 + 2 * i, struct.pack("<H", h))


def vq_seed(log2n, features, mode, chains, ram, rings=(DESC, AVAIL, USED)):
    return struct.pack("<BBBBIII", log2n, features, mode, chains, *rings) + bytes(ram.b)



def blk_req(ram, first, buf, rtype, sector, data_len, data_write, extra=b""):
    """One virtio-blk request as three descriptors from index first."""
    ram.put(buf, struct.pack("<IIQ", rtype, 0, sector) + extra)
    ram.desc(DESC, first, buf, 16 + len(extra), F_NEXT, first + 1)
    if data_len:
        ram.desc(DESC, first + 1, buf + 0x20, data_len,
                 F_NEXT | (F_WRITE if data_write else 0), first + 2)
        ram.desc(DESC, first + 2, buf + 0x20 + data_len, 1, F_WRITE)
    else:
        ram.desc(DESC, first + 1, buf + 0x20, 1, F_WRITE)
    return first


@target
def virtqueue():
    seeds = {}
    r = Ram()
    r.desc(DESC, 0, BUF, 64, F_NEXT, 1)
    r.desc(DESC, 1, BUF + 64, 64, F_WRITE)
    r.desc(DESC, 2, BUF + 128, 100, F_WRITE)
    r.avail([0, 2])
    seeds["plain"] = vq_seed(4, 0, 0, 8, r)
    seeds["plain-unpop-eventidx"] = vq_seed(4, 2, 6, 8, r)
    r = Ram()
    r.desc(DESC, 0, 0x480, 48, F_INDIRECT)
    for i in range(3):
        r.desc(0x480, i, BUF + 0x100 * i, 0x80, (F_NEXT if i < 2 else 0) | (F_WRITE if i else 0),
               i + 1)
    r.avail([0])
    seeds["indirect"] = vq_seed(3, 1, 0, 4, r)
    r = Ram()
    r.desc(DESC, 0, BUF, 16, F_NEXT, 1)
    r.desc(DESC, 1, BUF, 16, F_NEXT, 0)
    r.desc(DESC, 2, 0x480, 16, F_INDIRECT)
    r.desc(0x480, 0, 0x480, 16, F_INDIRECT)
    r.avail([0, 2])
    seeds["loop-nested"] = vq_seed(2, 1, 0, 4, r)
    r = Ram()
    r.desc(DESC, 0, 0xfff0, 0x20, F_WRITE)    # straddles the end of low RAM
    r.avail([0])
    seeds["straddle"] = vq_seed(1, 0, 0, 1, r)
    # rings in the region at 4 GiB (bit 31 of a ring address picks it)
    r = Ram()
    r.desc(DESC, 0, (1 << 32) + BUF, 32, F_NEXT, 1)
    r.desc(DESC, 1, BUF, 32, F_WRITE)
    r.avail([0])
    seeds["high"] = vq_seed(1, 0, 0, 1, r, (0x80000000 | DESC, 0x80000000 | AVAIL,
                                            0x80000000 | USED))
    r = Ram()
    heads = []
    reqs = [(0, 1, 512, True), (1, 2, 512, False), (4, 0, 0, False), (8, 0, 20, True),
            (11, 0, 0, False), (13, 0, 0, False), (99, 0, 0, False), (0, 2047, 1024, True)]
    for n, (rtype, sector, length, write) in enumerate(reqs):
        extra = b""
        if rtype in (11, 13):
            extra = struct.pack("<QII", 4, 8, 1 if rtype == 13 else 0)
        heads.append(blk_req(r, 3 * n, BUF + 0x240 * n, rtype, sector, length, write, extra))
    r.avail(heads)
    seeds["blk"] = vq_seed(5, 1, 1, 16, r)
    seeds["blk-eventidx"] = vq_seed(5, 3, 5, 16, r)
    return seeds


# ---- fuzz-fw-cfg: a program of port accesses (see the harness) ----
def fw_select(key):
    return struct.pack("<BH", 0, key)


def fw_read(n, width_bits=0):
    return struct.pack("<BB", 1 | width_bits << 4, n)


def fw_dma(desc_addr, control, length, addr, wide=False):
    return struct.pack("<BH", 2 | (0x10 if wide else 0), desc_addr // 4) + \
        struct.pack(">IIQ", control, length, addr)


def fw_out(off, value, width_bits):
    return struct.pack("<BBQ", 3 | width_bits << 4, off, value)


def fw_in(off, width_bits):
    return struct.pack("<BB", 4 | width_bits << 4, off)


def fw_poke(addr, data):
    return struct.pack("<BHB", 5, addr, len(data)) + data


@target
def fw_cfg():
    READ, SKIP, SELECT, WRITE = 2, 4, 8, 0x10
    ro, rw = 0x20, 0x21     # the harness adds etc/fuzz-ro, then etc/fuzz-rw
    return {
        "signature": fw_select(0) + fw_read(4) + fw_select(1) + fw_read(4, 2),
        "directory": fw_select(0x19) + fw_read(200) + fw_select(0x15) + fw_read(40),
        "dma-read": fw_dma(0x100, 0x19 << 16 | SELECT | READ, 64, 0x1000) +
                    fw_dma(0x100, READ, 64, 0x1040, wide=True),
        "dma-skip-write": fw_dma(0x100, rw << 16 | SELECT | SKIP, 8, 0) +
                          fw_poke(0x2000, b"written!") +
                          fw_dma(0x100, WRITE, 8, 0x2000) +
                          fw_dma(0x100, rw << 16 | SELECT | READ, 64, 0x3000),
        "dma-write-ro": fw_poke(0x2000, b"x" * 32) +
                        fw_dma(0x100, ro << 16 | SELECT | WRITE, 32, 0x2000) +
                        fw_dma(0x200, ro << 16 | SELECT | READ, 400, 0x3000),
        "dma-bad": fw_dma(0xfffc, 0x19 << 16 | SELECT | READ, 64, 0xfff0) +
                   fw_dma(0x100, READ, 0xffffffff, 0xffffffffffffff00) +
                   fw_dma(0x10000, READ, 4, 0),
        "ports": fw_out(4, 0x1122334455667788, 3) + fw_in(4, 3) + fw_in(6, 1) + fw_in(9, 0) +
                 fw_out(1, 5, 0) + fw_out(0, 0x8000, 1) + fw_read(2, 1) + b"\x06" +
                 fw_out(8, 0x100, 2),
    }


# ---- fuzz-boot-linux: initrd size / 64 and command line length, then the kernel ----
def bzimage(version=0x020f, xloadflags=1, loadflags=1, setup_sects=1, payload=2048,
            pref=0x1000000, init_size=0x100000, initrd_max=0x37ffffff):
    k = bytearray((setup_sects + 1) * 512 + payload)
    k[0x1f1] = setup_sects
    struct.pack_into("<H", k, 0x1fe, 0xaa55)
    k[0x200:0x202] = b"\xeb\x6a"
    struct.pack_into("<IH", k, 0x202, 0x53726448, version)
    k[0x211] = loadflags
    struct.pack_into("<I", k, 0x22c, initrd_max)
    struct.pack_into("<HI", k, 0x236, xloadflags, 255)
    struct.pack_into("<QI", k, 0x258, pref, init_size)
    for i in range((setup_sects + 1) * 512, len(k)):
        k[i] = i * 13 & 0xff
    return bytes(k)


def pvh_elf(is64=True, entry=0x1000000, paddr=0x1000000, filesz=256, memsz=4096,
            note_name=b"Xen\0", descsz=4):
    """An ELF vmlinux with a PT_NOTE (the PVH entry) and one PT_LOAD."""
    ehsize, phsize = (64, 56) if is64 else (52, 32)
    phoff = ehsize
    note_off = phoff + 2 * phsize
    desc = struct.pack("<Q" if descsz == 8 else "<I", entry)
    note = struct.pack("<III", len(note_name), descsz, 18) + note_name + desc
    load_off = note_off + len(note)
    e = bytearray(b"\x7fELF" + bytes([2 if is64 else 1, 1, 1]) + bytes(9))
    if is64:
        e += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, phoff, 0, 0, ehsize, phsize, 2,
                         0, 0, 0)
        ph = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
        ph += struct.pack("<IIQQQQQQ", 1, 7, load_off, paddr, paddr, filesz, memsz, 0x1000)
    else:
        e += struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, phoff, 0, 0, ehsize, phsize, 2,
                         0, 0, 0)
        ph = struct.pack("<IIIIIIII", 4, note_off, 0, 0, len(note), len(note), 4, 4)
        ph += struct.pack("<IIIIIIII", 1, load_off, paddr, paddr, filesz, memsz, 7, 0x1000)
    return bytes(e + ph + note + bytes(i & 0xff for i in range(filesz)))


def boot(initrd_units, cmdline_len, kernel):
    return struct.pack("<HH", initrd_units, cmdline_len) + kernel


@target
def boot_linux():
    return {
        "bzimage": boot(0, 20, bzimage()),
        "bzimage-initrd": boot(64, 100, bzimage(initrd_max=0x1ffffff)),
        "bzimage-old-protocol": boot(0, 0, bzimage(version=0x020b)),
        "bzimage-big-init": boot(16, 3000, bzimage(init_size=0x7fffffff, pref=0)),
        "bzimage-setup-sects0": boot(1, 1, bzimage(setup_sects=0, payload=512)),
        "pvh64": boot(0, 40, pvh_elf()),
        "pvh64-initrd-desc8": boot(1000, 40, pvh_elf(descsz=8)),
        "pvh32": boot(2, 5, pvh_elf(is64=False)),
        "pvh-bad-segment": boot(0, 0, pvh_elf(paddr=0x1000, memsz=0x100)),
        "not-a-kernel": boot(0, 0, b"MZ" + bytes(1000)),
    }


# ---- fuzz-qtest: what a qtest program writes ----
@target
def qtest():
    return {
        "ports": "outw 0x510 0x0\ninb 0x511\ninb 0x511\ninw 0x511\ninl 0x514\n"
                 "outl 0x518 0x1000\noutb 0x70 0x0a\ninb 0xffff\n",
        "memory": "writeb 0x1000 0x12\nwritew 0x1002 0x3456\nwritel 0x1004 0x789abcde\n"
                  "writeq 0x1008 0xfedcba9876543210\nreadb 0x1000\nreadw 0x1002\n"
                  "readl 0x1004\nreadq 0x1008\nreadq 0xfffff\n",
        "bulk": "write 0x2000 8 0x0011223344556677\nread 0x2000 8\nwrite 0xffffc 8 0xaabb\n"
                "read 0xffffc 8\nmemset 0x3000 16 0x5a\nread 0x3000 16\nread 0x2000 0\n",
        "base64": "b64write 0x4000 6 aGVsbG8h\nb64read 0x4000 6\nb64write 0x4000 4 ab=c\n"
                  "b64read 0xfffff 3\nb64write 0x4000 2 *\n",
        "clock": "clock_step\nclock_step 1000\nclock_set 500000\nclock_set -1\n"
                 "clock_step -5\nclock_step 10x\n",
        "irq": "irq_intercept_in ioapic\nirq_intercept_out /machine/i440fx\n"
               "irq_intercept_in\nendianness\n",
        "errors": "\n   \nfoo bar\noutb\nreadq\nwrite 0x0 4\nwrite 0x0 4 1234\n"
                  "write 0x0 2 0xzz\nread 0x0 0x10000001\nmemset 0 4\nread 1 2 3 4 5 6 7 8 9\r\n",
        # replies past 1 MiB hold the following lines until the output drains
        "held": "read 0x0 0x90000\nreadb 0x0\nread 0x10 4\ninb 0x511\nendianness\n",
        "dma": "writel 0x100 0x0a000000\nwritel 0x104 0x04000000\nwriteq 0x108 0x0020000000000000\n"
               "outl 0x514 0x0\noutl 0x518 0x00010000\nread 0x2000 4\nreadl 0x100\n",
    }


# ---- fuzz-keyval: table and implied key (bit 0: typed table; bits 1-2: none, id,
# driver), then the option string ----
@target
def keyval():
    return {
        "device": b"\x05virtio-blk-pci,id=d0,drive=disk0,,x,serial=a,,b",
        "chardev": b"\x03socket,server,nowait,node=n1,de=yes,nodelay",
        "typed": b"\x01queues=0x10,size=1G,server=off,wait=true,queues=7,size=512k",
        "typed-bad": b"\x01queues=-1,size=12Q,server=maybe",
        "any-key": b"\x00a=1,b==2,,c=,=empty,a=3,,,,",
        "implied-only": b"\x02just-an-id",
        "flags": b"\x01noserver,wait,nowait,node,id=x=y",
        "odd": b"\x00,,,=,k=v,",
    }


# ---- fuzz-hmp-readline: what a client types ----
@target
def hmp_readline():
    esc = b"\x1b"
    return {
        "typing": b"info status\rinfo qtree\n",
        "editing": b"inf status\x02\x02\x02\x02\x02\x02o\x05\x7f\x7fus\x01\x06\x04x\x0b\r",
        "history": b"stop\rcont\r\x10\x10\x0e\x10\x15quit\x10\r",
        "escapes": b"abc" + esc + b"[D" + esc + b"[D" + esc + b"[3~" + esc + b"[H" + esc +
                   b"[F" + esc + b"OA" + esc + b"[B" + esc + b"[1~" + esc + b"[8~\r",
        "complete": b"in\tfo v\t\tq\x15sys\t\r",
        "long": b"x" * 1100 + b"\r",
        "controls": bytes(range(0, 32)) + b"\r",
    }


# ---- fuzz-vhost-user: [control byte, header, payload]... ----
def vu(req, payload=b"", fds=0, event=False, flags=1, raw_version=False):
    ctl = fds | (0x10 if event else 0) | (0x20 if raw_version else 0)
    return struct.pack("<BIII", ctl, req, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def vstate(index, num):
    return struct.pack("<II", index, num)


def region(gpa, size, uva, off):
    return struct.pack("<QQQQ", gpa, size, uva, off)


@target
def vhost_user():
    REPLY_ACK, STATUS, INFLIGHT, CONFIG, MQ = 1 << 3, 1 << 16, 1 << 12, 1 << 9, 1 << 0
    NEED_REPLY = 1 | 1 << 3
    UVA = 0x7f0000000000
    hello = (vu(1) + vu(15) + vu(16, u64(REPLY_ACK | STATUS | INFLIGHT | CONFIG | MQ)) +
             vu(2, u64(1 << 32 | 1 << 30)) + vu(3) + vu(17) + vu(36))
    mem = vu(5, struct.pack("<II", 1, 0) + region(0, 1 << 20, UVA, 0), fds=1)
    ring = (vu(8, vstate(0, 16)) +
            vu(9, struct.pack("<IIQQQQ", 0, 0, UVA, UVA + 0x2000, UVA + 0x1000, 0)) +
            vu(10, vstate(0, 0)) + vu(13, u64(0), fds=1, event=True) +
            vu(12, u64(0 | 1 << 8)) + vu(18, vstate(0, 1)))
    return {
        "handshake": hello + vu(39, u64(15)) + vu(40),
        "mem-ring": hello + mem + ring + vu(11, vstate(0, 0)),
        "mem-regions": hello + vu(37, u64(0) + region(0, 1 << 20, UVA, 0), fds=1) +
                       vu(37, u64(0) + region(1 << 20, 1 << 20, UVA + (1 << 20), 0), fds=1) +
                       vu(38, u64(0) + region(0, 1 << 20, UVA, 0)) + ring,
        "inflight": hello + mem +
                    vu(31, struct.pack("<QQHHI", 0, 0, 2, 16, 0)) +
                    vu(32, struct.pack("<QQHHI", 4096, 0, 2, 16, 0), fds=1) + ring,
        "config": hello + vu(24, struct.pack("<III", 0, 16, 0) + bytes(16)) +
                  vu(25, struct.pack("<III", 4, 4, 0) + b"abcd", flags=NEED_REPLY) +
                  vu(24, struct.pack("<III", 12, 8, 0) + bytes(8)),
        "log": hello + mem + vu(6, struct.pack("<QQ", 4096, 0), fds=1) + vu(7, fds=1, event=True),
        "bad": vu(99) + vu(1, raw_version=True, flags=2) + vu(8, vstate(70, 16)) +
               vu(5, struct.pack("<II", 9, 0), fds=9) + vu(2, b"abc"),
        "acked": hello + vu(8, vstate(1, 3), flags=NEED_REPLY) + vu(14, u64(1), fds=1,
                                                                    event=True) +
                 vu(34, flags=NEED_REPLY) + vu(4),
    }

# ---- fuzz-nbd: mode byte (piece size, lazy draining), then a client's bytes ----
@target
def nbd():
    OPTS = 0x49484156454F5054

    def opt(o, data=b""):
        return struct.pack(">QII", OPTS, o, len(data)) + data

    def name(n):
        return struct.pack(">I", len(n)) + n

    def meta(export, queries):
        return name(export) + struct.pack(">I", len(queries)) + b"".join(name(q) for q in queries)

    def go(n, infos=(1, 2, 3)):
        return opt(7, name(n) + struct.pack(">H", len(infos)) +
                   b"".join(struct.pack(">H", i) for i in infos))

    def req(cmd, off=0, ln=0, flags=0, cookie=1, payload=b""):
        return struct.pack(">IHHQQI", 0x25609513, flags, cmd, cookie, off, ln) + payload

    hello = struct.pack(">I", 3)
    structured = opt(8)
    ctx = opt(10, meta(b"w", [b"base:allocation", b"qemu:allocation-depth",
                              b"qemu:dirty-bitmap:b0"]))
    return {
        "list": b"\x0c" + hello + opt(3) + opt(9, meta(b"w", [])) + opt(8) +
                opt(9, meta(b"w", [b"qemu:"])) + opt(6, name(b"r") + b"\0\0") + opt(2),
        "errors": b"\x04" + hello + opt(99, b"x") + opt(5) + opt(7, b"\0\0\0\xff") +
                  go(b"nope") + opt(10, meta(b"w", [b"base:allocation"])) + opt(8, b"z"),
        "read-structured": b"\x0e" + hello + structured + ctx + go(b"w") +
                           req(0, 0, 4 << 20 - 1) + req(0, 65536, 4096, flags=4) +
                           req(7, 0, 4 << 20) + req(7, 4096, 1 << 20, flags=8) + req(2),
        "write": b"\x1a" + hello + structured + go(b"w") +
                 req(1, 1000, 600, flags=1, payload=b"\xee" * 600) + req(6, 1 << 20, 1 << 16) +
                 req(6, 123, 77, flags=16) + req(4, 2 << 20, 4096) + req(3) + req(5, 0, 8192) +
                 req(0, 900, 800),
        "export-name": b"\x08" + struct.pack(">I", 1) + opt(1, b"r") +
                       req(0, 4000, 300) + req(1, 0, 512, payload=bytes(512)) + req(9) +
                       req(0, 1 << 20, 1),
        "simple-ro": b"\x05" + hello + go(b"r", ()) + req(0, 0, 8192) + req(7, 0, 512) +
                     req(0, 1 << 40, 512) + b"\x25\x60\x95\x13junk",
    }


# ---- fuzz-virtio-net-ctrl: features, queue size, then control commands ----
def ctrl(cls, cmd, data=b"", flags=0, corrupt=None):
    body = bytes([cls, cmd]) + data
    rec = bytes([flags]) + struct.pack("<H", len(body)) + body
    return rec + (struct.pack("<II", *corrupt) if corrupt else b"")


def mac_table(uni, multi):
    return (struct.pack("<I", len(uni)) + b"".join(uni) +
            struct.pack("<I", len(multi)) + b"".join(multi))


@target
def virtio_net_ctrl():
    all_f = b"\xfe\x06"      # every feature, VERSION_1, 64 entries
    mac = bytes.fromhex("525400abcdef")
    return {
        "rx-modes": all_f + b"".join(ctrl(0, c, b"\x01") for c in range(7)) + ctrl(0, 0, b""),
        "mac-table": all_f + ctrl(1, 0, mac_table([mac] * 3, [bytes.fromhex("01005e000001")])) +
                     ctrl(1, 0, mac_table([mac] * 70, [])) + ctrl(1, 0, b"\x05\x00\x00\x00"),
        "mac-addr": all_f + ctrl(1, 1, mac) + ctrl(1, 1, mac[:5]) + ctrl(1, 2, mac, flags=1),
        "vlan": all_f + ctrl(2, 0, struct.pack("<H", 100)) + ctrl(2, 1, struct.pack("<H", 4095)) +
                ctrl(2, 0, struct.pack("<H", 0xffff), flags=1) + ctrl(2, 2, b"\x01\x00"),
        "announce-mq": all_f + ctrl(3, 0) + ctrl(3, 1) + ctrl(4, 0, struct.pack("<H", 1)) +
                       ctrl(4, 0, struct.pack("<H", 9)) + ctrl(5, 0, struct.pack("<Q", 0x86)),
        "indirect-split": all_f + ctrl(1, 0, mac_table([mac], [mac]), flags=3) +
                          ctrl(0, 1, b"\x00", flags=6) + ctrl(0, 2, b"\x01", flags=0x30),
        "legacy-small": b"\x01\x01" + ctrl(0, 0, b"\x00") + ctrl(2, 0, b"\x05\x00", flags=2),
        "corrupt": all_f + ctrl(0, 0, b"\x01", corrupt=(0x7000, 0x10000), flags=8) +
                   ctrl(0, 0, b"\x01"),
    }


# ---- fuzz-pci-config: 8-byte operations on config space and the BARs ----
def pop(kind, size_log2, off, val=0):
    return struct.pack("<BBHI", kind, size_log2, off, val & 0xffffffff)


@target
def pci_config():
    bar_sizing = b"".join(pop(1, 2, 0x10 + 4 * i, 0xffffffff) + pop(0, 2, 0x10 + 4 * i)
                          for i in range(6))
    msix_on = pop(8, 1, (4 << 8) | 2, 0x8000)       # capability walk to MSI-X, enable
    return {
        "ids-command": pop(0, 2, 0) + pop(1, 1, 4, 0) + pop(1, 1, 4, 7) + pop(0, 1, 6) +
                       pop(1, 2, 0, 0xdeadbeef) + pop(0, 0, 0x3d) + pop(1, 0, 0x3c, 11),
        "bar-sizing": bar_sizing + pop(9, 0, 0) + pop(1, 2, 0x20, 0xfe200000) + pop(2, 2, 0),
        "caps": b"".join(pop(8, 0, n << 8, 0) + pop(8, 2, (n << 8) | 4, 0xffffffff)
                         for n in range(6)) + pop(0, 0, 0x34),
        "common-cfg": pop(3, 2, 0, 0) + pop(2, 2, 4) + pop(3, 2, 0, 1) + pop(2, 2, 4) +
                      pop(3, 1, 22, 2) + pop(2, 1, 24) + pop(3, 1, 24, 16) +
                      pop(3, 2, 32, 0x1000) + pop(3, 1, 28, 1) + pop(3, 0, 20, 0xf) +
                      pop(3, 1, 0x3000 + 8, 2) + pop(2, 0, 0x1000) + pop(2, 2, 0x2000) +
                      pop(3, 3, 0x2000, 0x11223344) + pop(3, 1, 16, 0) + pop(3, 1, 26, 1),
        "msix": msix_on + pop(5, 2, 0, 0xfee00000) + pop(5, 2, 4, 0) + pop(5, 2, 8, 0x41) +
                pop(5, 2, 12, 0) + pop(4, 2, 12) + pop(4, 3, 0x800) + pop(5, 2, 0x10 * 3 + 12, 1) +
                pop(3, 1, 16, 0) + pop(3, 0, 20, 0xf) + pop(5, 2, 0xfff, 0) + pop(8, 1, (4 << 8) | 2, 0x4000),
        "legacy-io": pop(7, 2, 4, 0) + pop(6, 2, 0) + pop(7, 1, 14, 0) + pop(7, 2, 8, 0x10) +
                     pop(7, 0, 18, 7) + pop(6, 0, 19) + pop(7, 1, 16, 0) + pop(6, 2, 20) +
                     pop(7, 0, 18, 0),
    }


# ---- fuzz-virtio-{net,serial,rng,balloon}: fuzz-virtio-dev.c's operations ----
def vd_chain(q, descs, indirect=False, nokick=False):
    """descs: (writable, length, data) each; readable ones carry their data."""
    out = bytes([0, q, (len(descs) - 1) | (8 if indirect else 0) | (16 if nokick else 0)])
    for writable, length, data in descs:
        out += bytes([1 if writable else 0]) + struct.pack("<H", length)
        if not writable:
            out += data[:length].ljust(length, b"\0")
    return out


def vd_out(q, data, **kw):
    return vd_chain(q, [(False, len(data), data)], **kw)


def vd_in(q, length, **kw):
    return vd_chain(q, [(True, length, b"")], **kw)


def vd_kick(q):
    return bytes([1, q])


def vd_cfg(off, size_log2, val=None):
    return bytes([0x0a if val is not None else 2, off, size_log2]) + struct.pack("<I", val or 0)


def vd_raw(off, data):
    return b"\x04" + struct.pack("<H", off) + data[:8].ljust(8, b"\0")


ETH_BCAST = b"\xff" * 6 + b"\x52\x54\x00\x12\x34\x56" + b"\x08\x06"
ETH_UNI = b"\x52\x54\x00\x12\x34\x56" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
ETH_MULTI = b"\x01\x00\x5e\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x01" + b"\x86\xdd"
ETH_VLAN = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x81\x00\x00\x05\x08\x00"


def net_frame(head, n):
    return head + bytes(range(256)) * (n // 256) + bytes(range(n % 256))


def net_rx(frame):
    return b"\x05" + struct.pack("<H", len(frame)) + frame


@target
def virtio_net():
    # features byte: bit 0 VERSION_1 off, 1 INDIRECT, 2 EVENT_IDX, 3 MRG_RXBUF,
    # 4 CTRL_VQ, 5 CTRL_RX, 6 GUEST_CSUM, 7 STATUS; queues rx0 0, tx0 1, ctrl 2
    hdr12, hdr10 = bytes(12), bytes(10)
    csum_hdr = b"\x01\x00" + struct.pack("<HHHH", 0, 0, 14 + 20, 16) + b"\x00\x00"
    big = net_frame(ETH_UNI, 1500)
    return {
        "tx": b"\xfe\x03" + vd_out(1, hdr12 + net_frame(ETH_BCAST, 46)) +
              vd_out(1, csum_hdr + net_frame(ETH_UNI, 100)) + b"\x06",
        "tx-split-indirect": b"\xff\x03" + vd_chain(1, [(False, 10, hdr10), (False, 14, ETH_UNI),
                                                        (False, 300, net_frame(b"", 300))],
                                                    indirect=True) +
                             vd_chain(1, [(False, 4, hdr10), (False, 200, net_frame(b"", 200))]) +
                             b"\x06",
        "rx-mergeable": b"\xfe\x03" + b"".join(vd_in(0, 256, nokick=True) for _ in range(6)) +
                        vd_kick(0) + net_rx(big) + net_rx(net_frame(ETH_BCAST, 46)) + b"\x07",
        "rx-plain": b"\xf6\x04" + vd_in(0, 1526) + vd_chain(0, [(True, 10, b""), (True, 1516, b"")]) +
                    net_rx(big) + net_rx(net_frame(ETH_UNI, 9000)) + net_rx(b"") +
                    vd_in(0, 20) + net_rx(big),
        "rx-filter": b"\xfe\x03" + b"".join(vd_in(0, 2048, nokick=True) for _ in range(4)) +
                     vd_chain(2, [(False, 3, b"\x00\x00\x00"), (True, 1, b"")]) +     # promisc off
                     vd_chain(2, [(False, 3, b"\x00\x01\x00"), (True, 1, b"")]) +     # allmulti off
                     net_rx(net_frame(ETH_MULTI, 60)) + net_rx(net_frame(ETH_UNI, 60)) +
                     net_rx(net_frame(ETH_VLAN, 60)) + net_rx(net_frame(ETH_BCAST, 60)),
        "config-reset": b"\xfe\x02" + vd_cfg(0, 2) + vd_cfg(4, 1) + vd_cfg(6, 1) + vd_cfg(8, 1) +
                        vd_cfg(0, 0, 0x52) + vd_in(0, 64) + b"\x03" + net_rx(net_frame(ETH_UNI, 40)) +
                        vd_in(0, 64) + net_rx(net_frame(ETH_UNI, 40)),
        "corrupt": b"\xfe\x02" + vd_in(0, 128, nokick=True) + vd_raw(0x0, struct.pack("<QI", 0x3fff0, 0xffff)) +
                   vd_kick(0) + net_rx(big) + vd_out(1, hdr12 + ETH_UNI) +
                   vd_raw(0x2000 + 0x1000 + 2, b"\x40\x00") + vd_kick(1) + b"\x06",
        "event-idx": b"\xfe\x05" + vd_out(1, hdr12 + ETH_UNI) + vd_out(1, hdr12 + ETH_UNI, nokick=True) +
                     vd_kick(1) + vd_in(0, 1600) + net_rx(ETH_UNI) + b"\x07",
    }


def ser_ctrl(port, event, value):
    return vd_out(3, struct.pack("<IHH", port, event, value))


def ser_input(port, data):
    return b"\x05" + bytes([port]) + struct.pack("<H", len(data)) + data


@target
def virtio_serial():
    # features byte: bit 0 VERSION_1 off, 1 INDIRECT, 2 EVENT_IDX, 3 MULTIPORT,
    # 4 CONSOLE_SIZE, 5 EMERG_WRITE, 6 NOTIFY_ON_EMPTY, 7 ANY_LAYOUT. Queues: port 0 rx 0 / tx 1, control rx 2 /
    # tx 3, port 1 rx 4 / tx 5, port 2 rx 6 / tx 7, port 3 rx 8 / tx 9.
    # Chardevs c0 (console, port 0), c1 (port 1, named), c2 (port 3).
    ctrl_bufs = b"".join(vd_in(2, 64, nokick=True) for _ in range(8)) + vd_kick(2)
    return {
        "bringup": b"\xce\x04" + ctrl_bufs + ser_ctrl(0, 0, 1) + ser_ctrl(0, 3, 1) +
                   ser_ctrl(1, 3, 1) + ser_ctrl(3, 3, 1) + ser_ctrl(1, 6, 1) +
                   vd_in(4, 32) + vd_in(4, 32) + ser_input(1, b"hello, guest") +
                   vd_out(5, b"hello, host") + ser_ctrl(1, 6, 0) + ser_input(1, b"x" * 100) +
                   ser_ctrl(1, 6, 1) + vd_in(4, 200),
        "console-only": b"\x06\x03" + vd_in(0, 16) + ser_input(0, b"login: ") + vd_out(1, b"root\n") +
                        ser_input(0, b"y" * 40) + vd_in(0, 64) + vd_cfg(0, 1) + vd_cfg(4, 2) +
                        vd_cfg(8, 2, 0x41),
        "bad-control": b"\x0e\x04" + ctrl_bufs + ser_ctrl(0, 0, 1) + ser_ctrl(7, 6, 1) +
                       ser_ctrl(0xffffffff, 3, 1) + ser_ctrl(1, 99, 5) + vd_out(3, b"\x01\x00") +
                       vd_in(3, 8) + vd_out(2, b"12345678") + ser_ctrl(0, 0, 0) + ser_ctrl(0, 0, 1),
        "port-data": b"\x8a\x05" + ctrl_bufs + ser_ctrl(0, 0, 1) + ser_ctrl(3, 3, 1) + ser_ctrl(3, 6, 1) +
                     vd_chain(9, [(False, 5, b"split"), (False, 3, b"abc")], indirect=True) +
                     vd_chain(8, [(True, 4, b""), (True, 4, b"")]) + ser_input(2, b"0123456789") +
                     vd_in(8, 1) + vd_in(8, 0) + b"\x03" + ser_input(2, b"after reset"),
        "emerg-write": b"\x26\x03" + vd_cfg(8, 2, 0x21) + vd_cfg(8, 0, 0x0a) + vd_cfg(0, 1) +
                       vd_cfg(2, 1) + vd_cfg(4, 2),
    }


@target
def virtio_rng():
    # features byte: bit 0 VERSION_1 off, 1 INDIRECT, 2 EVENT_IDX, 3
    # NOTIFY_ON_EMPTY, 4 ANY_LAYOUT, 5 RING_RESET; queue 0;
    # the device gives 2048 bytes per 100 ms of guest time (op 5 runs the clock)
    return {
        "basic": b"\x06\x03" + vd_in(0, 64) + vd_in(0, 1) + b"\x07",
        "quota": b"\x06\x04" + b"".join(vd_in(0, 1024) for _ in range(4)) + b"\x05" + b"\x05" +
                 vd_in(0, 4096) + b"\x05",
        "indirect-split": b"\x3e\x03" + vd_chain(0, [(True, 10, b""), (True, 20, b""), (True, 30, b"")],
                                                 indirect=True) + vd_chain(0, [(True, 8, b"")] * 8),
        "readable": b"\x06\x02" + vd_out(0, b"abcd") + vd_in(0, 0) +
                    vd_chain(0, [(True, 8, b""), (False, 8, b"12345678")]),
        "legacy-eventidx": b"\x05\x02" + vd_in(0, 16) + vd_in(0, 16, nokick=True) + vd_kick(0) +
                           b"\x03" + vd_in(0, 16),
    }


def pfns(*ns):
    return b"".join(struct.pack("<I", n) for n in ns)


def stats(*pairs):
    return b"".join(struct.pack("<HQ", t, v) for t, v in pairs)


@target
def virtio_balloon():
    # features byte: bit 0 VERSION_1 off, 1 INDIRECT, 2 EVENT_IDX, 3
    # MUST_TELL_HOST, 4 STATS_VQ, 5 DEFLATE_ON_OOM, 6 PAGE_POISON. Queues:
    # inflate 0, deflate 1, stats 2. Op 6: target (u32 pages taken) and the
    # stats polling interval; op 5 runs the clock to the next timer.
    return {
        "inflate-deflate": b"\x3e\x03" + b"\x06" + struct.pack("<I", 16) + b"\x01" + vd_cfg(0, 2) +
                           vd_out(0, pfns(*range(40, 56))) + vd_cfg(4, 2, 16) +
                           vd_out(1, pfns(40, 41, 42)) + vd_cfg(4, 2, 13) + vd_cfg(4, 2),
        "out-of-range": b"\x1e\x03" + vd_out(0, pfns(0xffffffff, 64, 63, 0, 0x40000)) +
                        vd_out(1, pfns(0xffffffff, 7)) + vd_out(0, b"\x01\x02\x03") + vd_in(0, 8),
        "stats": b"\x1e\x03" + b"\x06" + struct.pack("<I", 0) + b"\x01" +
                 vd_out(2, stats((0, 1), (1, 2), (2, 3), (4, 4096), (5, 1 << 20), (7, 9), (99, 1))) +
                 b"\x05" + vd_out(2, stats((3, 5)) + b"\x01") + b"\x05" + b"\x06" +
                 struct.pack("<I", 0) + b"\x00",
        "poison": b"\x5e\x03" + vd_cfg(12, 2, 0xaa55aa55) + vd_out(0, pfns(50, 51)) +
                  vd_out(1, pfns(50)) + b"\x03" + vd_out(1, pfns(51)),
        "indirect": b"\x1e\x04" + vd_chain(0, [(False, 8, pfns(60, 61)), (False, 8, pfns(62, 63))],
                                           indirect=True) +
                    vd_chain(1, [(False, 4, pfns(60))] * 3),
    }


# ---- fuzz-legacy-io: port I/O operations on the UART, RTC and i8042 ----
def lio(dev, reg, val=None, size=1):
    op = dev | (reg << 3) | ({1: 0, 2: 1, 4: 2}[size] << 6) | (4 if val is not None else 0)
    return bytes([op]) + (bytes([val]) if val is not None else b"")


def uart(reg, val=None, size=1):
    return lio(0, reg, val, size)


def rtc(index, val=None):
    return lio(1, 0, index) + lio(1, 1, val)


def kbc_cmd(c):
    return lio(2, 1, c)


def kbc_data(v=None):
    return lio(2, 0, v)


def lio_input(data):
    return bytes([3, len(data)]) + data


LIO_CLOCK = b"\x07"


@target
def legacy_io():
    return {
        "uart-init": uart(3, 0x80) + uart(0, 1) + uart(1, 0) + uart(3, 0x03) + uart(2, 0xc7) +
                     uart(1, 0x0f) + uart(4, 0x0b) + uart(0, 0x41) + uart(5) + uart(2) + uart(6) +
                     uart(0) + uart(7, 0x5a) + uart(7),
        "uart-rx": uart(2, 0x07) + uart(1, 0x01) + lio_input(b"hello\r\n") + uart(2) + uart(5) +
                   uart(0) + uart(0) + lio_input(bytes(range(64))) + uart(5) + uart(2, 0x03) + uart(5) +
                   uart(0) + uart(0),
        "uart-loop": uart(4, 0x10) + uart(2, 0x01) + b"".join(uart(0, c) for c in b"loop") +
                     uart(5) + uart(0) + uart(6) + uart(4, 0x1f) + uart(6) + uart(0, 0, 2) + uart(5, None, 4),
        "rtc-read": rtc(0x0a) + rtc(0x0b) + rtc(0x00) + rtc(0x02) + rtc(0x04) + rtc(0x07) + rtc(0x08) +
                    rtc(0x09) + rtc(0x32) + rtc(0x0d) + rtc(0x0e) + rtc(0x7f) + lio(1, 0, 0x80),
        "rtc-set": rtc(0x0b, 0x82) + rtc(0x00, 0x59) + rtc(0x02, 0x59) + rtc(0x04, 0x23) +
                   rtc(0x07, 0x31) + rtc(0x08, 0x12) + rtc(0x09, 0x99) + rtc(0x0b, 0x02) + LIO_CLOCK +
                   rtc(0x0b, 0x06) + rtc(0x04, 0x13) + rtc(0x00) + rtc(0x04),
        "rtc-interrupts": rtc(0x0a, 0x26) + rtc(0x0b, 0x72) + rtc(0x01, 0xff) + rtc(0x03, 0xff) +
                          rtc(0x05, 0xff) + LIO_CLOCK + rtc(0x0c) + LIO_CLOCK + rtc(0x0c) +
                          rtc(0x0a, 0x2f) + LIO_CLOCK + rtc(0x0c) + rtc(0x0a, 0x20) + rtc(0x0b, 0x00),
        "i8042": kbc_cmd(0xaa) + kbc_data() + kbc_cmd(0x20) + kbc_data() + kbc_cmd(0x60) +
                 kbc_data(0x47) + kbc_cmd(0xd0) + kbc_data() + kbc_cmd(0xd1) + kbc_data(0xdf) +
                 kbc_cmd(0xad) + kbc_cmd(0xae) + kbc_data(0xff) + kbc_data() + kbc_data(0xf4) +
                 lio(2, 1) + kbc_cmd(0xd2) + kbc_data(0x1c) + kbc_data(),
        "i8042-reset": kbc_cmd(0xd1) + kbc_data(0x00) + kbc_cmd(0xfe) + kbc_cmd(0xf0) + kbc_cmd(0x99) +
                       kbc_data(0xed) + kbc_data(0x07) + kbc_data(0xf2) + kbc_data() + kbc_data(),
    }


# ---- fuzz-hmp: HMP command lines ----
@target
def hmp():
    return {
        "help": "help\nhelp info\nhelp quit\nhelp nosuch\nhelp info status\n",
        "info": "info\ninfo version\ninfo name\ninfo status\ninfo cpus\ninfo kvm\ninfo qtree\n"
                "info chardev\ninfo fdsets\ninfo iothreads\ninfo block\ninfo block -n -v\n"
                "info blockstats\ninfo balloon\ninfo virtio\ninfo nosuch\n",
        "virtio": "info virtio-status /machine/peripheral/x\ninfo virtio-queue-status /a 0\n"
                  "info virtio-queue-element /a 99999999999999999999 -1\n"
                  "info virtio-vhost-queue-status \"\" x\n",
        "lifecycle": "stop\ncont\nc\nsystem_powerdown\nsystem_reset\nx_exit_preconfig\ninfo status\n",
        "args": "balloon\nballoon 0\nballoon -1\nballoon 1e99\nballoon 12abc\ngetfd\ngetfd fd0\n"
                "closefd fd0\ndevice_add\ndevice_add virtio-net-pci,id=n0\ndevice_add help\n"
                "device_add nosuch,foo=bar\ndevice_del n0\n",
        "quoting": "  info   \"status\"  \n\"info\" name\n\"\"\n\t\thelp\t\"info\n"
                   "info status a b c d e f g h i j k l m n o p q r s\nnosuch cmd\n",
    }


# ---- fuzz-ivshmem: server messages and guest accesses ----
def iv_msg(value, fd=0, split=False, nopump=False):
    """fd: 0 none, 1 eventfd, 2 memfd, 3 pipe, 4 two eventfds, 5 /dev/null, 6 empty memfd"""
    kind = fd | (16 if split else 0) | (32 if nopump else 0)
    if -128 <= value < 128:
        return bytes([kind]) + struct.pack("<b", value)
    return bytes([kind | 8]) + struct.pack("<q", value)


def iv_setup(vm_id=1, shm=(2, -1)):
    return iv_msg(0) + iv_msg(vm_id) + iv_msg(shm[1], shm[0])


def iv_reg_w(off, val, size_log2=2):
    return bytes([2, off, size_log2]) + struct.pack("<I", val)


def iv_reg_r(off, size_log2=2):
    return bytes([1, off, size_log2])


@target
def ivshmem():
    peers = b"\x00" + iv_msg(2, 1) + b"\x00" + iv_msg(2, 1) + b"\x00" + iv_msg(1, 1) + b"\x00" + iv_msg(1, 1)
    return {
        "peers": b"\x01" + iv_setup() + peers + iv_reg_r(8) + iv_reg_w(12, 2 << 16 | 1) +
                 iv_reg_w(12, 2 << 16) + iv_reg_w(0, 0xffffffff) + b"\x05\x02" + iv_reg_r(4) +
                 b"\x00" + iv_msg(2) + iv_reg_w(12, 2 << 16),
        "msix": b"\x03" + iv_setup(3) + b"\x00" + iv_msg(3, 1) + b"\x03" + struct.pack("<HI", 0, 0xfee00000) +
                b"\x03" + struct.pack("<HI", 8, 0x41) + b"\x03" + struct.pack("<HI", 12, 1) +
                b"\x05\x00" + b"\x03" + struct.pack("<HI", 12, 0) + b"\x03" + struct.pack("<HI", 0x800, 0),
        "bar-move": b"\x01" + iv_setup() + peers + b"\x04" + bytes([0x04, 1]) + struct.pack("<I", 0) +
                    iv_reg_w(12, 2 << 16) + b"\x04" + bytes([0x04, 1]) + struct.pack("<I", 6) +
                    iv_reg_w(12, 2 << 16 | 1) + b"\x07\x10\x00",
        "violations": b"\x01" + iv_setup() + b"\x00" + iv_msg(1) + b"\x00" + iv_msg(70000, 1),
        "bad-fds": b"\x02" + iv_setup() + b"\x00" + iv_msg(4, 3) + b"\x00" + iv_msg(5, 4) +
                   b"\x00" + iv_msg(6, 5) + b"\x00" + iv_msg(-1, 2),
        "split": b"\x00" + iv_setup() + b"\x00" + iv_msg(2, 1, split=True) + b"\x00" +
                 iv_msg(3, 1, split=True, nopump=True) + b"\x00" + iv_msg(3, 1) + b"\x06" +
                 iv_reg_w(12, 3 << 16),
        "bad-setup-version": b"\x00" + iv_msg(1) + iv_msg(1) + iv_msg(-1, 2),
        "bad-setup-shm": b"\x00" + iv_msg(0) + iv_msg(0) + iv_msg(-1, 6),
        "master-late": b"\x08" + iv_setup(5),
    }


# ---- fuzz-vhost-user-frontend: set-up byte, the back-end's script, operations ----
def vufe(setup, script, ops):
    return bytes([setup]) + struct.pack("<H", len(script)) + script + ops


def vufe_val(action, value):
    return bytes([action | 8]) + struct.pack("<Q", value)


def vufe_chan(req, flags, payload=b"", size=None):
    return b"\x05" + bytes([req, flags]) + struct.pack("<H", len(payload) if size is None else size) + payload


@target
def vhost_user_frontend():
    # Requests in order: GET_FEATURES, GET_PROTOCOL_FEATURES,
    # SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_OWNER, SET_BACKEND_REQ_FD,
    # GET_MAX_MEM_SLOTS, then at DRIVER_OK the memory, inflight and rings.
    # Set-up bits: 1 config, 2 inflight, 4 two units, 8 config_change handler.
    start = b"\x00"
    life = start + b"\x02\x3c" + b"\x03\x04\x08" + b"\x04\x80" + b"\x04\x01" + b"\x06" + b"\x01" + start + b"\x07\x00"
    return {
        "well-behaved": vufe(0x0b, b"", life + vufe_chan(2, 0x09) + b"\x06"),
        "no-protocol-features": vufe(0x00, vufe_val(0, 1 << 32), start + b"\x04\x00\x01" + start),
        "no-version-1": vufe(0x00, vufe_val(0, 1 << 30) + vufe_val(0, 0), start),
        "refusals": vufe(0x0b, b"\x00\x00\x00\x00" + vufe_val(0, 1), life),
        "refused-later": vufe(0x0b, b"\x00" * 9 + vufe_val(0, 1) + b"\x00" * 6 + vufe_val(0, 2), life),
        "bad-replies": vufe(0x01, b"\x01", start) + b"",
        "bad-flags": vufe(0x01, b"\x00\x02", start),
        "bad-size": vufe(0x03, b"\x00\x00\x00\x03\x10", start),
        "hang-up": vufe(0x03, b"\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 4 + b"\x04", life),
        "extra-fd": vufe(0x0b, b"\x05\x00\x00\x05\x05\x05\x05", life),
        "queues-short": vufe(0x04, b"\x00\x00\x00" + vufe_val(0, 1), start),
        "inflight-pipe": vufe(0x02, b"\x07" * 40, life),
        "spurious": vufe(0x03, b"\x00\x00\x00\x00\x06", life),
        "channel": vufe(0x0b, b"", start + vufe_chan(2, 0x01) + vufe_chan(1, 0x09, bytes(16)) +
                        vufe_chan(3, 0x09, bytes(24)) + vufe_chan(4, 0x09, bytes(8)) +
                        vufe_chan(5, 0x01, bytes(8)) + vufe_chan(7, 0x02) + vufe_chan(2, 0x05) +
                        vufe_chan(2, 0x09, b"", size=0xffff)),
        "ring-base": vufe(0x00, b"", start) + b"",
    }


def main():
    names = sys.argv[1:] or list(GENERATORS)
    manifest = read_manifest()
    for name in names:
        write(name if name.startswith("fuzz-") else "fuzz-" + name,
              GENERATORS[name.replace("fuzz-", "")](), manifest)
    write_manifest(manifest)


if __name__ == "__main__":
    main()
