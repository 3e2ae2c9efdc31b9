#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Sizing figures bench/run and bench/capacity.py do not give: RAM per open
connection, inbound and outbound, and spool bytes per queued message.

  inbound   N clients connect, read the banner, say EHLO and stay: ternd's VmRSS
            growth / N (a session, its buffers and its coroutine);
  outbound  N messages toward a receiver (in this script) that answers the banner
            and EHLO, then never answers MAIL: one path with connection_limit N
            holds N connections mid-transaction; VmRSS growth / N (a client
            session, its buffers, the message in flight);
  spool     N messages (smtpload, 4 KiB) spooled and held (their attempt goes to a
            closed loopback port, retry in an hour): bytes of the spool directory
            (du: RocksDB's files and write-ahead logs) / N, while ternd runs and
            after it stopped.

Everything runs on 127.0.0.1 and is stopped by PID.

    bench/sizing.py [--connections 2000] [--messages 20000] [--threads 2] [--build DIR]
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import re
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from ports import free_port  # noqa: E402
from proc import rss_kib  # noqa: E402

# Benchmarks run as root on throw-away machines, which ternd refuses without --user or this.
os.environ.setdefault("TERN_ALLOW_ROOT", "1")

POLICY = """
tern.on('init', function()
  tern.define_spool { path = '%(dir)s/spool' }
  tern.configure_local_logs { log_dir = '%(dir)s/log' }
  tern.start_esmtp_listener { listen = '127.0.0.1:%(port)d', hostname = 'sizing.test',
                              relay_hosts = { '127.0.0.0/8' } }
  tern.start_http_listener { listen = '127.0.0.1:%(http)d' }
end)
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1h', mx_list = { '127.0.0.1:%(mx)d' } }
end)
tern.on('get_egress_path_config', function()
  return tern.make_egress_path { connection_limit = %(conns)d, enable_tls = 'disabled',
                                 mail_timeout = '10m', idle_timeout = '10m' }
end)
"""
# Seconds to let ternd settle (heap trim every 5 s) before reading its RSS.
SETTLE = 7.0


def du_bytes(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True,
                              check=True).stdout.split()[0])


class Ternd:
    def __init__(self, args, work, mx_port, conns):
        self.port, self.http = free_port(), free_port()
        policy = os.path.join(work, "policy.lua")
        with open(policy, "w") as f:
            f.write(POLICY % {"dir": work, "port": self.port, "http": self.http, "mx": mx_port,
                              "conns": conns})
        self.err = open(os.path.join(work, "stderr"), "w")
        self.proc = subprocess.Popen([os.path.join(args.build, "ternd"), "--policy", policy,
                                      "--threads", str(args.threads)], stderr=self.err)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"ternd did not start (see {work}/stderr)")
                time.sleep(0.1)

    def rss(self):
        time.sleep(SETTLE)
        return rss_kib(self.proc.pid)

    def syncs(self):
        """(synced group commits, records in them) so far, from GET /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10) as r:
            text = r.read().decode()
        return tuple(sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text,
                                                      re.M))
                     for name in ("tern_spool_sync_batches_total",
                                  "tern_spool_sync_batch_records_sum"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.err.close()


def read_reply(sock):
    """One SMTP reply (every line of a multiline one)."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("ternd closed a connection")
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) > 3 and lines[-2][3:4] == b" ":
            return data


def inbound(args, work):
    """RSS growth per idle inbound session that has said EHLO."""
    ternd = Ternd(args, work, free_port(), 1)
    socks = []
    try:
        before = ternd.rss()
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", ternd.port), timeout=30)
            read_reply(s)
            s.sendall(b"EHLO client.test\r\n")
            read_reply(s)
            socks.append(s)
        after = ternd.rss()
    finally:
        for s in socks:
            s.close()
        ternd.stop()
    return before, after


