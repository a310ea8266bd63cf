"""Guest images for the lab and for L2 guests: Debian's kernel and its
modules (dependencies resolved), a newc cpio writer and reader, and cached
busybox initramfs images (build_initramfs). lab.py re-exports what tests
use. Python 3.11 standard library only.
"""
import functools
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# Bumped whenever the initramfs layout changes, to invalidate the cache.
INITRAMFS_FORMAT = 7


class LabError(Exception):
    """The lab itself failed (L1 did not boot, QEMU died, tools missing)."""


def _log(msg):
    if os.environ.get("VIREO_LAB_VERBOSE"):
        print(f"vireo-lab: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Debian's kernel

def _version_key(text):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p]


def kernel_path():
    """Path of the newest installed Debian kernel (/boot/vmlinuz-*) that has a
    modules directory. VIREO_LAB_KERNEL overrides it (the version is then
    taken from the file name)."""
    forced = os.environ.get("VIREO_LAB_KERNEL")
    if forced:
        return forced
    found = []
    for name in os.listdir("/boot") if os.path.isdir("/boot") else []:
        if name.startswith("vmlinuz-") and os.path.isdir(os.path.join("/lib/modules", name[8:])):
            found.append(name)
    if not found:
        raise LabError("no /boot/vmlinuz-* with /lib/modules/<version>: install linux-image-amd64")
    return os.path.join("/boot", max(found, key=lambda n: _version_key(n[8:])))


def kernel_version():
    """Version string of kernel_path(), e.g. '6.1.0-56-amd64'."""
    name = os.path.basename(kernel_path())
    return name[8:] if name.startswith("vmlinuz-") else name


def vmlinux_path(kernel=None):
    """An uncompressed ELF copy of KERNEL (default kernel_path()), cached.

    Debian's 6.1 bzImage is xz-compressed; decompressing it under TCG costs
    about 2 s of every L1 boot, while QEMU boots the ELF directly through its
    PVH entry (CONFIG_PVH=y). Returns None if the payload's compression is not
    one Python can undo (then boot the bzImage)."""
    kernel = kernel or kernel_path()
    key = hashlib.sha256(json.dumps(_stat_id(kernel)).encode()).hexdigest()[:16]
    out = os.path.join(_cache_dir(), f"vmlinux-{os.path.basename(kernel)}-{key}")
    if os.path.exists(out):
        return out
    with open(kernel, "rb") as f:
        data = f.read()
    elf = None
    for magic, unpack in ((b"\xfd7zXZ\x00", _unxz), (b"\x1f\x8b\x08", _ungzip)):
        at = data.find(magic)
        if at >= 0:
            elf = unpack(data[at:])
            if elf and elf[:4] == b"\x7fELF":
                break
            elf = None
    if elf is None:
        return None
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(elf)
    os.replace(tmp, out)
    return out


def _unxz(data):
    try:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    except lzma.LZMAError:
        return None


def _ungzip(data):
    try:
        return zlib.decompressobj(31).decompress(data)
    except zlib.error:
        return None


def modules_dir(version=None):
    """/lib/modules/<version> of that kernel (default: kernel_version())."""
    return os.path.join("/lib/modules", version or kernel_version())


# ---------------------------------------------------------------------------
# Kernel modules

@functools.lru_cache(maxsize=None)
def _modinfo(version, field, name):
    cmd = ["modinfo", "-k", version] + (["-n"] if field == "filename" else ["-F", field]) + [name]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise LabError("modinfo is missing: install kmod") from None
    if p.returncode != 0:
        return None
    return p.stdout.strip()


def module_available(name, version=None):
    """Whether the kernel has module NAME (as a loadable module)."""
    return bool(_modinfo(version or kernel_version(), "filename", name.split()[0]))


def resolve_modules(names, version):
    """Modules NAMES plus their dependencies, dependencies first.

    Each name may carry insmod parameters ('kvm nx_huge_pages=off'). Returns a
    list of (module_file_path, params). Built-in modules are skipped."""
    params, order, seen = {}, [], set()
    for entry in names:
        name, _, args = entry.strip().partition(" ")
        params[_canon(name)] = args.strip()

    def visit(name, chain):
        key = _canon(name)
        if key in seen:
            return
        if key in chain:
            raise LabError(f"module dependency cycle: {' -> '.join(chain + [key])}")
        path = _modinfo(version, "filename", name)
        if not path:
            raise LabError(f"kernel {version} has no module {name!r}")
        if path == "(builtin)":
            seen.add(key)
            return
        deps = _modinfo(version, "depends", name) or ""
        for dep in filter(None, deps.split(",")):
            visit(dep, chain + [key])
        seen.add(key)
        order.append((path, params.get(key, "")))

    for entry in names:
        visit(entry.split()[0], [])
    return order


