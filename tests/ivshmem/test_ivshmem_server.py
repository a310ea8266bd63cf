#!/usr/bin/env python3
"""vireo-ivshmem-server against the ivshmem client-server protocol, spoken
from Python: ids, eventfds, shared memory, joins and leaves, and hostile or
slow clients that must not disturb the others."""
import mmap
import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest
from ivpeer import Peer, Server, consistent_view, raise_fd_limit, readable, ring

SERVER = vtest.binary("vireo-ivshmem-server")


def test_two_clients_get_ids_and_each_others_vectors():
    with Server(SERVER, vectors=3) as srv:
        a = Peer(srv.sock, vectors=3)
        b = Peer(srv.sock, vectors=3)
        assert (a.id, b.id) == (0, 1), (a.id, b.id)
        assert len(a.own) == 3 and len(b.own) == 3
        # b learnt of a during its set-up, with a's three vectors
        assert list(b.peers) == [a.id] and len(b.peers[a.id]) == 3
        a.read_until(lambda: len(a.peers.get(b.id, [])) == 3)
        assert list(a.peers) == [b.id]
        a.close()
        b.close()


def test_ringing_a_peer_vector_reaches_its_own_eventfd():
    with Server(SERVER, vectors=3) as srv:
        a = Peer(srv.sock, vectors=3)
        b = Peer(srv.sock, vectors=3)
        for v in range(3):
            ring(b.peers[a.id][v])
            assert readable(a.own[v], 2), f"vector {v} not signalled"
            assert os.read(a.own[v], 8) == (1).to_bytes(8, sys.byteorder)
            others = [w for w in range(3) if w != v]
            assert not any(readable(a.own[w], 0) for w in others)
        a.read_until(lambda: b.id in a.peers)
        a.read_until(lambda: len(a.peers[b.id]) == 3)
        ring(a.peers[b.id][2])
        assert readable(b.own[2], 2)
        a.close()
        b.close()


def test_shared_memory_is_shared_and_sized():
    with Server(SERVER, size="2m") as srv:
        a = Peer(srv.sock, vectors=1)
        b = Peer(srv.sock, vectors=1)
        assert os.fstat(a.shm).st_size == 2 * 1024 * 1024
        ma = mmap.mmap(a.shm, 2 * 1024 * 1024)
        mb = mmap.mmap(b.shm, 2 * 1024 * 1024)
        ma[4096:4101] = b"vireo"
        assert mb[4096:4101] == b"vireo"
        ma.close()
        mb.close()
        a.close()
        b.close()


def test_disconnect_is_announced_without_descriptor():
    with Server(SERVER, vectors=2) as srv:
        a = Peer(srv.sock, vectors=2)
        b = Peer(srv.sock, vectors=2)
        a.read_until(lambda: len(a.peers.get(b.id, [])) == 2)
        b.close()
        a.read_until(lambda: b.id in a.left)
        assert b.id not in a.peers
        assert a.events[-1] == (b.id, False)
        a.close()


def test_ids_are_not_reused_at_once():
    with Server(SERVER) as srv:
        a = Peer(srv.sock, vectors=1)
        b = Peer(srv.sock, vectors=1)
        b.close()
        a.read_until(lambda: b.id in a.left)
        c = Peer(srv.sock, vectors=1)
        assert c.id == 2, c.id      # round robin: 1 is not handed out again yet
        a.close()
        c.close()


def test_a_thousand_clients_at_once():
    raise_fd_limit(8192)
    n = 1000
    with Server(SERVER) as srv:
        peers = [Peer(srv.sock, setup=False) for _ in range(n)]
        # every client must learn of every other: read them all as data comes
        import selectors
        sel = selectors.DefaultSelector()
        for p in peers:
            sel.register(p.sock, selectors.EVENT_READ, p)
            p.known = 0
            p.stage = 0
            p.complete = False
        done = 0
        end = time.monotonic() + 120
        while done < n:
            assert time.monotonic() < end, f"only {done} clients complete"
            for key, _ in sel.select(5):
                p = key.data
                value, fd = p.recv()
                if p.stage == 0:
                    p.stage = 1
                elif p.stage == 1:
                    p.id, p.stage = value, 2
                elif p.stage == 2:
                    assert value == -1 and fd >= 0
                    p.shm, p.stage = fd, 3
                elif value == p.id:
                    p.own.append(fd)
                else:
                    assert fd >= 0, "no leave expected"
                    os.close(fd)
                    p.known += 1
                if p.stage == 3 and not p.complete and p.known == n - 1 and p.own:
                    p.complete = True
                    done += 1
        ids = sorted(p.id for p in peers)
        assert ids == list(range(n)), "ids are not 0..999"
        assert all(len(p.own) == 1 for p in peers)
        for p in peers:
            sel.unregister(p.sock)
            p.close()
        assert srv.alive()


