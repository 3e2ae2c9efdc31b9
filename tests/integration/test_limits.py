# SPDX-License-Identifier: MIT
"""Resource limits on the receiving side: clients that never read their
replies, running out of file descriptors, many connections from one address.
Each test drives a real ternd on loopback and measures it from /proc."""
import os
import select
import smtplib
import socket
import threading
import time

from conftest import listener_policy

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def port_of(t):
    text = open(t.policy_path).read()
    return int(text.split("listen = '127.0.0.1:")[1].split("'")[0])


def serves_normal_client(port):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        code, _ = c.ehlo("normal.test")
        assert code == 250
        assert c.noop()[0] == 250


def flood_without_reading(port, seconds, stop):
    """Pipeline NOOPs as fast as the server takes them, never reading a reply."""
    chunk = b"NOOP\r\n" * 10000
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not stop.is_set():
            _, w, _ = select.select([], [s], [], 0.1)
            if w:
                try:
                    s.send(chunk)
                except (BlockingIOError, InterruptedError):
                    pass
    except OSError:
        pass
    return s


def test_unread_replies_do_not_grow_memory(ternd, monkeypatch):
    """Regression: four connections pipelining NOOPs without reading the replies drove
    ternd's RSS to 1.4 GB (replies queued without bound)."""
    # Under ASan freed memory waits in a quarantine (256 MiB by default) and counts in RSS:
    # keep it small, so the test measures what ternd holds, not what ASan holds back.
    monkeypatch.setenv("ASAN_OPTIONS",
                       ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                              "quarantine_size_mb=16"])))
    t = ternd(listener_policy())
    port = port_of(t)
    stop = threading.Event()
    socks = []

    def run():
        socks.append(flood_without_reading(port, 10, stop))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    peak = 0.0
    try:
        while any(th.is_alive() for th in threads):
            peak = max(peak, rss_mib(t.proc.pid))
            assert peak < 150, f"ternd RSS reached {peak:.0f} MiB"
            time.sleep(0.1)
    finally:
        stop.set()
        for th in threads:
            th.join()
    print(f"peak RSS {peak:.1f} MiB")
    # The flooders are still connected (and still not reading): others are served meanwhile.
    serves_normal_client(port)
    for s in socks:
        s.close()
    assert t.proc.poll() is None
    assert t.stop() == 0


def first_lines(socks, timeout):
    """The first reply line of each socket (b"" when none came in time)."""
    got = {s: b"" for s in socks}
    deadline = time.monotonic() + timeout
    waiting = set(socks)
    while waiting and time.monotonic() < deadline:
        r, _, _ = select.select(list(waiting), [], [], 0.2)
        for s in r:
            try:
                data = s.recv(512)
            except OSError:
                data = b""
            got[s] += data
            if b"\n" in got[s] or not data:
                waiting.discard(s)
    return [got[s].split(b"\r\n")[0] for s in socks]


def banner_after_close(port, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            line = s.recv(512)
        if line.startswith(b"220") or time.monotonic() > deadline:
            return line
        time.sleep(0.1)


def test_out_of_descriptors_does_not_spin(ternd):
    """Regression: on EMFILE the accept callback returned with its watcher still active:
    11 s of CPU in 10 s and 2.6 million log lines in 15 s."""
    t = ternd(listener_policy("max_connections = 100000, max_connections_per_ip = 0"),
              start=False)
    t.argv = ["prlimit", "--nofile=256", "--", *t.argv]
    t.start()
    port = port_of(t)
    socks = []
    try:
        for _ in range(400):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(1)  # descriptors run out
        cpu0, log0, t0 = cpu_seconds(t.proc.pid), t.stderr().count("\n"), time.monotonic()
        time.sleep(10)
        cpu = (cpu_seconds(t.proc.pid) - cpu0) / (time.monotonic() - t0)
        lines = t.stderr().count("\n") - log0
        print(f"CPU {cpu * 100:.1f}% of a core, {lines} log lines in 10 s")
        assert cpu < 0.2
        assert lines < 100 / 6
        replies = first_lines(socks, 10)
        assert any(r.startswith(b"421 4.3.2 ") for r in replies), replies[-5:]
        assert sum(r.startswith(b"220 ") for r in replies) > 100
    finally:
        for s in socks:
            s.close()
    assert banner_after_close(port).startswith(b"220 mx.test")
    assert "Too many open files" in t.stderr()
    assert t.proc.poll() is None
    assert t.stop() == 0


def open_with_banners(port, n):
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
    return socks, first_lines(socks, 10)


def test_max_connections_per_ip(ternd):
    """Slow clients were never closed, and one address could hold every session: past
    max_connections_per_ip (counted across shards) a connection gets 421 and is closed."""
    # Loopback is not a relay host here, so it is counted; the default limit is 20.
    t = ternd(listener_policy("relay_hosts = { '10.0.0.0/8' }"))
    port = port_of(t)
    socks, lines = open_with_banners(port, 20)
    try:
        assert all(line.startswith(b"220 mx.test") for line in lines), lines
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            assert extra.recv(512) == b"421 4.7.0 Too many connections from your address\r\n"
            assert extra.recv(512) == b""  # closed
        # A session that ends frees its slot.
        socks.pop().close()
        assert banner_after_close(port).startswith(b"220 mx.test")
    finally:
        for s in socks:
            s.close()
    assert t.stop() == 0


def test_max_connections_per_ip_option_and_relay_hosts(ternd, ports):
    """The option sets the limit; relay_hosts (trusted injectors) are not limited."""
    t = ternd(listener_policy("relay_hosts = { '10.0.0.0/8' }, max_connections_per_ip = 2")
              .replace("end)", "  tern.start_esmtp_listener { listen = '127.0.0.1:{port2}',"
                               " hostname = 'relay.test', max_connections_per_ip = 2 }\nend)"))
    socks, lines = open_with_banners(ports[0], 3)
    relay, relay_lines = open_with_banners(ports[1], 5)
    try:
        # Shards accept in parallel: any one of the three may be the one refused.
        assert sorted(line[:9] for line in lines) == [b"220 mx.te", b"220 mx.te", b"421 4.7.0"]
        assert all(line.startswith(b"220 relay.test") for line in relay_lines), relay_lines
    finally:
        for s in socks + relay:
            s.close()
    assert t.stop() == 0


def open_files_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return [int(v) for v in line.split()[3:5]]
    return None


def test_descriptor_limit_raised_and_max_connections_from_it(ternd):
    """ternd raises its soft RLIMIT_NOFILE to the hard limit, and max_connections defaults
    to half of it: past that, clients get 421 4.7.0 before descriptors run out."""
    t = ternd(listener_policy("max_connections_per_ip = 0"), start=False)
    t.argv = ["prlimit", "--nofile=64:512", "--", *t.argv]
    t.start()
    assert open_files_limit(t.proc.pid) == [512, 512]
    socks, lines = open_with_banners(port_of(t), 300)
    try:
        banners = sum(line.startswith(b"220 ") for line in lines)
        assert banners == 256, lines
        assert all(line.startswith(b"421 4.7.0 Too many connections, try again later")
                   for line in lines if not line.startswith(b"220 ")), lines
    finally:
        for s in socks:
            s.close()
    assert "Too many open files" not in t.stderr()
    assert t.stop() == 0