def _canon(name):
    return name.replace("-", "_")


def _module_bytes(path):
    """A module's contents, decompressed: busybox insmod loads plain ELF only."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        try:
            return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True,
                                  timeout=60).stdout
        except (FileNotFoundError, subprocess.CalledProcessError) as e:
            raise LabError(f"cannot decompress {path}: install zstd ({e})") from None
    return data


def _module_name(path):
    base = os.path.basename(path)
    return base[:base.index(".ko")] + ".ko"


# ---------------------------------------------------------------------------
# newc cpio writer

class Cpio:
    """An initramfs under construction: paths -> entries, written as a gzip'd
    newc cpio archive (no root needed: device nodes are just headers)."""

    def __init__(self):
        self.entries = {}

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.entries:
                self.entries[d] = (stat.S_IFDIR | 0o755, b"", 0)

    def add_dir(self, path, mode=0o755):
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = (stat.S_IFDIR | mode, b"", 0)

    def add_file(self, path, data, mode=0o644):
        path = path.strip("/")
        if isinstance(data, str):
            data = data.encode()
        self._parents(path)
        self.entries[path] = (stat.S_IFREG | mode, data, 0)

    def add_symlink(self, path, target):
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = (stat.S_IFLNK | 0o777, target.encode(), 0)

    def add_chardev(self, path, major, minor, mode=0o600):
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = (stat.S_IFCHR | mode, b"", (major << 8) | minor)

    def has(self, path):
        return path.strip("/") in self.entries

    def archive(self):
        """The uncompressed newc archive. A parent path sorts before its
        children, so directories precede their contents."""
        out = io.BytesIO()
        for ino, path in enumerate(sorted(self.entries), start=1):
            mode, data, rdev = self.entries[path]
            self._write(out, ino, path, mode, data, rdev)
        self._write(out, 0, "TRAILER!!!", 0, b"", 0)
        return out.getvalue()

    @staticmethod
    def _write(out, ino, name, mode, data, rdev):
        name_b = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF,
                  len(name_b), 0]
        out.write(b"070701" + "".join(f"{v:08X}" for v in fields).encode())
        out.write(name_b)
        out.write(b"\0" * (-(110 + len(name_b)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))


def read_cpio(data):
    """Parse a (possibly gzip'd) newc archive into {path: (mode, bytes)};
    used by tests to look inside generated images."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    entries, pos = {}, 0
    while True:
        if data[pos:pos + 6] != b"070701":
            raise ValueError(f"bad cpio magic at {pos}")
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos: pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body)


# ---------------------------------------------------------------------------
# Guest initramfs

def _busybox():
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path) and _is_static(path):
            return path
    raise LabError("no static busybox: install busybox-static")


def _is_static(path):
    # A dynamically linked ELF has a PT_INTERP program header.
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(int.from_bytes(table[i * phentsize: i * phentsize + 4], "little") != 3
               for i in range(phnum))


LOAD_MODULES = """#!/bin/sh
# Loads the initramfs's kernel modules, dependencies first.
set -f
while read -r mod args; do
    [ -n "$mod" ] && { insmod "$mod" $args || echo "load-modules: $mod failed" >&2; }
done < /lib/modules/load-order
"""


