#!/usr/bin/env python3
"""send-key and HMP sendkey through the i8042 and its PS/2 keyboard, read
back over qtest at ports 0x60/0x64 as a guest driver reads them: set-2
scancodes translated to set 1 while the command byte asks for it, IRQ 1
while a keyboard byte waits, the release after hold-time on the virtual
clock, the keyboard and controller commands Linux's i8042 and atkbd
drivers send, hostile write sequences, and the QMP schema and errors side
by side with QEMU 7.2.
"""
import json
import random
import shutil
import subprocess

import vmm
import vtest

DATA, CMD = 0x60, 0x64
OBF = 0x01
QEMU = shutil.which("qemu-system-x86_64")


def start(*args):
    return vmm.Vireo("-m", "64M", *args, qtest=True)


def drain(q, limit=64):
    """Every byte waiting in the output buffer, as a driver's loop reads them."""
    out = []
    while q.inb(CMD) & OBF and len(out) < limit:
        out.append(q.inb(DATA))
    return out


def key(qmp, *names, hold=None, kind="qcode"):
    keys = [{"type": kind, "data": n} for n in names]
    args = {"keys": keys}
    if hold is not None:
        args["hold-time"] = hold
    qmp.cmd("send-key", **args)


def step_ms(q, ms):
    q.ok(f"clock_step {ms * 1000000}")


def test_key_press_release_translated_with_irq1():
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        q.ok("irq_intercept_in ioapic")
        assert drain(q) == []
        assert q.inb(CMD) & 0x04, "system flag after power-on"
        key(qmp, "a")
        assert q.inb(CMD) & OBF
        assert "IRQ raise 1" in q.irqs, q.irqs
        assert q.inb(DATA) == 0x1e          # set 1 make of A
        assert not q.inb(CMD) & OBF
        assert "IRQ lower 1" in q.irqs, q.irqs
        # The release waits for hold-time (100 ms) on the virtual clock.
        step_ms(q, 99)
        assert drain(q) == []
        step_ms(q, 1)
        assert drain(q) == [0x9e]


def test_keys_in_order_released_in_reverse():
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        key(qmp, "ctrl", "alt", "delete", hold=50)
        assert drain(q) == [0x1d, 0x38, 0xe0, 0x53]
        step_ms(q, 50)
        assert drain(q) == [0xe0, 0xd3, 0xb8, 0x9d]
        # By number (qnum): 0x9d is right Ctrl.
        key(qmp, 0x9d, kind="number", hold=0)
        assert drain(q) == [0xe0, 0x1d, 0xe0, 0x9d]
        # A number without a key and an unmapped qcode send nothing.
        key(qmp, 1000, kind="number", hold=0)
        key(qmp, "unmapped", hold=0)
        assert drain(q) == []


def test_untranslated_set2_and_special_keys():
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        q.outb(CMD, 0x20)
        mode = q.inb(DATA)
        assert mode & 0x40, f"translation on at power-on ({mode:#x})"
        q.outb(CMD, 0x60)
        q.outb(DATA, mode & ~0x40)
        q.outb(CMD, 0x20)
        assert q.inb(DATA) == mode & ~0x40
        key(qmp, "a", hold=0)
        assert drain(q) == [0x1c, 0xf0, 0x1c]
        key(qmp, "kp_enter", hold=0)
        assert drain(q) == [0xe0, 0x5a, 0xe0, 0xf0, 0x5a]
        key(qmp, "f7", hold=0)
        assert drain(q) == [0x83, 0xf0, 0x83]
        key(qmp, "pause", hold=0)
        assert drain(q) == [0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77]
        # Back to translation: the same keys in set 1.
        q.outb(CMD, 0x60)
        q.outb(DATA, mode)
        key(qmp, "f7", hold=0)
        assert drain(q) == [0x41, 0xc1]
        key(qmp, "pause", hold=0)
        assert drain(q) == [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]
        key(qmp, "print", hold=0)
        assert drain(q) == [0xe0, 0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xe0, 0xaa]


