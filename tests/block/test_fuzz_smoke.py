#!/usr/bin/env python3
"""The image fuzz target (tests/block/fuzz/fuzz-image.c) in a clang build of
its own with the block layer instrumented: every seed in the committed corpus
and every committed crash reproducer must run clean, then ~20 s of fresh
mutations must find nothing.  The fuzz build directory is $VIREO_FUZZ_BUILD,
else build-fuzz/ at the top; it is set up here when missing.  Skips when
clang with libFuzzer is not installed (scripts/install-deps installs it)."""
import glob
import os
import re
import shutil
import subprocess
import tempfile

import vtest

ROOT = vtest.ROOT
FUZZ_DIR = os.path.join(ROOT, "tests", "block", "fuzz")
CORPUS = os.path.join(FUZZ_DIR, "corpus")
CRASHES = os.path.join(FUZZ_DIR, "crashes")
BUILD = os.environ.get("VIREO_FUZZ_BUILD") or os.path.join(ROOT, "build-fuzz")
SMOKE_SECONDS = int(os.environ.get("VIREO_FUZZ_SECONDS", "20"))
# With the block layer instrumented the seeds alone reach thousands of edges;
# the harness on its own reaches about twenty.  Far below means the library
# lost its instrumentation.
MIN_SEED_EDGES = 1000

_target = None


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


def fuzz_target():
    """Builds (or brings up to date) the fuzz build and returns the target."""
    global _target
    if _target:
        return _target
    if not clang_has_libfuzzer():
        vtest.skip("clang with libFuzzer not installed (Debian: clang libclang-rt-14-dev)")
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        env = dict(os.environ, CC="clang")
        p = subprocess.run(["meson", "setup", BUILD, "--buildtype=debugoptimized",
                            "-Dwerror=true", "-Dfuzzing=true",
                            "-Db_sanitize=address,undefined", "-Db_lundef=false"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(["ninja", "-C", BUILD, "tests/block/fuzz-image"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    _target = os.path.join(BUILD, "tests", "block", "fuzz-image")
    return _target


def run_fuzzer(args, timeout):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    p = subprocess.run([fuzz_target()] + args, capture_output=True, text=True,
                       errors="replace", timeout=timeout, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"fuzz-image {' '.join(args)} exited {p.returncode}:\n" + \
        "\n".join(out.splitlines()[-60:])
    return out


def test_seed_corpus_runs_clean():
    seeds = os.listdir(CORPUS)
    assert len(seeds) >= 5, f"the seed corpus {CORPUS} holds only {seeds}"
    out = run_fuzzer(["-runs=0", CORPUS], timeout=120)
    m = re.search(r"INITED cov: (\d+)", out)
    assert m, out
    edges = int(m.group(1))
    assert edges >= MIN_SEED_EDGES, \
        f"the seeds reach {edges} edges: is the block layer instrumented?"


def test_crash_reproducers_fixed():
    """Each file in crashes/ once crashed the target; now each must run clean."""
    files = sorted(glob.glob(os.path.join(CRASHES, "*")))
    files = [f for f in files if os.path.isfile(f) and not f.endswith(".txt")]
    if not files:
        vtest.skip("no crash reproducers committed")
    bad = []
    for f in files:
        try:
            run_fuzzer([f], timeout=60)
        except AssertionError as e:
            bad.append(f"{os.path.relpath(f, ROOT)}: {str(e)[-1500:]}")
    assert not bad, "\n\n".join(bad)


def test_fresh_mutations_smoke():
    with tempfile.TemporaryDirectory(prefix="vireo-fuzz-") as d:
        work = os.path.join(d, "corpus")
        os.mkdir(work)
        out = run_fuzzer([f"-max_total_time={SMOKE_SECONDS}", "-timeout=10",
                          "-rss_limit_mb=2048", f"-artifact_prefix={d}/",
                          "-print_final_stats=1",
                          "-dict=" + os.path.join(FUZZ_DIR, "image.dict"), work, CORPUS],
                         timeout=SMOKE_SECONDS + 120)
        runs = re.search(r"stat::number_of_executed_units:\s+(\d+)", out)
        assert runs and int(runs.group(1)) > 0, out[-2000:]


if __name__ == "__main__":
    vtest.main()