def test_client_that_never_reads_is_dropped_and_others_served():
    with Server(SERVER, "--max-queue", "32") as srv:
        stuck = Peer(srv.sock, setup=False)       # never reads a byte
        watcher = Peer(srv.sock, vectors=1)
        joins = 0
        others = []
        for _ in range(1000):                      # peers that stay: each join
            others.append(Peer(srv.sock, vectors=1, keep_fds=False))   # queues for the stuck one
            joins += 1
            for p in [watcher] + others:           # everyone else keeps up
                while p.pending():
                    p.read_one()
            if "dropped peer 0" in srv.output():
                break
        deadline = time.monotonic() + 10
        while "dropped peer 0" not in srv.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "dropped peer 0" in srv.output(), "the stuck client was not dropped"
        # the watcher saw every join and leave, and the stuck client's leave
        watcher.read_until(lambda: stuck_id_left(watcher, 0), timeout=10)
        watcher.read_until(lambda: len(watcher.peers) == joins, timeout=10)
        assert stuck_id_left(watcher, 0) and watcher.left == [0], watcher.left
        for o in others:
            o.close()
        stuck.sock.close()
        watcher.close()


def stuck_id_left(peer, pid):
    return pid in peer.left


def test_client_sending_garbage_is_dropped():
    with Server(SERVER) as srv:
        a = Peer(srv.sock, vectors=1)
        bad = Peer(srv.sock, vectors=1)
        a.read_until(lambda: bad.id in a.peers)
        bad.sock.send(b"\x01\x00\x00\x00\x00\x00\x00\x00garbage")
        a.read_until(lambda: bad.id in a.left)
        assert bad.recv(5) is None, "the server kept the garbage sender"
        c = Peer(srv.sock, vectors=1)
        assert a.id in c.peers and bad.id not in c.peers
        a.close()
        bad.close()
        c.close()


def test_client_sending_descriptors_is_dropped_without_leaks():
    with Server(SERVER) as srv:
        a = Peer(srv.sock, vectors=1)
        before = srv.fd_count()
        for _ in range(50):
            bad = Peer(srv.sock, setup=False)
            r, w = os.pipe()
            socket.send_fds(bad.sock, [b"\0" * 8], [r, w])
            os.close(r)
            os.close(w)
            bad.sock.close()
        a.drain()
        consistent_view(a)
        time.sleep(0.1)
        assert srv.fd_count() == before, (before, srv.fd_count())
        assert "sent data" in srv.output()
        a.close()


def test_connect_disconnect_loops_leak_nothing():
    with Server(SERVER, vectors=4) as srv:
        a = Peer(srv.sock, vectors=4)
        before = srv.fd_count()
        for i in range(300):
            c = Peer(srv.sock, setup=(i % 2 == 0), vectors=4)
            c.close()
        a.drain()
        assert consistent_view(a) == set()
        assert srv.fd_count() == before, (before, srv.fd_count())
        a.close()


def test_client_dying_with_descriptors():
    with Server(SERVER, vectors=2) as srv:
        a = Peer(srv.sock, vectors=2)
        before = srv.fd_count()
        pid = os.fork()
        if pid == 0:
            Peer(srv.sock, vectors=2)
            os._exit(0)         # dies holding every descriptor it got
        os.waitpid(pid, 0)
        a.read_until(lambda: len(a.left) == 1)
        time.sleep(0.1)
        assert srv.fd_count() == before
        a.close()


def test_max_peers_refuses_beyond_the_limit():
    with Server(SERVER, "--max-peers", "3") as srv:
        peers = [Peer(srv.sock, vectors=1) for _ in range(3)]
        extra = Peer(srv.sock, setup=False)
        assert extra.recv(5) is None, "a fourth client was admitted"
        assert "refusing a client" in srv.output()
        extra.sock.close()
        peers[1].close()
        peers[0].read_until(lambda: peers[1].id in peers[0].left)
        again = Peer(srv.sock, vectors=1)
        assert again.id == 3, again.id
        for p in (peers[0], peers[2], again):
            p.close()


