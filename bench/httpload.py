#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""HTTP injection rate next to SMTP reception rate, on one ternd.

Starts ternd (--threads 2, durable spool, Reception records) with an ESMTP and
an HTTP listener on loopback, in a temporary directory removed at the end.
Messages are held in the spool (their MX is a closed loopback port, retry in
an hour), so the figures are reception alone. Then:

  HTTP: CLIENTS clients (10 processes x threads, keep-alive connections) POST
        /api/inject/v1 with RCPTS recipients each (builder form, a 4 KiB text
        body, one substitution per recipient) for SECONDS;
  SMTP: bench/smtpload, CLIENTS connections, RCPTS recipients per transaction,
        4 KiB bodies, the same number of messages.

Both print messages (recipients) accepted per second; ternd's CPU seconds per
1,000 messages are read from /proc. Usage:

    bench/httpload.py [--clients 20] [--rcpts 10] [--seconds 10] [--build build/rel]
"""
import argparse
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMTPLOAD_SRC = os.path.join(ROOT, "bench", "smtpload.c")
SMTPLOAD = os.path.join(ROOT, "build", "bench", "smtpload")

POLICY = """
tern.on('init', function()
  tern.define_spool { path = '%(dir)s/spool' }
  tern.configure_local_logs { log_dir = '%(dir)s/log' }
  tern.start_esmtp_listener { listen = '127.0.0.1:%(smtp)d', relay_hosts = { '127.0.0.1' },
                              max_recipients_per_message = 1000 }
  tern.start_http_listener { listen = '127.0.0.1:%(http)d' }
end)
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1h', mx_list = { '127.0.0.1:9' } }
end)
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_body(rcpts, seq):
    return json.dumps({
        "envelope_sender": "bench@sender.test",
        "recipients": [{"email": f"u{seq}-{i}@domain{i % 50:02d}.test",
                        "substitutions": {"n": f"{seq}-{i}"}} for i in range(rcpts)],
        "content": {"subject": "Bench {{ n }}", "from": {"email": "bench@sender.test"},
                    "text_body": "Hello {{ n }}\n" + ("x" * 76 + "\n") * 53},
    }).encode()


def client_process(port, threads, rcpts, deadline, out):
    """threads keep-alive clients in one process; puts (messages accepted, requests)."""
    counts = []

    def run(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        accepted = requests = 0
        while time.time() < deadline:
            c.request("POST", "/api/inject/v1", body=request_body(rcpts, n * 1000000 + requests),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            reply = json.loads(r.read())
            requests += 1
            accepted += reply.get("success_count", 0)
        c.close()
        counts.append((accepted, requests))

    ts = [threading.Thread(target=run, args=(os.getpid() * 100 + i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((sum(a for a, _ in counts), sum(r for _, r in counts)))


def run_http(port, clients, rcpts, seconds):
    procs_n = min(10, clients)
    per = [clients // procs_n + (1 if i < clients % procs_n else 0) for i in range(procs_n)]
    q = multiprocessing.Queue()
    start = time.time()
    deadline = start + seconds
    procs = [multiprocessing.Process(target=client_process, args=(port, n, rcpts, deadline, q))
             for n in per]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    elapsed = time.time() - start
    for p in procs:
        p.join()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"http clients: {ru.ru_utime + ru.ru_stime:.1f} CPU s over {elapsed:.1f}s", flush=True)
    return sum(a for a, _ in results), sum(r for _, r in results), elapsed


def run_smtp(port, clients, rcpts, messages):
    if not (os.path.exists(SMTPLOAD) and os.path.getmtime(SMTPLOAD) >= os.path.getmtime(SMTPLOAD_SRC)):
        os.makedirs(os.path.dirname(SMTPLOAD), exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", SMTPLOAD, SMTPLOAD_SRC, "-lpthread"], check=True)
    domains = ",".join(f"domain{i:02d}.test:1" for i in range(50))
    out = subprocess.run([SMTPLOAD, "--port", str(port), "--messages", str(messages // rcpts),
                          "--connections", str(clients), "--size", "4096",
                          "--rcpts-per-msg", str(rcpts), "--domains", domains],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["accepted"] * rcpts, r["elapsed"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--rcpts", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "rel"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="httpload-")
    smtp_port, http_port = free_port(), free_port()
    policy = os.path.join(work, "policy.lua")
    with open(policy, "w") as f:
        f.write(POLICY % {"dir": work, "smtp": smtp_port, "http": http_port})
    err = open(os.path.join(work, "ternd.stderr"), "w")
    ternd = subprocess.Popen([os.path.join(args.build, "ternd"), "--policy", policy,
                              "--threads", "2"], stderr=err, stdout=err, cwd=work)
    try:
        for _ in range(200):
            if "ready:" in open(err.name).read():
                break
            time.sleep(0.05)
        else:
            sys.exit("ternd did not start: " + open(err.name).read())
        cpu0 = cpu_seconds(ternd.pid)
        accepted, requests, elapsed = run_http(http_port, args.clients, args.rcpts, args.seconds)
        cpu_http = cpu_seconds(ternd.pid) - cpu0
        print(f"http: {accepted} messages in {requests} requests ({args.clients} clients, "
              f"{args.rcpts} recipients each) in {elapsed:.1f}s = {accepted / elapsed:.0f} "
              f"messages/s; ternd {1000 * cpu_http / max(accepted, 1):.3f} CPU s/1000 msgs",
              flush=True)
        cpu0 = cpu_seconds(ternd.pid)
        smtp_accepted, smtp_elapsed = run_smtp(smtp_port, args.clients, args.rcpts, accepted)
        cpu_smtp = cpu_seconds(ternd.pid) - cpu0
        print(f"smtp: {smtp_accepted} messages ({args.clients} connections, {args.rcpts} "
              f"recipients per transaction) in {smtp_elapsed:.1f}s = "
              f"{smtp_accepted / smtp_elapsed:.0f} messages/s; ternd "
              f"{1000 * cpu_smtp / max(smtp_accepted, 1):.3f} CPU s/1000 msgs", flush=True)
    finally:
        ternd.terminate()
        ternd.wait(30)
        err.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
