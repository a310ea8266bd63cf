#!/usr/bin/env python3
"""Regenerates the seed corpora of the fuzz targets in tests/fuzz/: a few
small inputs per target, each reaching a different part of the parser.
The seeds are committed; run this only to refresh them.
Usage: make-corpus.py [TARGET...]   (default: every target)"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATORS = {}


def target(fn):
    GENERATORS[fn.__name__.replace("_", "-")] = fn
    return fn


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    for fname, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


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


def main():
    names = sys.argv[1:] or list(GENERATORS)
    for name in names:
        write(name if name.startswith("fuzz-") else "fuzz-" + name,
              GENERATORS[name.replace("fuzz-", "")]())


if __name__ == "__main__":
    main()
