#!/usr/bin/env python3
"""Every libFuzzer target of tests/fuzz/targets.py, in a clang build of its
own with the code under test instrumented. Per target: every committed seed
runs clean and together they reach the target's edge floor; fixed crash
reproducers run clean; then a few seconds of fresh mutations
($VIREO_FUZZ_SECONDS, 20 by default) must find nothing. The fuzz build
directory is $VIREO_FUZZ_BUILD, else build-fuzz/ at the top; it is set up
here when missing and every target is built with one ninja call. Skips when
clang with libFuzzer is not installed (scripts/install-deps installs it)."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import vtest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets  # noqa: E402

ROOT = vtest.ROOT
BUILD = targets.build_dir()
SMOKE_SECONDS = int(os.environ.get("VIREO_FUZZ_SECONDS", "20"))

_built = None


def clang_has_libfuzzer():
    if not shutil.which("clang"):
        return False
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write("#include <stddef.h>\n#include <stdint.h>\n"
                    "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                    " { return 0; }\n")
        p = subprocess.run(["clang", "-fsanitize=fuzzer,address", src, "-o",
                            os.path.join(d, "t")], capture_output=True)
        return p.returncode == 0


def build_all():
    """Sets up the fuzz build when missing and brings every target up to date."""
    global _built
    if _built is not None:
        if isinstance(_built, vtest.Skip):
            raise _built
        return
    if not clang_has_libfuzzer():
        _built = vtest.Skip("clang with libFuzzer not installed "
                            "(Debian: clang libclang-rt-14-dev)")
        raise _built
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        env = dict(os.environ, CC="clang")
        p = subprocess.run(["meson", "setup", BUILD, "--buildtype=debugoptimized",
                            "-Dwerror=true", "-Dfuzzing=true",
                            "-Db_sanitize=address,undefined", "-Db_lundef=false"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(["ninja", "-C", BUILD] + [t["exe"] for t in targets.TARGETS],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr
    _built = True


def run_fuzzer(t, args, timeout):
    build_all()
    env = targets.fuzzer_env()
    p = subprocess.run([os.path.join(BUILD, t["exe"])] + args, capture_output=True,
                       text=True, errors="replace", timeout=timeout, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{t['name']} {' '.join(args)} exited {p.returncode}:\n" + \
        "\n".join(out.splitlines()[-60:])
    return out


def seeds_run_clean(t):
    seeds = os.listdir(t["corpus"])
    assert len(seeds) >= 5, f"the seed corpus {t['corpus']} holds only {seeds}"
    out = run_fuzzer(t, ["-runs=0", t["corpus"]], timeout=120)
    # The target's own warnings come from a logging thread and may land in the
    # middle of libFuzzer's "#N INITED cov: E" line.
    m = re.search(r"INITED[\s\S]*?cov: (\d+)", out)
    assert m, out[-3000:]
    edges = int(m.group(1))
    assert edges >= t["min_edges"], \
        f"{t['name']}: the seeds reach {edges} edges, below {t['min_edges']}: " \
        "is the code under test instrumented?"


def crash_files(t):
    files = sorted(glob.glob(os.path.join(t["crashes"], "*")))
    return [f for f in files if os.path.isfile(f) and not f.endswith((".txt", ".md"))]


def crashes_fixed(t):
    """Fixed reproducers must run clean; open ones are listed, not run."""
    files = crash_files(t)
    if not files:
        vtest.skip("no crash reproducers committed")
    if not t["crashes_fixed"]:
        vtest.skip("open bugs, not run: " +
                   ", ".join(os.path.relpath(f, ROOT) for f in files))
    bad = []
    for f in files:
        try:
            run_fuzzer(t, [f], timeout=60)
        except AssertionError as e:
            bad.append(f"{os.path.relpath(f, ROOT)}: {str(e)[-1500:]}")
    assert not bad, "\n\n".join(bad)


SMOKE_RUNS = int(os.environ.get("VIREO_FUZZ_RUNS", "100000"))


def fresh_mutations(t):
    with tempfile.TemporaryDirectory(prefix="vireo-fuzz-") as d:
        work = os.path.join(d, "corpus")
        os.mkdir(work)
        # A fixed seed and a cap on runs make the smoke run the same inputs
        # on every machine, so make check cannot fail by chance; open-ended
        # exploration is `make fuzz`.
        args = ["-seed=2", f"-runs={SMOKE_RUNS}"] + \
            targets.fuzzer_args(t, SMOKE_SECONDS, work, d + "/")
        out = run_fuzzer(t, args, timeout=SMOKE_SECONDS + 120)
        runs = re.search(r"stat::number_of_executed_units:\s+(\d+)", out)
        assert runs and int(runs.group(1)) > 0, out[-2000:]


def _define(t):
    """test_<target>_{seeds,crashes,fresh}, in the order of the table."""
    base = "test_" + t["name"].replace("-", "_")
    for suffix, fn in (("seeds", seeds_run_clean), ("crashes", crashes_fixed),
                       ("fresh", fresh_mutations)):
        def test(fn=fn):
            fn(t)
        test.__name__ = f"{base}_{suffix}"
        globals()[test.__name__] = test


for _t in targets.TARGETS:
    _define(_t)


if __name__ == "__main__":
    vtest.main()
