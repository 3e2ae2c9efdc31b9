# SPDX-License-Identifier: MIT
"""Regression: a policy hook that never yields wedged its shard for good, and
SIGTERM then hung ternd too (LuaJIT runs no count hook inside compiled code,
so the hook deadline could not stop `while true do end`).

The watchdog first interrupts the hook (which works where the interpreter
runs: the call gets 451 and the shard goes on); when it cannot, it logs the
hook and its file:line and exits with status 75 so that a supervisor restarts
ternd; the durable spool keeps every acknowledged message. A stop never waits
for a wedged shard longer than its stop timeout.
"""
import os
import signal
import smtplib
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sinks import chunks, inject, mta_policy, port_free_on, read_records, ternd_sink

__all__ = ["ternd_sink"]  # a fixture, used by name

WEDGED_STATUS = 75
DEST = "127.0.0.72"

# The hook deadline is short so that the watchdog acts within seconds: it interrupts
# at deadline + 1 s and gives up 2 s later.
HOOKS = """
tern.set_hook_timeout('%s')
tern.on('get_egress_source', function(name)
  return tern.make_egress_source { name = name, source_address = '127.0.0.2',
                                   ehlo_domain = 'out.test' }
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'ip-a', retry_interval = '1s' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { smtp_port = %d }
end)
tern.on('smtp_server_rcpt_to', function(recipient, conn)
  if recipient:find('^wedge@') then
    while true do end
  end
  if recipient:find('^spawner@') then
    -- Each task is a nested resume that returns at once: the loop itself never ends.
    while true do tern.spawn(function() end) end
  end
  if recipient:find('^spin@') then
    -- The interpreter, not a compiled trace, runs this loop: the interrupt can stop it.
    jit.off(true, true)
    local n = 0
    while true do n = n + 1 end
  end
end)
"""


def hook_line(text):
    """The line on which the rcpt hook's function is defined, as ternd reports it."""
    return 1 + next(i for i, line in enumerate(text.splitlines())
                    if line.startswith("tern.on('smtp_server_rcpt_to'"))


def start_wedge(port, rcpt="wedge@down.test"):
    """A session whose RCPT runs the looping hook; returns the socket (no reply comes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"EHLO wedge.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"MAIL FROM:<a@origin.test>\r\n")
    assert f.readline().startswith(b"250")
    s.sendall(b"RCPT TO:<%s>\r\n" % rcpt.encode())
    return s


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_spinning(pid, cpu=0.3, timeout=15):
    """Wait until the process has burnt cpu seconds since the call: its looping hook runs.

    A fixed sleep is not enough on a loaded box, where the hook may not have begun yet."""
    start, deadline = cpu_seconds(pid), time.monotonic() + timeout
    while cpu_seconds(pid) - start < cpu:
        assert time.monotonic() < deadline, "the looping hook never ran"
        time.sleep(0.05)


def try_send(port, rcpt):
    """One message on a new connection with short timeouts: its spool id, or None."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=4) as c:
            c.ehlo("other.test")
            c.mail("a@origin.test")
            if c.rcpt(rcpt)[0] != 250:
                return None
            code, text = c.data(b"Subject: t\r\n\r\nhello\r\n")
            return text.decode().split()[-1] if code == 250 else None
    except (OSError, smtplib.SMTPException):
        return None


def wait_exit(t, timeout):
    try:
        return t.proc.wait(timeout)
    finally:
        t._stderr.close()