def test_keyboard_commands_as_atkbd_sends_them():
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        q.outb(DATA, 0xff)                  # reset
        assert drain(q) == [0xfa, 0xaa]
        q.outb(DATA, 0xf2)                  # identify: AB 83, 0x83 translated
        assert drain(q) == [0xfa, 0xab, 0x41]
        q.outb(DATA, 0xed)                  # LEDs
        assert drain(q) == [0xfa]
        q.outb(DATA, 0x07)
        assert drain(q) == [0xfa]
        q.outb(DATA, 0xee)                  # echo
        assert drain(q) == [0xee]
        q.outb(DATA, 0xf5)                  # disable scanning
        assert drain(q) == [0xfa]
        key(qmp, "b", hold=0)
        assert drain(q) == []
        q.outb(DATA, 0xf4)                  # enable
        assert drain(q) == [0xfa]
        key(qmp, "b", hold=0)
        assert drain(q) == [0x30, 0xb0]
        q.outb(DATA, 0xf0)                  # scancode set 1
        assert drain(q) == [0xfa]
        q.outb(DATA, 0x01)
        assert drain(q) == [0xfa]
        q.outb(CMD, 0x60)                   # translation off to see raw set 1
        q.outb(DATA, 0x05)
        key(qmp, "ctrl_r", hold=0)
        assert drain(q) == [0xe0, 0x1d, 0xe0, 0x9d]
        q.outb(DATA, 0xf0)
        q.outb(DATA, 0x00)                  # which set?
        assert drain(q) == [0xfa, 0xfa, 0x01]
        q.outb(DATA, 0xf0)
        q.outb(DATA, 0x03)                  # set 3 is not offered
        assert drain(q) == [0xfa, 0xfe]
        q.outb(DATA, 0x12)                  # not a command
        assert drain(q) == [0xfe]


def test_controller_commands():
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        q.outb(CMD, 0xaa)
        assert drain(q) == [0x55]
        q.outb(CMD, 0xab)
        assert drain(q) == [0x00]
        # No mouse port: its test fails and loopback bytes are not mouse data.
        q.outb(CMD, 0xa9)
        assert drain(q) == [0x02]
        q.outb(CMD, 0xd3)
        q.outb(DATA, 0x5a)
        assert q.inb(CMD) & 0x21 == 0x01
        assert drain(q) == [0x5a]
        q.outb(CMD, 0xad)                   # keyboard clock off: bytes wait
        key(qmp, "c", hold=0)
        assert drain(q) == []
        q.outb(CMD, 0xae)
        assert drain(q) == [0x2e, 0xae]
        q.outb(CMD, 0xd2)                   # write the keyboard output buffer
        q.outb(DATA, 0x5a)
        assert drain(q) == [0x5a]
        # Keyboard interrupt off: no IRQ 1, but the byte is there.
        q.ok("irq_intercept_in ioapic")
        q.outb(CMD, 0x60)
        q.outb(DATA, 0x44)
        q.irqs.clear()
        key(qmp, "d", hold=0)
        assert not any(l.endswith(" 1") for l in q.irqs), q.irqs
        assert drain(q) == [0x20, 0xa0]


def test_hmp_sendkey():
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        assert qmp.hmp("sendkey ctrl-alt-f1") == ""
        assert drain(q) == [0x1d, 0x38, 0x3b]
        step_ms(q, 100)
        assert drain(q) == [0xbb, 0xb8, 0x9d]
        assert qmp.hmp("sendkey 0x1e 10") == ""
        step_ms(q, 10)
        assert drain(q) == [0x1e, 0x9e]
        assert qmp.hmp("sendkey ctrl-foo") == "invalid parameter: foo\r\n"
        assert qmp.hmp("sendkey a-") == "invalid parameter: \r\n"
        assert qmp.hmp("sendkey 0x") == "invalid parameter: 0x\r\n"
        assert qmp.hmp("sendkey a foo") == ("invalid char 'f' in expression\r\n"
                                            'Try "help sendkey" for more information\r\n')
        step_ms(q, 1000)
        assert drain(q) == []
        assert "sendkey keys [hold_ms] -- send keys to the VM" in qmp.hmp("help sendkey")


