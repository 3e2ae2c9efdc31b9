# SPDX-License-Identifier: MIT
"""Regression: a hostile receiving MX exhausted ternd's memory. The SMTP
client appended every continuation line of a reply to one growing buffer and
read lines without a length limit: endless `250-AAAA...` lines after EHLO
took ternd to 2.3 GB, one endless line without LF to 178 MB.

Each case points ternd at an MX that streams at full speed for several
seconds. ternd must stay under 150 MB, close the connection, record a
TransientFailure naming the cause (never a Bounce: a hostile MX must not get
the message bounced), and keep receiving and delivering to a normal MX.
"""
import socket
import threading
import time

import pytest

from conftest import free_port
from sinks import ScriptedReceiver, mta_policy, of_type, py_sink, send_one, wait_records

__all__ = ["py_sink"]  # fixture, used by name

RSS_LIMIT_KB = 150 * 1024
STREAM_SECONDS = 5.0


class HostileMX(ScriptedReceiver):
    """Greets, waits for EHLO, then sends `chunk` over and over until the
    peer closes or the streaming time is up; counts the bytes it got out."""

    def __init__(self, chunk, head=b""):
        self.chunk, self.head = chunk, head
        self.sent = 0
        super().__init__()

    def session(self, conn):
        deadline = time.monotonic() + STREAM_SECONDS
        try:
            conn.sendall(b"220 hostile.test ESMTP\r\n")
            got = b""
            while b"\n" not in got:
                data = conn.recv(4096)
                if not data:
                    return
                got += data
            conn.sendall(self.head)
            while time.monotonic() < deadline and not self.stop.is_set():
                conn.sendall(self.chunk)
                self.sent += len(self.chunk)
        except OSError:
            pass  # ternd hung up: the point of the test
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


HOOKS = """
tern.on('get_queue_config', function(domain)
  local mx = domain == 'hostile.test' and %d or %d
  return tern.make_queue_config { mx_list = { '127.0.0.1:' .. mx }, retry_interval = '1h' }
end)
tern.on('get_egress_path_config', function()
  return tern.make_egress_path { enable_tls = 'disabled' }
end)
"""


def lines_of(line, total=64 * 1024):
    return line * (total // len(line))


CASES = {
    # endless short continuation lines: the line count gives out first
    "many_lines": (lines_of(b"250-AAAAAAAA\r\n"), b"", "too many reply lines"),
    # endless long continuation lines: the reply size gives out first
    "large_reply": (lines_of(b"250-" + b"A" * 1000 + b"\r\n"), b"", "reply too large"),
    # one endless line without LF
    "endless_line": (b"A" * 65536, b"250-", "reply line too long"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_mx_cannot_exhaust_memory(ternd, ports, py_sink, case):
    chunk, head, cause = CASES[case]
    mx = HostileMX(chunk, head)
    sink = py_sink("127.0.0.1", free_port())
    try:
        t = ternd(mta_policy("127.0.0.1:9", HOOKS % (mx.port, sink.port)))
        before = rss_kb(t.proc.pid)
        send_one(ports[0], "s@origin.test", ["victim@hostile.test"], b"Subject: x\r\n\r\nx\r\n")
        peak = before
        end = time.monotonic() + STREAM_SECONDS + 1
        while time.monotonic() < end:
            peak = max(peak, rss_kb(t.proc.pid))
            time.sleep(0.05)
        print(f"{case}: RSS {before} kB at start, peak {peak} kB; "
              f"MX sent {mx.sent} bytes in {mx.sessions} sessions")
        assert peak < RSS_LIMIT_KB, (case, peak)
        # ternd hung up at the limit: the MX got out no more than the socket buffers
        # hold (before the fix it streamed 60 to 660 MB in these 5 s), and the
        # retry interval keeps ternd from coming back at once.
        assert mx.sent < 32 * 1024 * 1024 and mx.sessions == 1, (mx.sent, mx.sessions)

        failed = wait_records(t, of_type("TransientFailure"), 1)
        assert failed[0]["recipient"] == "victim@hostile.test"
        assert cause in failed[0]["response"]["content"], failed[0]
        assert failed[0]["response"]["code"] == 451
        assert not [r for r in t.records() if r["type"] in ("Bounce", "Delivery")]

        # Still receiving and delivering.
        send_one(ports[0], "s@origin.test", ["fine@good.test"], b"Subject: y\r\n\r\ny\r\n")
        delivered = wait_records(t, of_type("Delivery"), 1)
        assert delivered[0]["recipient"] == "fine@good.test"
        assert len(sink.wait_messages(1)) == 1
    finally:
        mx.close()


FAILOVER_HOOKS = """
tern.on('get_queue_config', function(domain)
  return tern.make_queue_config { mx_list = { '127.0.0.1:%d', '127.0.0.1:%d' },
                                  retry_interval = '1h' }
end)
tern.on('get_egress_path_config', function()
  return tern.make_egress_path { enable_tls = 'disabled' }
end)
"""


def test_next_mx_host_takes_the_message_after_a_hostile_one(ternd, ports, py_sink):
    """Regression: the half-read reply of a host that was cut off was kept, so
    the next host's banner was taken as its continuation."""
    mx = HostileMX(lines_of(b"250-AAAAAAAA\r\n"))
    sink = py_sink("127.0.0.1", free_port())
    try:
        t = ternd(mta_policy("127.0.0.1:9", FAILOVER_HOOKS % (mx.port, sink.port)))
        send_one(ports[0], "s@origin.test", ["a@dest.test"], b"Subject: x\r\n\r\nx\r\n")
        delivered = wait_records(t, of_type("Delivery"), 1)
        assert delivered[0]["peer_address"] == f"127.0.0.1:{sink.port}"
        assert mx.sessions == 1
        assert not [r for r in t.records() if r["type"] in ("Bounce", "TransientFailure")]
        assert "too many reply lines from mx 127.0.0.1:%d" % mx.port in t.stderr()
    finally:
        mx.close()


TRICKLE_HOOKS = """
tern.on('get_queue_config', function(domain)
  return tern.make_queue_config { mx_list = { '127.0.0.1:%d' }, retry_interval = '1h' }
end)
tern.on('get_egress_path_config', function()
  return tern.make_egress_path { enable_tls = 'disabled', banner_timeout = '2s' }
end)
"""


def test_a_reply_trickled_byte_by_byte_still_times_out(ternd, ports):
    """Regression: the client's timeout restarted on every byte read, so an MX that
    sent its banner one byte a second never timed out and held the connection (and
    the message) for as long as it liked."""
    port = free_port()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    stop = threading.Event()

    def trickle():
        conn, _ = srv.accept()
        with conn:
            for b in b"220 slow.test ESMTP " + b"x" * 200:
                if stop.wait(0.5):
                    return
                try:
                    conn.sendall(bytes([b]))
                except OSError:
                    return  # ternd hung up: the point of the test

    threading.Thread(target=trickle, daemon=True).start()
    try:
        t = ternd(mta_policy("127.0.0.1:9", TRICKLE_HOOKS % port))
        start = time.monotonic()
        send_one(ports[0], "s@origin.test", ["victim@slow.test"], b"Subject: x\r\n\r\nx\r\n")
        failed = wait_records(t, of_type("TransientFailure"), 1, timeout=20)
        took = time.monotonic() - start
        print(f"banner trickled at 2 bytes/s: TransientFailure after {took:.1f} s")
        assert took < 10, took  # the 2 s banner timeout, not the trickle's 100 s
        assert failed[0]["recipient"] == "victim@slow.test"
    finally:
        stop.set()
        srv.close()