def _cache_dir():
    """tests/lab/cache (gitignored), or VIREO_LAB_CACHE; a temporary one when
    the tree is read-only (as it is inside L1)."""
    d = os.environ.get("VIREO_LAB_CACHE") or os.path.join(HERE, "cache")
    try:
        os.makedirs(d, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    d = os.path.join(tempfile.gettempdir(), f"vireo-lab-cache-{os.getuid()}")
    os.makedirs(d, exist_ok=True)
    return d


def _stat_id(path):
    st = os.stat(path)
    return [path, st.st_size, st.st_mtime_ns]


def _file_entry(value):
    """Normalize a files={} value to (bytes, mode). A value is bytes or str
    content, a (content, mode) pair, or an os.PathLike naming a host file."""
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        with open(path, "rb") as f:
            return f.read(), stat.S_IMODE(os.stat(path).st_mode)
    mode = None
    if isinstance(value, tuple):
        value, mode = value
    if isinstance(value, str):
        value = value.encode()
    if mode is None:
        mode = 0o755 if value.startswith(b"#!") else 0o644
    return value, mode


def build_initramfs(out_path, init_script, modules=(), files={}, kernel_version=None):
    """Write a gzip'd newc initramfs for a Debian-kernel guest to OUT_PATH.

    Contents: static busybox with every applet linked (bin/sh, sbin/insmod,
    ...), /init = INIT_SCRIPT (a shell script run as PID 1), /dev/console, the
    kernel MODULES plus their dependencies (decompressed) under /lib/modules/
    with /lib/modules/load-order and a `load-modules` command that insmods them
    in order (also a modules.dep so busybox modprobe works), and FILES
    ({path_in_image: content}, see _file_entry). Entries of MODULES may carry
    insmod parameters: 'kvm nx_huge_pages=off'.

    Images are cached by a hash of the inputs, so a repeated build is a copy.
    OUT_PATH None returns the cached image's path. Returns the path written.
    """
    version = kernel_version or globals()["kernel_version"]()
    entries = {p: _file_entry(v) for p, v in files.items()}
    key = _initramfs_key(init_script, list(modules), entries, version)
    cached = os.path.join(_cache_dir(), "initramfs", key + ".cpio.gz")
    if os.path.exists(cached):
        os.utime(cached)  # recently used: spared by _prune_cache()
    else:
        data = _make_initramfs(init_script, list(modules), entries, version)
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        tmp = f"{cached}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, cached)
        _log(f"built initramfs {cached} ({len(data)} bytes)")
        _prune_cache(os.path.dirname(cached))
    if out_path is None:
        return cached
    if os.path.abspath(out_path) != cached:
        tmp = f"{out_path}.{os.getpid()}.tmp"
        shutil.copyfile(cached, tmp)
        os.replace(tmp, out_path)
    return out_path


def _prune_cache(directory, max_age_days=7):
    """Forget images unused for a week (tests generate many variants)."""
    limit = time.time() - max_age_days * 86400
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            if os.stat(path).st_mtime < limit:
                os.unlink(path)
        except OSError:
            pass


def _initramfs_key(init_script, modules, entries, version):
    depfile = os.path.join(modules_dir(version), "modules.dep")
    ident = {
        "format": INITRAMFS_FORMAT,
        "init": init_script,
        "modules": modules,
        "version": version,
        "modules.dep": _stat_id(depfile) if os.path.exists(depfile) else None,
        "busybox": _stat_id(_busybox()),
        "files": {p: [hashlib.sha256(d).hexdigest(), m] for p, (d, m) in sorted(entries.items())},
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _make_initramfs(init_script, modules, entries, version):
    img = Cpio()
    busybox = _busybox()
    with open(busybox, "rb") as f:
        img.add_file("bin/busybox", f.read(), 0o755)
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True, timeout=30).stdout.split()
    for applet in applets:
        if applet != "bin/busybox" and not img.has(applet):
            img.add_symlink(applet, "/bin/busybox")
    for d in ("dev", "proc", "sys", "tmp", "run", "root", "mnt", "etc"):
        img.add_dir(d)
    img.add_chardev("dev/console", 5, 1)
    img.add_chardev("dev/null", 1, 3, 0o666)
    _add_modules(img, modules, version)
    img.add_file("bin/load-modules", LOAD_MODULES, 0o755)
    for path, (data, mode) in entries.items():
        img.add_file(path, data, mode)
    img.add_file("init", init_script, 0o755)
    return gzip.compress(img.archive(), compresslevel=6, mtime=0)


def _add_modules(img, modules, version):
    # Modules go to /lib/modules/<version>/extra/, where busybox modprobe
    # finds them through the generated modules.dep; load-order has full paths.
    resolved = resolve_modules(modules, version) if modules else []
    base = f"lib/modules/{version}"
    order, files = [], {}
    for path, params in resolved:
        name = _module_name(path)
        img.add_file(f"{base}/extra/{name}", _module_bytes(path))
        order.append(f"/{base}/extra/{name} {params}".strip())
        files[_canon(name[:-3])] = f"extra/{name}"
    img.add_file("lib/modules/load-order", "".join(line + "\n" for line in order))
    # As depmod writes it: all transitive dependencies, to be loaded last first.
    direct = {}
    for path, _ in resolved:
        deps = filter(None, (_modinfo(version, "depends", path) or "").split(","))
        direct[_canon(_module_name(path)[:-3])] = [_canon(d) for d in deps if _canon(d) in files]
    lines = []
    for key in files:
        closure, todo = set(), list(direct[key])
        while todo:
            d = todo.pop()
            if d not in closure:
                closure.add(d)
                todo += direct[d]
        dep_files = [files[k] for k in reversed(list(files)) if k in closure]
        lines.append(f"{files[key]}: {' '.join(dep_files)}".rstrip())
    img.add_file(f"{base}/modules.dep", "".join(l + "\n" for l in lines))
