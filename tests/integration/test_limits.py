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


def test_unread_replies_do_not_grow_memory(ternd):
    """Regression: four connections pipelining NOOPs without reading the replies drove
    ternd's RSS to 1.4 GB (replies queued without bound)."""
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
