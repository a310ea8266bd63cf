#!/usr/bin/env python3
"""QEMU's qemu-iotests as vireo-img's conformance suite.

scripts/qemu-tests fetches the iotests from Debian's source package of the
installed QEMU and runs the list in qemu-iotests.list twice, at the same time:
with vireo-img as QEMU_IMG_PROG, and with Debian's qemu-img as the reference.
Each iotest is one result line: a vireo-img failure is a failure unless the
reference fails it too (then it is skipped, with the reference's reason) or
it is in expected-failures (skipped with the reason given there).
"""
import os
import re
import subprocess
import sys

import vtest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(vtest.ROOT, "scripts", "qemu-tests")
RESULT = re.compile(r"^(pass|fail|notrun) (\d+) \((\w+)\)(?:: (.*))?$", re.M)


def vireo_img():
    for rel in ("vireo-img", os.path.join("tools", "vireo-img")):
        path = os.path.join(vtest.BUILD, rel)
        if os.path.exists(path):
            return path
    return vtest.binary("vireo-img")


def read_list(name):
    """Non-comment lines of a file in this directory, split into words."""
    with open(os.path.join(HERE, name)) as f:
        return [l.split(None, 2) if name == "expected-failures" else l.split()
                for l in f if l.strip() and not l.startswith("#")]


def start(img, scratch, groups):
    args = [sys.executable, SCRIPT, "--img", img, "--scratch", scratch]
    for fmt, *tests in groups:
        args += [fmt, *tests, "--"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def results(proc):
    out, err = proc.communicate()
    if proc.returncode == 2:
        vtest.skip(err.strip() or "QEMU's source package could not be fetched")
    if proc.returncode:
        raise AssertionError(f"scripts/qemu-tests exited {proc.returncode}: {err}")
    return {(fmt, t): (st, why or "") for st, t, fmt, why in RESULT.findall(out)}


def make_case(fmt, test, mine, ref, xfail):
    def case():
        st, why = mine.get((fmt, test), ("fail", "no result reported"))
        ref_st, ref_why = ref.get((fmt, test), ("fail", "no result reported"))
        if st == "pass":
            assert (fmt, test) not in xfail, "passes now: remove it from tests/iotests/expected-failures"
            return
        if ref_st != "pass":
            vtest.skip(f"{ref_st} with Debian's qemu-img too: {ref_why}")
        if (fmt, test) in xfail:
            vtest.skip(f"expected failure: {xfail[(fmt, test)]} ({st}: {why})")
        raise AssertionError(f"{st} with vireo-img: {why}")
    return case


def retry_timing_failures(mine, ref, scratch, xfail):
    """Some iotests (257's backup job racing an injected error, say) time
    QEMU's own block jobs, and lose the race when the machine is loaded by
    both suites and the other tests at once. A test that failed with
    vireo-img but passed with qemu-img runs once more, alone; it passes only
    if that run passes, and says so."""
    for (fmt, t), (st, why) in sorted(mine.items()):
        if st != "fail" or ref.get((fmt, t), ("",))[0] != "pass" or (fmt, t) in xfail:
            continue
        again = results(start(vireo_img(), os.path.join(scratch, "vireo-img-again"), [[fmt, t]]))
        st2, why2 = again.get((fmt, t), ("fail", "no result reported"))
        print(f"{t} ({fmt}) failed with vireo-img ({why}); alone again: {st2}"
              f"{': ' + why2 if why2 else ''}", flush=True)
        if st2 == "pass":
            mine[(fmt, t)] = ("pass", "")


def register():
    """Run both tools, then define one test function per iotest."""
    groups = read_list("qemu-iotests.list")
    xfail = {(w[0], w[1]): w[2].strip() if len(w) > 2 else "" for w in read_list("expected-failures")}
    scratch = os.path.join(vtest.BUILD, "qemu-iotests")
    mine = start(vireo_img(), os.path.join(scratch, "vireo-img"), groups)
    ref = start("/usr/bin/qemu-img", os.path.join(scratch, "qemu-img"), groups)
    try:
        mine_res, ref_res = results(mine), results(ref)
    except vtest.Skip as s:
        # Not a skip: make check would pass with the suite never run.
        print(f"FAIL qemu_iotests: {s}", flush=True)
        print("0 passed, 1 failed", flush=True)
        sys.exit(1)
    summary = {"pass": 0, "fail": 0, "notrun": 0}
    for st, _ in ref_res.values():
        summary[st] += 1
    print(f"reference (Debian's qemu-img): {summary['pass']} pass, {summary['fail']} fail, "
          f"{summary['notrun']} not run", flush=True)
    for (fmt, t), (st, why) in sorted(ref_res.items()):
        if st != "pass":
            print(f"reference {st} {t} ({fmt}): {why}", flush=True)
    retry_timing_failures(mine_res, ref_res, scratch, xfail)
    mod = sys.modules["__main__"]
    for fmt, *tests in groups:
        for t in tests:
            setattr(mod, f"test_{fmt}_{t}", make_case(fmt, t, mine_res, ref_res, xfail))


if __name__ == "__main__":
    register()
    vtest.main()