def wait_delivered(t, ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        done = {r["id"] for r in read_records(t) if r["type"] == "Delivery"}
        if set(ids) <= done or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def test_wedged_hook_exits_75_and_restart_delivers(ternd, ports, dns_server, ternd_sink):
    port = port_free_on([DEST])
    dns = dns_server({"down.test": {"MX": [[10, "mx.down.test."]]},
                      "mx.down.test": {"A": [DEST]}})
    policy = mta_policy(dns.address, HOOKS % ("3s", port))
    t = ternd(policy, threads=2)
    ids = inject(ports[0], chunks([f"r{i}@down.test" for i in range(20)], 2), threads=4)
    assert len(ids) == 20

    wedge = start_wedge(ports[0])
    wedged_at = time.monotonic()
    time.sleep(0.3)
    # Connections are spread over the shards by the kernel: several reach the healthy one.
    with ThreadPoolExecutor(12) as ex:
        served = [i for i in ex.map(lambda n: try_send(ports[0], f"late{n}@down.test"), range(12))
                  if i]
    assert served, "no connection was served while one shard was wedged"
    assert t.proc.poll() is None, "ternd gave up before the hook's deadline"

    status = wait_exit(t, 30)
    elapsed = time.monotonic() - wedged_at
    wedge.close()
    assert status == WEDGED_STATUS, t.stderr()[-3000:]
    # Deadline 3 s + 1 s grace before the interrupt + 2 s before giving up; slack for a busy host.
    assert 5.5 <= elapsed < 20, elapsed
    err = t.stderr()
    assert "interrupting it" in err
    line = [ln for ln in err.splitlines() if "wedged for" in ln]
    assert line, err[-3000:]
    assert "in hook smtp_server_rcpt_to at " in line[0]
    assert f"policy0.lua:{hook_line(policy)};" in line[0], line[0]
    assert f"exiting with status {WEDGED_STATUS}" in line[0]

    # The supervisor's restart: with the destination up, every acknowledged message arrives.
    accepted = ids + served
    sink = ternd_sink(DEST, port)
    t2 = ternd(policy.replace("'3s'", "'30s'"), threads=2)
    delivered = wait_delivered(t2, accepted)
    assert set(accepted) <= delivered, f"{len(set(accepted) - delivered)} not delivered"
    assert len(sink.wait_receptions(len(accepted))) >= len(accepted)
    assert t2.stop() == 0


def test_interruptible_hook_gets_451_and_shard_goes_on(ternd, ports, dns_server):
    dns = dns_server({})
    t = ternd(mta_policy(dns.address, HOOKS % ("1s", 9)), threads=1)
    with smtplib.SMTP("127.0.0.1", ports[0], timeout=20) as c:
        c.ehlo("spin.test")
        c.mail("a@origin.test")
        began = time.monotonic()
        code, text = c.rcpt("spin@down.test")
        assert code == 451 and text.startswith(b"4.3.0"), (code, text)
        assert time.monotonic() - began >= 1.5
        # The same session on the same (only) shard goes on.
        assert c.rcpt("ok@down.test")[0] == 250
    time.sleep(2.5)  # past the point where an uninterrupted hook ends the process
    assert t.proc.poll() is None
    err = t.stderr()
    assert "exceeded its deadline" in err
    assert "wedged" not in err
    assert t.stop() == 0


def test_sigterm_ends_ternd_with_a_wedged_shard(ternd, ports, dns_server):
    dns = dns_server({})
    # The default 30 s deadline: only the stop timeout can end this one in time.
    t = ternd(mta_policy(dns.address, HOOKS % ("30s", 9)), threads=2,
              extra_args=("--stop-timeout", "1"))
    wedge = start_wedge(ports[0])
    wait_spinning(t.proc.pid)
    began = time.monotonic()
    t.proc.send_signal(signal.SIGTERM)
    status = wait_exit(t, 15)
    elapsed = time.monotonic() - began
    wedge.close()
    assert status == WEDGED_STATUS, t.stderr()[-3000:]
    # Stop timeout 1 s, plus 1 s for shards to notice it, plus slack for a loaded host.
    assert elapsed < 6, elapsed
    err = t.stderr()
    assert "did not stop within the stop timeout (1s)" in err and "smtp_server_rcpt_to" in err, err[-3000:]
    assert "wedged for" not in err


CONFIG_HOOK = """
tern.set_hook_timeout('1s')
tern.on('get_queue_config', function(domain, tenant, campaign)
  while domain == 'loop.test' do end
  return tern.make_queue_config { egress_pool = 'ip-a' }
end)
"""


def test_wedged_config_hook_is_held_to_the_hook_deadline(ternd, ports, dns_server):
    # Memoized config hooks run synchronously and had no deadline of their own.
    dns = dns_server({})
    policy = mta_policy(dns.address, CONFIG_HOOK)
    t = ternd(policy, threads=2)
    try_send(ports[0], "someone@loop.test")
    status = wait_exit(t, 20)
    assert status == WEDGED_STATUS, t.stderr()[-3000:]
    line = next(ln for ln in t.stderr().splitlines() if "wedged for" in ln)
    defined = 1 + next(i for i, ln in enumerate(policy.splitlines())
                       if ln.startswith("tern.on('get_queue_config'"))
    assert "in hook get_queue_config at " in line and f"policy0.lua:{defined};" in line, line


def test_hook_looping_over_nested_resumes_is_caught(ternd, ports, dns_server):
    # Each nested resume used to make the looping hook look freshly resumed.
    dns = dns_server({})
    t = ternd(mta_policy(dns.address, HOOKS % ("1s", 9)), threads=1)
    wedge = start_wedge(ports[0], "spawner@down.test")
    wedge.settimeout(15)
    try:
        reply = wedge.recv(512)
    except OSError:
        reply = b""
    wedge.close()
    # Where the interrupt lands (the loop, or a task it started) decides between a 451 for
    # this transaction and ending the process; either way the watchdog acted in time.
    if reply.startswith(b"451 4.3.0"):
        assert t.proc.poll() is None
    else:
        assert wait_exit(t, 15) == WEDGED_STATUS, (reply, t.stderr()[-3000:])
    assert "interrupting it" in t.stderr()


@pytest.mark.parametrize("policy", [
    # Regression: init ran before the shards and the watchdog, with the stop signals blocked.
    "tern.on('init', function() while true do end end)\n",
    # Regression: so did the policy file's top level, loaded before init.
    "while true do end\n",
], ids=["init", "top-level"])
def test_sigterm_ends_a_policy_that_never_returns(ternd, policy):
    t = ternd(policy, start=False)
    proc = subprocess.Popen(t.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=t.workdir)
    try:
        wait_spinning(proc.pid)
        assert proc.poll() is None
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == -signal.SIGTERM
        assert time.monotonic() - began < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
