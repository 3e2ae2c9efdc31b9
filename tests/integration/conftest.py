# SPDX-License-Identifier: MIT
"""Fixtures for black-box tests: real ternd processes on loopback ports.

`ternd(policy_text)` writes the policy into a fresh directory, starts ternd,
waits for its readiness line and returns a handle; every ternd started is
stopped by PID at the end of the test and its stderr is printed when the test
failed. Policies may use the placeholders {dir} (the test's directory) and
{port} / {port2} / ... (free loopback ports picked for this test).
"""
import os
import random
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.environ.get("TERN_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("TERN_BUILD") or os.path.join(ROOT, "build", "rel")
TERND = os.path.join(BUILD, "ternd")
TERN = os.path.join(BUILD, "tern")
# A policy without tern.dns.configure must never reach the system's resolvers.
os.environ.setdefault("TERN_DNS_SERVERS", "127.0.0.1:9")
# Tests run as root in CI containers, which ternd refuses without --user or this.
os.environ.setdefault("TERN_ALLOW_ROOT", "1")


_ports_given = set()


def free_port(host="127.0.0.1"):
    """A free port never handed out before in this run.

    Regression: the kernel may give the same ephemeral port to two binds in a row once the
    first is closed, so a test's listener and its "nothing listens here" port were once the
    same, and held messages were delivered to ternd itself.

    Below the kernel's ephemeral range: a port from it (what a bind to port 0 gives) may be
    taken as the source port of any connection made before the test binds it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    while True:
        port = random.randrange(10000, ephemeral)
        if port in _ports_given:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port


class Ternd:
    """One ternd process started from a policy file."""

    started = 0

    def __init__(self, workdir, policy_path, threads=2, extra_args=()):
        self.workdir = workdir
        self.policy_path = policy_path
        # One file per process: a restarted ternd must not see its predecessor's "ready:".
        Ternd.started += 1
        self.stderr_path = os.path.join(
            workdir, f"{os.path.basename(policy_path)}.{Ternd.started}.stderr")
        self.argv = [TERND, "--policy", policy_path, "--threads", str(threads),
                     *extra_args]
        self.proc = None

    def start(self, timeout=10):
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._stderr, stderr=self._stderr,
                                     cwd=self.workdir)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "ready:" in self.stderr():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"ternd exited with {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.02)
        raise RuntimeError(f"ternd not ready after {timeout}s:\n{self.stderr()}")

    def stderr(self):
        with open(self.stderr_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal ternd and wait; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self._stderr.close()

    def records(self, log_dir="log"):
        """Every outcome record written so far (plain .jsonl segments)."""
        import json
        out = []
        path = os.path.join(self.workdir, log_dir)
        if not os.path.isdir(path):
            return out
        for _ in range(20):
            try:
                out = []
                for name in sorted(os.listdir(path)):
                    if name.endswith(".jsonl") or name.endswith(".jsonl.open"):
                        with open(os.path.join(path, name)) as f:
                            out.extend(json.loads(line) for line in f if line.strip())
                return out
            except (FileNotFoundError, json.JSONDecodeError):
                # A segment was renamed (finished) or half-written while we read: read again.
                time.sleep(0.05)
        raise RuntimeError(f"could not read a stable set of records from {path}")


@pytest.fixture
def ports():
    """ports[0], ports[1], ... : free loopback ports, picked on first use."""
    class Ports(dict):
        def __missing__(self, i):
            self[i] = free_port()
            return self[i]
    return Ports()


@pytest.fixture
def ternd(tmp_path, ports, request):
    """Factory: ternd(policy_text, threads=2, start=True, extra_args=()) -> Ternd."""
    started = []

    def make(policy_text, threads=2, start=True, extra_args=()):
        text = policy_text.replace("{dir}", str(tmp_path))
        for i in range(10):
            key = "{port}" if i == 0 else "{port%d}" % (i + 1)
            if key in text:
                text = text.replace(key, str(ports[i]))
        path = tmp_path / f"policy{len(started)}.lua"
        path.write_text(text)
        t = Ternd(str(tmp_path), str(path), threads=threads, extra_args=extra_args)
        started.append(t)
        if start:
            t.start()
        return t

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for t in started:
        if t.proc is not None and t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()
        if failed and t.proc is not None:
            print(f"--- ternd stderr ({t.policy_path}) ---\n{t.stderr()[-5000:]}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def run_tern(*args, **kw):
    return subprocess.run([TERN, *args], capture_output=True, text=True, timeout=60, **kw)


def run_ternd(*args, **kw):
    return subprocess.run([TERND, *args], capture_output=True, text=True, timeout=60, **kw)


def listener_policy(extra="", hooks=""):
    """A policy with a spool, logs and one listener on {port}; extra listener options, extra code."""
    opts = (", " + extra) if extra else ""
    return ("tern.on('init', function()\n"
            "  tern.define_spool { path = '{dir}/spool' }\n"
            "  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }\n"
            "  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mx.test'"
            + opts + " }\n"
            "end)\n" + hooks)


@pytest.fixture
def dns_server():
    """Factory: dns_server(zones) -> a started DNSTestServer (dnsserver.py) on 127.0.0.1.

    It answers only the zones given (see dnsserver.py for the format); .address is
    "127.0.0.1:PORT" for tern.dns.configure, .count(name, qtype) the questions it saw,
    .set_zones(zones) swaps the data. Stopped at the end of the test.
    """
    from dnsserver import DNSTestServer
    started = []

    def make(zones):
        server = DNSTestServer(zones).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
