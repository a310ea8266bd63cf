"""Side by side with Debian's QEMU 7.2: the same requests must get the same
answers (success values, error classes and messages) from both, except where
the difference is a fact of the implementation (thread ids, version text,
the JSON parser's wording)."""
import os
import shutil
import subprocess
import tempfile
import time

import vmm
import vtest

QEMU = shutil.which("qemu-system-x86_64")

REQUESTS = [
    '{"execute":"query-name"}',
    '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}',
    '{"execute":"qmp_capabilities"}',
    '{"execute":"qmp_capabilities"}',
    '{"execute":"qmp_capabilities","arguments":{"enable":["zzz"]}}',
    '{"execute":"nope"}',
    '[1]', '"str"', '{"arguments":{}}', '{"execute":1}',
    '{"execute":"query-name","arguments":[]}',
    '{"execute":"query-name","foo":1}',
    '{"execute":"query-name","id":{"deep":[1,"x",null]}}',
    '{"execute":"query-status","id":"x"}',
    '{"execute":"getfd"}',
    '{"execute":"getfd","arguments":{"fdname":1}}',
    '{"execute":"getfd","arguments":{"fdname":"x","y":2}}',
    '{"execute":"getfd","arguments":{"fdname":"x"}}',
    '{"execute":"closefd","arguments":{"fdname":"x"}}',
    '{"execute":"add-fd"}',
    '{"execute":"add-fd","arguments":{"fdset-id":"1"}}',
    '{"execute":"remove-fd","arguments":{"fdset-id":5}}',
    '{"execute":"remove-fd","arguments":{"fdset-id":5,"fd":9}}',
    '{"execute":"remove-fd","arguments":{"fdset-id":"a"}}',
    '{"execute":"remove-fd","arguments":{"fdset-id":18446744073709551615}}',
    '{"execute":"query-fdsets"}',
    '{"execute":"query-command-line-options","arguments":{"option":"nope"}}',
    '{"execute":"x-exit-preconfig"}',
    '{"execute":"add_client","arguments":{"protocol":"nope","fdname":"x"}}',
    '{"execute":"human-monitor-command","arguments":{"command-line":"info name"}}',
    '{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}',
    '{"execute":"human-monitor-command","arguments":{"command-line":"nope"}}',
    '{"execute":"human-monitor-command","arguments":{"command-line":"info nope"}}',
    '{"execute":"human-monitor-command"}',
    '{"execute":"cont"}',
    '{"execute":"stop"}',
    '{"execute":"query-status"}',
    '{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}',
    '{"execute":"cont"}',
]
# Answers that legitimately differ: compare only the shape.
SHAPE_ONLY = {'{"execute":"human-monitor-command","arguments":{"command-line":"info version"}}'}


def start(binary, extra):
    d = tempfile.mkdtemp(prefix="vireo-cmp-")
    path = os.path.join(d, "q.sock")
    proc = subprocess.Popen([binary, "-qmp", f"unix:{path},server=on,wait=off", "-display", "none",
                             "-name", "cmp"] + extra,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{binary} did not start: {proc.stderr.read()}")
        time.sleep(0.02)
    return proc, vmm.QMP.unix(path, negotiate=False)


def answers(binary, extra):
    proc, q = start(binary, extra)
    try:
        out = []
        for r in REQUESTS:
            q.send_raw(r + "\n")
            out.append(q.reply())
        return out
    finally:
        proc.kill()
        proc.wait()


def test_same_answers_as_qemu():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    ours = answers(vtest.binary("vireo"), ["-accel", "qtest"])
    theirs = answers(QEMU, ["-M", "none", "-nodefaults"])
    diffs = []
    for req, a, b in zip(REQUESTS, ours, theirs):
        if a != b:
            diffs.append(f"{req}\n  vireo: {a}\n  qemu:  {b}")
    assert not diffs, "differences from QEMU 7.2:\n" + "\n".join(diffs)


def test_parse_errors_have_qemu_class():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    bad = ['{"execute": foo}', '{"execute":"query-name",}', "{'execute': 1 2}"]
    for binary, extra in ((vtest.binary("vireo"), ["-accel", "qtest"]),
                          (QEMU, ["-M", "none", "-nodefaults"])):
        proc, q = start(binary, extra)
        try:
            q.cmd("qmp_capabilities")
            for b in bad:
                q.send_raw(b + "\n")
                r = q.reply()
                assert r["error"]["class"] == "GenericError", (binary, b, r)
                assert r["error"]["desc"].startswith("JSON parse error"), (binary, b, r)
            assert "name" in q.cmd("query-name")   # still serving
        finally:
            proc.kill()
            proc.wait()


def test_schema_introspection_matches_qemu_shape():
    """query-qmp-schema: same meta-types and the same description of
    commands both implement (argument member names and optionality)."""
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")

    def schema(binary, extra):
        proc, q = start(binary, extra)
        try:
            q.cmd("qmp_capabilities")
            return q.cmd("query-qmp-schema")
        finally:
            proc.kill()
            proc.wait()

    def commands(entries):
        by_name = {e["name"]: e for e in entries}
        out = {}
        for e in entries:
            if e["meta-type"] != "command":
                continue
            arg = by_name[e["arg-type"]]
            out[e["name"]] = sorted((m["name"], "default" in m) for m in arg["members"])
        return out

    ours = commands(schema(vtest.binary("vireo"), ["-accel", "qtest"]))
    theirs = commands(schema(QEMU, ["-M", "none", "-nodefaults"]))
    for name, members in ours.items():
        if name in theirs:
            assert members == theirs[name], (name, members, theirs[name])


if __name__ == "__main__":
    vtest.main()
