#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""System calls ternd makes per one-message SMTP session, counted by strace.

Starts ternd (--threads 2, durable spool, Reception records) with one ESMTP
listener on loopback in a temporary directory removed at the end; messages
are held in the spool (their MX is a closed loopback port, retry in an hour).
After a warm-up, `strace -f -c` attaches to ternd while SESSIONS sessions
each connect, send EHLO, MAIL, RCPT, DATA with one small message and QUIT
(Python's smtplib, one after another), and the counts are printed per
session, the failed calls beside them. The held messages' one delivery
attempt each (connect refused) is part of the count. Usage:

    bench/syscalls.py [--sessions 200] [--build build/rel]
"""
import argparse
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time

from ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POLICY = """
tern.on('init', function()
  tern.define_spool { path = '%(dir)s/spool' }
  tern.configure_local_logs { log_dir = '%(dir)s/log' }
  tern.start_esmtp_listener { listen = '127.0.0.1:%(port)d', hostname = 'mx.test',
                              relay_hosts = { '127.0.0.1' } }
end)
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1h', mx_list = { '127.0.0.1:%(closed)d' } }
end)
"""


def sessions(port, n):
    for i in range(n):
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail("a@client.test", [f"r{i}@example.net"], b"Subject: x\r\n\r\nhello\r\n")


def wait_listening(port, deadline=15):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            smtplib.SMTP("127.0.0.1", port).quit()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("ternd did not start listening")


def parse_strace_summary(text):
    """{syscall: (calls, errors)} from strace -c's table."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d*)\s*(\w+)$", line)
        if m and m.group(3) != "total":
            out[m.group(3)] = (int(m.group(1)), int(m.group(2) or 0))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--build", default=os.path.join(ROOT, "build", "rel"))
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="tern-syscalls-")
    port = free_port()
    policy = os.path.join(work, "policy.lua")
    with open(policy, "w") as f:
        f.write(POLICY % {"dir": work, "port": port, "closed": free_port()})
    ternd = subprocess.Popen([os.path.join(args.build, "ternd"), "--policy", policy,
                              "--threads", "2", "--allow-root"],
                             stderr=open(os.path.join(work, "ternd.stderr"), "w"))
    try:
        wait_listening(port)
        sessions(port, 20)
        out = os.path.join(work, "strace.txt")
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(ternd.pid)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(1)
        sessions(port, args.sessions)
        time.sleep(0.5)
        tracer.terminate()
        tracer.wait()
        with open(out) as f:
            counts = parse_strace_summary(f.read())
    finally:
        ternd.terminate()
        ternd.wait()
        shutil.rmtree(work)
    total = sum(c for c, _ in counts.values())
    failed = sum(e for _, e in counts.values())
    print(f"{args.sessions} sessions: {total / args.sessions:.1f} system calls per session, "
          f"{failed / args.sessions:.1f} of them failed")
    for name, (calls, errors) in sorted(counts.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:16} {calls / args.sessions:6.2f}"
              + (f"  ({errors / args.sessions:.2f} failed)" if errors else ""))


if __name__ == "__main__":
    main()
