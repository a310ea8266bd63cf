#!/usr/bin/env python3
"""QEMU 7.2's own qtest programs, built from Debian's source package, run
against vireo through libqtest exactly as QEMU's `make check-qtest` runs them.

Each GTest case is one 'ok'/'FAIL' line of this test. A program that aborts
counts its abort as a failure; the cases it never reached are not counted.
The same programs are also started against Debian's qemu-system-x86_64 for
comparison; its results are reported as notes, not counted.

Cases vireo does not run are in skip-list.txt, each with its reason.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("VIREO_ROOT") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("VIREO_BUILD") or os.path.join(ROOT, "build")

# (program, GTest path prefixes to run (-p), or None for all of them)
QOS_PREFIX = "/x86_64/pc/i440FX-pcihost/pci-bus-pc/pci-bus/"
PROGRAMS = [
    ("fw_cfg-test", None),
    ("rtc-test", None),
    ("machine-none-test", None),
    ("qmp-test", None),
    ("test-hmp", None),
    ("qmp-cmd-test", None),
    ("qos-test", [QOS_PREFIX + d for d in (
        "virtio-blk-pci", "virtio-net-pci", "virtio-rng-pci",
        "virtio-serial-pci", "virtio-balloon-pci")]),
]
PROGRAM_TIMEOUT = 600
TAP_RESULT = re.compile(r"^(ok|not ok) \d+ (\S+)(.*)$")


def skip_list():
    """{path: reason} from skip-list.txt."""
    entries = {}
    with open(os.path.join(HERE, "skip-list.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                path, _, reason = line.partition(" ")
                entries[path] = reason.strip()
    return entries


def build_programs():
    """The build directory of the qtest programs, or None with a reason."""
    script = os.path.join(ROOT, "scripts", "qemu-qtests")
    p = subprocess.run([script], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-5:]
    return p.stdout.strip().splitlines()[-1], None


def run_program(qtests, binary, prog, prefixes, skips, workdir):
    """Run one program; returns (results [(path, ok, detail)], aborted_text)."""
    env = dict(os.environ)
    env["QTEST_QEMU_BINARY"] = binary
    env["QTEST_QEMU_IMG"] = shutil.which("qemu-img") or "qemu-img"
    env.pop("QTEST_LOG", None)
    exe = os.path.join(qtests, "tests", "qtest", prog)
    cmd = [exe, "--tap", "-k"]
    if prefixes:
        # qos-test names whole graph paths as single cases, so GTest's -p
        # matches them only exactly: list them and pick the ones wanted.
        listed = subprocess.run([exe, "-l"], env=env, cwd=workdir, capture_output=True,
                                text=True, errors="replace", timeout=PROGRAM_TIMEOUT).stdout
        wanted = [l for l in listed.split() if any(l.startswith(x + "/") for x in prefixes)]
        if not wanted:
            return [], "no case of " + " ".join(prefixes) + " is listed by " + prog
        for path in wanted:
            if path not in skips:
                cmd += ["-p", path]
    for path in skips:
        cmd += ["-s", path]
    try:
        p = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True,
                           text=True, errors="replace", timeout=PROGRAM_TIMEOUT)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out, rc = out + f"\nTIMEOUT after {PROGRAM_TIMEOUT}s", -1
    results = []
    for line in out.splitlines():
        m = TAP_RESULT.match(line)
        if m and "# SKIP" not in m.group(3):
            results.append((m.group(2), m.group(1) == "ok", m.group(3)))
    aborted = None
    if rc != 0 and all(ok for _, ok, _ in results):
        tail = [l for l in out.splitlines() if l and not l.startswith("# starting")]
        aborted = "\n".join(tail[-12:])
    return results, aborted


def vmm_link(tmp, target, name):
    """libqtest takes the target from the binary's name: *-system-x86_64."""
    link = os.path.join(tmp, name)
    os.symlink(target, link)
    return link


def report_vireo(qtests, binary, skips, workdir):
    passed = failed = 0
    for prog, prefixes in PROGRAMS:
        mine = [p for p in skips if any(p.startswith(x) for x in prefixes or ["/"])]
        for path in mine:
            print(f"skip {prog} {path}: {skips[path]}", flush=True)
        results, aborted = run_program(qtests, binary, prog, prefixes, mine, workdir)
        for path, ok, detail in results:
            print(f"{'ok' if ok else 'FAIL'} {prog} {path}", flush=True)
            passed += ok
            failed += not ok
        if aborted is not None:
            print(f"FAIL {prog} (aborted after {len(results)} cases)", flush=True)
            print("\n".join("    " + l for l in aborted.splitlines()), flush=True)
            failed += 1
        ok_count = sum(ok for _, ok, _ in results)
        print(f"# vireo {prog}: {ok_count}/{len(results)} cases passed"
              f"{', aborted' if aborted is not None else ''}", flush=True)
    return passed, failed


def report_qemu(qtests, tmp, workdir):
    """The same programs against Debian's QEMU 7.2: notes only."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("skip compare-with-qemu: qemu-system-x86_64 is not installed", flush=True)
        return
    binary = vmm_link(tmp, qemu, "qemu-system-x86_64")
    for prog, prefixes in PROGRAMS:
        results, aborted = run_program(qtests, binary, prog, prefixes, [], workdir)
        ok_count = sum(ok for _, ok, _ in results)
        why = ""
        if aborted is not None:
            refusal = re.search(r"^.*invalid accelerator.*$", aborted, re.M)
            why = f" (aborted: {refusal.group(0).strip() if refusal else aborted.splitlines()[-1]})"
        line = f"qemu-7.2 {prog}: {ok_count}/{len(results)} cases passed{why}"
        if aborted is not None and not results:
            print(f"skip compare-with-{line}", flush=True)
        else:
            print(f"# {line}", flush=True)


def main():
    qtests, why = build_programs()
    if qtests is None:
        print("skip qemu-qtests: QEMU 7.2's source package could not be fetched or built:", flush=True)
        print("\n".join("    " + l for l in why), flush=True)
        print("0 passed, 0 failed", flush=True)
        return 0
    vireo = os.path.join(BUILD, "vireo")
    with tempfile.TemporaryDirectory(prefix="vireo-qtests-") as tmp:
        binary = vmm_link(tmp, vireo, "vireo-system-x86_64")
        workdir = os.path.join(tmp, "work")
        os.mkdir(workdir)
        passed, failed = report_vireo(qtests, binary, skip_list(), workdir)
        report_qemu(qtests, tmp, workdir)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