class StallingReceiver(threading.Thread):
    """Answers the banner and EHLO (with PIPELINING), then reads and never replies."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.port = self.listener.getsockname()[1]
        self.conns = []
        self.stalled = 0
        self.lock = threading.Lock()

    def run(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        try:
            c.sendall(b"220 stall.test ESMTP\r\n")
            c.recv(4096)  # EHLO
            c.sendall(b"250-stall.test\r\n250 PIPELINING\r\n")
            c.recv(4096)  # MAIL, RCPT, DATA: never answered
            with self.lock:
                self.stalled += 1
        except OSError:
            pass

    def stop(self):
        self.listener.close()
        for c in self.conns:
            c.close()


def held(args, work):
    """RSS growth of N messages held toward a closed port: what outbound's messages
    cost without their connections (RocksDB's memtables, queue entries)."""
    ternd = Ternd(args, work, free_port(), 1)
    try:
        before = ternd.rss()
        smtpload(ternd.port, args.connections)
        after = ternd.rss()
    finally:
        ternd.stop()
    return before, after


def outbound(args, work):
    """RSS growth with N messages toward a receiver that stalls each connection
    mid-transaction, and how many connections it holds."""
    rx = StallingReceiver()
    rx.start()
    ternd = Ternd(args, work, rx.port, args.connections)
    try:
        before = ternd.rss()
        smtpload(ternd.port, args.connections)
        seen, moved = -1, time.monotonic()
        while rx.stalled < args.connections and time.monotonic() - moved < 10:
            if rx.stalled != seen:
                seen, moved = rx.stalled, time.monotonic()
            time.sleep(0.2)
        after = ternd.rss()
        n = rx.stalled
    finally:
        ternd.stop()
        rx.stop()
    return before, after, n


def smtpload(port, messages, size=4096):
    subprocess.run([os.path.join(ROOT, "build", "bench", "smtpload"), "--port", str(port),
                    "--messages", str(messages), "--connections", "20", "--size", str(size),
                    "--domains", "sizing.test:1000"], check=True, capture_output=True)


def spool(args, work):
    """Spool bytes per held message, with ternd running and after it stopped."""
    ternd = Ternd(args, work, free_port(), 1)
    try:
        empty = du_bytes(os.path.join(work, "spool"))
        sync0 = ternd.syncs()
        smtpload(ternd.port, args.messages)
        time.sleep(2)
        sync1 = ternd.syncs()
        running = du_bytes(os.path.join(work, "spool"))
    finally:
        ternd.stop()
    stopped = du_bytes(os.path.join(work, "spool"))
    return empty, running, stopped, (sync1[0] - sync0[0], sync1[1] - sync0[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "rel"))
    args = ap.parse_args()
    if not os.path.exists(os.path.join(ROOT, "build", "bench", "smtpload")):
        raise SystemExit("build/bench/smtpload missing: run bench/run smoke once to build it")
    n = args.connections
    with tempfile.TemporaryDirectory(prefix="tern-sizing-") as tmp:
        before, after = inbound(args, tempfile.mkdtemp(dir=tmp))
        print(f"inbound: {n} idle sessions after EHLO; RSS {before / 1024:.1f} -> "
              f"{after / 1024:.1f} MiB = {1024 * (after - before) / n:.0f} bytes per connection",
              flush=True)
        msg0, msg1 = held(args, tempfile.mkdtemp(dir=tmp))
        before, after, conns = outbound(args, tempfile.mkdtemp(dir=tmp))
        per = 1024 * ((after - before) - (msg1 - msg0)) / max(conns, 1)
        print(f"outbound: {n} messages held without connections: RSS {msg0 / 1024:.1f} -> "
              f"{msg1 / 1024:.1f} MiB; with {conns} connections holding one each "
              f"mid-transaction: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB; the "
              f"difference = {per:.0f} bytes per connection", flush=True)
        empty, running, stopped, (syncs, recs) = spool(args, tempfile.mkdtemp(dir=tmp))
        m = args.messages
        print(f"spool: {m} messages of 4 KiB held; {empty} bytes empty, {running} running "
              f"= {(running - empty) / m:.0f} bytes per message, {stopped} after a clean stop "
              f"= {(stopped - empty) / m:.0f} bytes per message; {syncs:.0f} synced group "
              f"commits (fsyncs) for {recs:.0f} records = {recs / max(syncs, 1):.1f} records "
              f"and {syncs / m:.3f} fsyncs per message (smtpload, 20 connections)", flush=True)


if __name__ == "__main__":
    main()