def test_stalled_client_backlog_does_not_grow_with_churn():
    """Peers that come and go while a client is not reading are taken back
    out of its queue: it is neither dropped nor left holding their
    eventfds, and when it reads at last its view is consistent."""
    with Server(SERVER) as srv:      # --max-queue 4096: 3000 joins and leaves pass it
        slow = Peer(srv.sock, vectors=1)
        base = srv.fd_count()
        for _ in range(3000):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(srv.sock)
            c.close()
        stay = Peer(srv.sock, vectors=1)
        time.sleep(0.3)
        assert "dropped" not in srv.output()
        assert srv.fd_count() == base + 2, (base, srv.fd_count())  # stay's socket and eventfd
        slow.read_until(lambda: stay.id in slow.peers, timeout=30)
        slow.drain()
        assert consistent_view(slow) == {stay.id}
        assert len(slow.events) < 1000, len(slow.events)   # most were taken back
        slow.close()
        stay.close()


def test_daemon_mode_writes_pidfile_and_cleans_up():
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="ivsh-")
    sock, pidfile = os.path.join(d, "sock"), os.path.join(d, "pid")
    shm = f"vireo-ivsh-daemon-{os.getpid()}"
    r = subprocess.run([SERVER, "-S", sock, "-M", shm, "-l", "64k", "-p", pidfile],
                       capture_output=True, text=True, timeout=20)
    try:
        assert r.returncode == 0, r
        pid = int(open(pidfile).read())
        a = Peer(sock, vectors=1)
        assert a.id == 0 and os.fstat(a.shm).st_size == 65536
        a.close()
        os.kill(pid, 15)
        deadline = time.monotonic() + 10
        while os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(pidfile) and not os.path.exists(sock)
    finally:
        os.unlink(f"/dev/shm/{shm}")
        shutil.rmtree(d, ignore_errors=True)


def test_out_of_descriptors_refuses_and_recovers():
    """With a small descriptor limit the server refuses what it cannot hold
    (logged), keeps serving the clients it has, and admits again later."""
    import resource
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="ivsh-")
    sock, shm = os.path.join(d, "sock"), f"vireo-ivsh-fds-{os.getpid()}"
    limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    log = open(os.path.join(d, "log"), "w+")
    proc = subprocess.Popen([SERVER, "-F", "-v", "-S", sock, "-M", shm, "-l", "64k", "-n", "2"],
                            preexec_fn=limit, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        first = Peer(sock, vectors=2)
        crowd = [Peer(sock, setup=False) for _ in range(30)]
        admitted = refused = 0
        for c in crowd:
            got = c.recv(10)
            if got is None:
                refused += 1
            else:
                admitted += 1
        assert refused > 0 and admitted > 0, (admitted, refused)
        first.drain()
        assert len(first.peers) == admitted, (len(first.peers), admitted)
        for c in crowd:
            c.close()
        first.read_until(lambda: not first.peers)
        again = Peer(sock, vectors=2)
        first.read_until(lambda: again.id in first.peers)
        again.close()
        first.close()
        proc.terminate()
        assert proc.wait(10) == 0
        out = open(log.name).read()
        assert "refusing a client" in out and "Sanitizer" not in out, out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.unlink(f"/dev/shm/{shm}")
        shutil.rmtree(d, ignore_errors=True)


def test_shared_memory_in_a_directory():
    import tempfile
    d = tempfile.mkdtemp(prefix="ivsh-dir-")
    with Server(SERVER, "-m", d, size="128k") as srv:
        a = Peer(srv.sock, vectors=1)
        assert os.fstat(a.shm).st_size == 128 * 1024
        assert os.listdir(d) == [], "the shm file is not unlinked"
        a.close()
    os.rmdir(d)


def test_rejects_bad_command_lines():
    import subprocess
    for args in (["-n", "0"], ["-n", "65"], ["-l", "x"], ["--max-peers", "70000"], ["bogus"]):
        r = subprocess.run([SERVER, "-F", "-S", "/nonexistent/s", *args],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and "vireo-ivshmem-server:" in r.stderr, (args, r)


def test_refuses_a_second_server_on_a_live_socket():
    import subprocess
    with Server(SERVER) as srv:
        r = subprocess.run([SERVER, "-F", "-S", srv.sock, "-M", srv.shm_name, "-l", "1M"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and "already listening" in r.stderr, r
        a = Peer(srv.sock, vectors=1)
        a.close()


if __name__ == "__main__":
    vtest.main()
