#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""RAM per scheduled queue and per egress path (source x site): what sizing a
node for many IPs and many destinations costs, beyond the messages themselves.

Three ternd runs hold the same number of messages, S x K, each deferred once
and waiting an hour for its retry:

  one path  all from one tenant to one domain: one scheduled queue, one path;
  queues    S x K domains whose MX records all name one host: S x K scheduled
            queues (tenant@domain) behind one path;
  paths     tenant i sends through its own pool of one source, src-i, to
            domain d-k.test, whose MX (from a loopback DNS server) is its own
            site: S x K scheduled queues and S x K paths (ready queue, path
            state, path config), one message each.

Each run's RSS growth (VmRSS, read once every message has had its failed
attempt and glibc has had time to trim) is divided by S x K; the differences
between the runs are what a scheduled queue and a path cost beyond their
messages. The messages' one attempt goes to a closed loopback port; nothing
leaves the machine.

    bench/capacity.py [--sources 100] [--sites 100] [--threads 2] [--build build/rel]
"""
import argparse
import glob
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from dnsserver import DNSTestServer  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
from ports import free_port  # noqa: E402
from proc import rss_kib  # noqa: E402

# Benchmarks run as root on throw-away machines, which ternd refuses without --user or this.
os.environ.setdefault("TERN_ALLOW_ROOT", "1")

POLICY = """
tern.dns.configure { servers = { '%(dns)s' }, timeout = '2s' }
tern.on('init', function()
  tern.define_spool { path = '%(dir)s/spool' }
  tern.configure_local_logs { log_dir = '%(dir)s/log', max_segment_duration = '5s' }
  tern.start_esmtp_listener { listen = '127.0.0.1:%(port)d', hostname = 'capacity.test',
                              relay_hosts = { '127.0.0.0/8' } }
end)
tern.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', msg:get_header('X-Tenant'))
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = tenant, retry_interval = '1h' }
end)
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { { name = 'src-' .. name, weight = 1 } } }
end)
tern.on('get_egress_source', function(name)
  return tern.make_egress_source { name = name, source_address = '127.0.0.1',
                                   ehlo_domain = 'capacity.test' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { smtp_port = %(closed)d }
end)
"""

RCPTS_PER_TRANSACTION = 100
BODY = b"Subject: capacity\r\nFrom: a@sender.test\r\n\r\n" + b"x" * 400 + b"\r\n"


def deferred(log_dir):
    """TransientFailure records so far; a segment renamed while listed makes us count again."""
    while True:
        try:
            n = 0
            for path in glob.glob(os.path.join(log_dir, "*.jsonl*")):
                with open(path, "rb") as f:
                    n += f.read().count(b'"type":"TransientFailure"')
            return n
        except FileNotFoundError:
            continue


def wait_deferred(log_dir, n, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while deferred(log_dir) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"ternd held {deferred(log_dir)} of {n} messages")
        time.sleep(0.5)


def send(port, tenant, rcpts):
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        for i in range(0, len(rcpts), RCPTS_PER_TRANSACTION):
            s.sendmail("a@sender.test", rcpts[i:i + RCPTS_PER_TRANSACTION],
                       b"X-Tenant: " + tenant.encode() + b"\r\n" + BODY)


def start(args, work, dns):
    port = free_port()
    policy = os.path.join(work, "policy.lua")
    with open(policy, "w") as f:
        f.write(POLICY % {"dns": dns.address, "dir": work, "port": port, "closed": free_port()})
    err = open(os.path.join(work, "stderr"), "w")
    proc = subprocess.Popen([os.path.join(args.build, "ternd"), "--policy", policy,
                             "--threads", str(args.threads)], stderr=err)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ternd did not start (see {work}/stderr)")
            time.sleep(0.1)


def recipients(mode, s, sites):
    """Tenant s's (tenant, recipients) in each mode."""
    if mode == "paths":
        return f"t{s}", [f"r{s}@d-{k}.test" for k in range(sites)]
    if mode == "queues":
        return "t0", [f"r@q-{s}-{k}.test" for k in range(sites)]
    return "t0", [f"r{s}-{k}@d-0.test" for k in range(sites)]


def run(args, tmp, dns, mode):
    """(RSS before, after) in KiB around S x K held messages placed as mode says."""
    work = tempfile.mkdtemp(prefix=mode + "-", dir=tmp)
    proc, port = start(args, work, dns)
    log_dir = os.path.join(work, "log")
    try:
        # Warm-up: Lua states, first connections, allocator arenas, the DNS cache of d-0.
        send(port, "warm", [f"w{i}@d-0.test" for i in range(200)])
        wait_deferred(log_dir, 200, proc)
        time.sleep(args.settle)
        before = rss_kib(proc.pid)
        for s in range(args.sources):
            send(port, *recipients(mode, s, args.sites))
        wait_deferred(log_dir, 200 + args.sources * args.sites, proc)
        time.sleep(args.settle)
        after = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return before, after


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "rel"))
    ap.add_argument("--settle", type=float, default=7.0,
                    help="seconds to wait before reading RSS (ternd trims its heap every 5 s)")
    args = ap.parse_args()
    zones = {"$zones": ["test"], "mx.shared.test": {"A": ["127.0.0.1"], "ttl": 86400}}
    for k in range(args.sites):
        zones[f"d-{k}.test"] = {"MX": [[10, f"mx.d-{k}.test."]], "ttl": 86400}
        zones[f"mx.d-{k}.test"] = {"A": ["127.0.0.1"], "ttl": 86400}
        for s in range(args.sources):
            zones[f"q-{s}-{k}.test"] = {"MX": [[10, "mx.shared.test."]], "ttl": 86400}
    dns = DNSTestServer(zones).start()
    n = args.sources * args.sites
    growth = {}
    with tempfile.TemporaryDirectory(prefix="tern-capacity-") as tmp:
        try:
            for mode in ("one", "queues", "paths"):
                before, after = run(args, tmp, dns, mode)
                growth[mode] = 1024 * (after - before) / n
                print(f"{mode:>6}: {n} messages held; RSS {before / 1024:.0f} -> "
                      f"{after / 1024:.0f} MiB = {growth[mode]:.0f} bytes per message", flush=True)
        finally:
            dns.stop()
    print(f"per message (one queue, one path): {growth['one']:.0f} bytes")
    print(f"per scheduled queue beyond its messages: {growth['queues'] - growth['one']:.0f} bytes")
    print(f"per (source, site) path beyond its queue and messages ({args.sources} sources x "
          f"{args.sites} sites): {growth['paths'] - growth['queues']:.0f} bytes")

if __name__ == "__main__":
    main()
