"""The libFuzzer targets: one table for the smoke test
(tests/fuzz/test_fuzz_smoke.py) and `make fuzz` (tests/fuzz/fuzz.py).

Each target is built in the clang fuzz build ($VIREO_FUZZ_BUILD, else
build-fuzz/) at `exe`, starts from the committed seeds in `corpus`, is
mutated with `dict` when there is one, and must reach `min_edges` edges on
its seeds alone: far below means the code under test lost its coverage
instrumentation, or the harness no longer gets past the first checks.
`crashes` holds reproducers: for fuzz-image every file there was fixed and
must run clean; for the others a file there is an open bug, listed by the
smoke test but not run (once fixed it moves into the corpus)."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "tests", "fuzz")


def _target(name, what, min_edges, max_len, exe=None, corpus=None, dict_=None,
            crashes=None, crashes_fixed=False):
    return {
        "name": name,
        "what": what,
        "exe": exe or os.path.join("tests", "fuzz", name),
        "corpus": corpus or os.path.join(FUZZ, "corpus", name),
        "dict": dict_,
        "crashes": crashes or os.path.join(FUZZ, "crashes", name),
        "crashes_fixed": crashes_fixed,
        "min_edges": min_edges,
        "max_len": max_len,
    }


TARGETS = [
    _target("fuzz-image", "disk images: qcow2, parallels, raw (block/)", 1000, 0,
            exe=os.path.join("tests", "block", "fuzz-image"),
            corpus=os.path.join(ROOT, "tests", "block", "fuzz", "corpus"),
            dict_=os.path.join(ROOT, "tests", "block", "fuzz", "image.dict"),
            crashes=os.path.join(ROOT, "tests", "block", "fuzz", "crashes"),
            crashes_fixed=True),
    _target("fuzz-qmp", "QMP: stream splitter, strict JSON, envelope, QAPI arguments",
            600, 8192, dict_=os.path.join(FUZZ, "qmp.dict")),
    _target("fuzz-virtqueue", "split virtqueue walker and virtio-blk requests over guest RAM",
            800, 8192),
    _target("fuzz-fw-cfg", "fw_cfg ports and DMA descriptors from the guest", 300, 4096),
    _target("fuzz-boot-linux", "-kernel files: bzImage and PVH ELF headers, initrd placement",
            200, 8192),
    _target("fuzz-qtest", "the qtest line protocol on RAM and fw_cfg", 350, 8192,
            dict_=os.path.join(FUZZ, "qtest.dict")),
    _target("fuzz-keyval", "key=value options (-device, -object, -drive, -chardev, ...)",
            220, 4096, dict_=os.path.join(FUZZ, "keyval.dict")),
    _target("fuzz-hmp-readline", "the HMP line editor: keys, escape sequences, history",
            230, 4096),
    _target("fuzz-vhost-user", "vhost-user back-end: the frontend's messages and descriptors",
            900, 4096),
    _target("fuzz-nbd", "NBD server: a client's handshake, options, requests and payloads",
            450, 8192),
    _target("fuzz-virtio-net-ctrl", "virtio-net control queue through virtio-pci on the PCI bus",
            700, 8192),
    _target("fuzz-pci-config", "PCI config space, virtio-pci registers, MSI-X table and PBA",
            700, 4096),
    _target("fuzz-virtio-net", "virtio-net rx (mergeable buffers, vnet header, filter) and tx "
            "through a socket netdev", 1100, 8192),
    _target("fuzz-virtio-serial", "virtio-serial control and port queues, chardev input",
            1000, 8192),
    _target("fuzz-virtio-rng", "virtio-rng requests, byte quota and refill timer", 750, 4096),
    _target("fuzz-virtio-balloon", "virtio-balloon inflate, deflate and stats queues, targets",
            780, 4096),
    _target("fuzz-legacy-io", "16550 UART, MC146818 RTC and i8042 port registers", 620, 4096),
    _target("fuzz-hmp", "HMP command dispatch and handlers on a machine-less vireo", 450, 4096,
            dict_=os.path.join(FUZZ, "hmp.dict")),
    _target("fuzz-ivshmem", "ivshmem-doorbell: server messages and descriptors, BAR0, MSI-X, "
            "BAR2", 1350, 4096),
    _target("fuzz-vhost-user-frontend", "vhost-user frontend: a hostile back-end's replies, "
            "descriptors and back-end channel requests", 1150, 4096),
]

BY_NAME = {t["name"]: t for t in TARGETS}


def fuzzer_env():
    """Leaks and UBSan reports count as crashes, not as messages, except the
    open bugs listed in tests/fuzz/ubsan.supp."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:suppressions="
                   + os.path.join(FUZZ, "ubsan.supp"))
    return env


def build_dir():
    return os.environ.get("VIREO_FUZZ_BUILD") or os.path.join(ROOT, "build-fuzz")


def fuzzer_args(t, seconds, work, artifact_prefix, timeout=10, runs=0):
    """libFuzzer arguments for a run of @seconds (or @runs executions, if
    not 0 and sooner) with new inputs in @work; an input slower than
    @timeout seconds is a finding; crash files are named @artifact_prefix +
    their hash."""
    args = [f"-max_total_time={seconds}", f"-timeout={timeout}", "-rss_limit_mb=2048",
            "-print_final_stats=1", f"-artifact_prefix={artifact_prefix}"]
    if runs:
        args.append(f"-runs={runs}")
    if t["max_len"]:
        args.append(f"-max_len={t['max_len']}")
    if t["dict"]:
        args.append("-dict=" + t["dict"])
    return args + [work, t["corpus"]]