def test_hostile_register_writes():
    rnd = random.Random(1642)
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        for i in range(3000):
            port = rnd.choice((DATA, CMD))
            if rnd.random() < 0.3:
                q.inb(port)
            else:
                val = rnd.randrange(256)
                if port == CMD and (val == 0xfe or (val >= 0xf0 and not val & 1) or val == 0xd1):
                    val = 0x20      # keep the reset line alone: another test covers it
                q.outb(port, val)
            if i % 200 == 0:
                key(qmp, "x", "y", hold=0)
        drain(q, limit=1000)
        assert qmp.cmd("query-status")["status"] in ("running", "prelaunch", "paused")
        # Still a working keyboard after a reset from the guest.
        q.outb(CMD, 0x60)
        q.outb(DATA, 0x45)
        q.outb(DATA, 0xff)
        assert drain(q)[-2:] == [0xfa, 0xaa]
        key(qmp, "z", hold=0)
        assert drain(q) == [0x2c, 0xac]


def test_every_qcode_of_the_schema_is_accepted():
    with start() as v:
        q, qmp = v.qtest, v.qmp()
        schema = qmp.cmd("query-qmp-schema")
        by = {e["name"]: e for e in schema}
        cmd = by["send-key"]
        keys = next(m for m in by[cmd["arg-type"]]["members"] if m["name"] == "keys")
        union = by[by[keys["type"]]["element-type"]]
        qcode = next(c for c in union["variants"] if c["case"] == "qcode")
        enum = by[next(m for m in by[qcode["type"]]["members"])["type"]]
        assert len(enum["values"]) == 150
        for name in enum["values"]:
            key(qmp, name, hold=0)
            drain(q, limit=16)


ERRORS = [
    {"keys": [{"type": "qcode", "data": "foo"}]},
    {"keys": [{"type": "qcode"}]},
    {"keys": [{"type": "bad", "data": 1}]},
    {"keys": [1]},
    {"keys": []},
    {"keys": [{"type": "number", "data": -1}]},
    {"keys": [{"type": "qcode", "data": "a"}], "hold-time": -5},
]


def qemu_answers(requests):
    p = subprocess.Popen([QEMU, "-M", "none", "-nodefaults", "-display", "none", "-qmp", "stdio"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        p.stdout.readline()
        out = []

        def ask(req):
            p.stdin.write(json.dumps(req) + "\n")
            p.stdin.flush()
            while True:
                r = json.loads(p.stdout.readline())
                if "return" in r or "error" in r:
                    return r
        ask({"execute": "qmp_capabilities"})
        for r in requests:
            out.append(ask(r))
        schema = ask({"execute": "query-qmp-schema"})["return"]
        return out, schema
    finally:
        p.kill()
        p.wait()


def shape(schema, name):
    """A type's description with the generated names replaced by structure."""
    by = {e["name"]: e for e in schema}

    def walk(t, depth=0):
        e = by[t]
        mt = e["meta-type"]
        if mt == "builtin":
            return e["json-type"]
        if mt == "enum":
            return ("enum", tuple(e["values"]))
        if mt == "array":
            return ("array", walk(e["element-type"], depth))
        if mt == "object":
            mem = tuple((m["name"], "default" in m, walk(m["type"], depth + 1))
                        for m in e["members"])
            var = tuple((c["case"], walk(c["type"], depth + 1)) for c in e.get("variants", []))
            return ("object", mem, e.get("tag"), var)
        return mt
    return walk(by[name]["arg-type"])


def test_errors_and_schema_as_qemu():
    if not QEMU:
        vtest.skip("qemu-system-x86_64 is not installed")
    reqs = [{"execute": "send-key", "arguments": a} for a in ERRORS]
    theirs, their_schema = qemu_answers(reqs)
    with start() as v:
        qmp = v.qmp()
        for req, want in zip(reqs, theirs):
            got = qmp.execute(req["execute"], **req["arguments"])
            got.pop("id", None)
            assert got == want, (req, got, want)
        ours = qmp.cmd("query-qmp-schema")
    assert shape(ours, "send-key") == shape(their_schema, "send-key")


if __name__ == "__main__":
    vtest.main()
