# SPDX-License-Identifier: MIT
"""The ternd runtime: --check, --script, hook deadlines, shards, graceful stop."""
import os
import re
import signal
import smtplib
import socket
import time

from conftest import listener_policy, run_ternd


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_version():
    r = run_ternd("--version")
    assert r.returncode == 0 and r.stdout.startswith("ternd ")


def test_check_good_policy_binds_nothing(tmp_path, ports):
    port = ports[0]
    path = write(tmp_path, "good.lua", listener_policy().replace("{dir}", str(tmp_path))
                 .replace("{port}", str(port)))
    r = run_ternd("--check", "--policy", path)
    assert r.returncode == 0, r.stderr
    assert "policy OK" in r.stdout
    # Nothing was opened: no spool directory, no log directory, and the port is still free.
    assert not (tmp_path / "spool").exists()
    assert not (tmp_path / "log").exists()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_check_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.lua", "tern.on('init', function()\n  local x = = 1\nend)\n")
    r = run_ternd("--check", "--policy", path)
    assert r.returncode == 1
    assert f"{os.path.basename(path)}:2:" in r.stderr


def test_check_unknown_event_names_file_and_line(tmp_path):
    path = write(tmp_path, "ev.lua", "\n\ntern.on('smtp_server_mesage_received', function() end)\n")
    r = run_ternd("--check", "--policy", path)
    assert r.returncode == 1
    assert f"{os.path.basename(path)}:3: unknown event 'smtp_server_mesage_received'" in r.stderr


def test_check_erroring_init_names_file_and_line(tmp_path):
    path = write(tmp_path, "init.lua", "tern.on('init', function()\n\n  error('no spool for you')\nend)\n")
    r = run_ternd("--check", "--policy", path)
    assert r.returncode == 1
    assert f"{os.path.basename(path)}:3: no spool for you" in r.stderr


def test_check_bad_listener_option_names_it(tmp_path):
    path = write(tmp_path, "opt.lua", "tern.on('init', function()\n"
                 "  tern.start_esmtp_listener { listen = '127.0.0.1:25', colour = 'blue' }\nend)\n")
    r = run_ternd("--check", "--policy", path)
    assert r.returncode == 1
    assert f"{os.path.basename(path)}:2: unknown option 'colour' for tern.start_esmtp_listener" in r.stderr


def test_script_sleeps_run_concurrently(tmp_path):
    path = write(tmp_path, "sleepers.lua", """
tern.on('main', function(args)
  local start = tern.now()
  local tasks = {}
  for i = 1, 10 do tasks[i] = tern.spawn(function() tern.sleep(0.2); return i end) end
  for i = 1, 10 do assert(select(2, tasks[i]:join()) == i) end
  print(('took %.3f'):format(tern.now() - start))
  return tonumber(args[1])
end)
""")
    start = time.monotonic()
    r = run_ternd("--script", path, "--", "7")
    assert r.returncode == 7, r.stderr
    assert time.monotonic() - start >= 0.2
    # Timed inside the script: the process's start-up is no part of it, and may be slow on a
    # loaded box.
    elapsed = float(re.search(r"took ([0-9.]+)", r.stdout).group(1))
    assert elapsed < 1.0, f"10 sleeps of 0.2 s took {elapsed:.2f} s: they ran serially"


def test_script_error_exits_1_with_location(tmp_path):
    path = write(tmp_path, "boom.lua", "tern.on('main', function()\n  error('boom')\nend)\n")
    r = run_ternd("--script", path)
    assert r.returncode == 1
    assert f"{os.path.basename(path)}:2: boom" in r.stderr


def test_hook_deadline_cancels_and_ternd_keeps_running(ternd):
    t = ternd(listener_policy(hooks="""
tern.set_hook_timeout('300ms')
tern.on('smtp_server_ehlo', function(domain)
  if domain == 'slow.test' then tern.sleep(5) end
end)
"""))
    with smtplib.SMTP("127.0.0.1", _port(t)) as c:
        code, msg = c.ehlo("slow.test")
        assert code == 451 and msg.startswith(b"4.3.0")
    assert "hook smtp_server_ehlo timed out after 0.3s" in t.stderr()
    with smtplib.SMTP("127.0.0.1", _port(t)) as c:
        assert c.ehlo("fast.test")[0] == 250
    assert t.stop() == 0


def test_hook_error_gives_451_and_log_line(ternd):
    t = ternd(listener_policy(hooks="""
tern.on('smtp_server_mail_from', function(sender)
  local t = nil
  return t.field
end)
"""))
    with smtplib.SMTP("127.0.0.1", _port(t)) as c:
        c.ehlo("x.test")
        code, msg = c.mail("a@b.test")
        assert code == 451 and msg.startswith(b"4.3.0")
    err = t.stderr()
    assert "hook smtp_server_mail_from failed" in err and "attempt to index" in err
    assert "stack traceback" in err


def test_work_crosses_shards_by_mailbox(tmp_path):
    path = write(tmp_path, "shards.lua", """
tern.on('main', function()
  local here = tern.shard.id()
  local ok, there, tid = tern.shard.call(1, 'tern.testing', 'shard_probe')
  assert(ok, there)
  assert(here == 0, 'main runs on shard 0')
  assert(there == 1, 'the call ran on shard ' .. tostring(there))
  print('threads', tern.shard.thread_id(), tid)
  assert(tid ~= tern.shard.thread_id(), 'the call ran on another thread')
  return 0
end)
""")
    r = run_ternd("--threads", "2", "--script", path)
    assert r.returncode == 0, r.stdout + r.stderr


# Regression: the shard's loop ended as soon as no session was busy, before the queued
# 421 was written, so the idle client saw the connection close without a reply.
def test_sigterm_stops_within_2s_with_status_0_and_tells_idle_sessions(ternd):
    t = ternd(listener_policy())
    with smtplib.SMTP("127.0.0.1", _port(t)) as c:
        c.ehlo("x.test")
        start = time.monotonic()
        rc = t.stop(signal.SIGTERM)
        assert rc == 0
        assert time.monotonic() - start < 2.0
        # The idle session was told before ternd closed it (already in the socket buffer).
        assert c.getreply() == (421, b"4.3.2 Service shutting down")


def _port(t):
    text = open(t.policy_path).read()
    return int(text.split("listen = '127.0.0.1:")[1].split("'")[0])


def test_several_listeners_each_with_their_own_options(ternd, ports):
    t = ternd("""
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'one.test' }
  tern.start_esmtp_listener { listen = '[::1]:{port2}', hostname = 'two.test',
                              relay_hosts = { '10.0.0.0/8' } }
end)
""")
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        assert c.ehlo("x.test")[1].startswith(b"one.test")
        c.mail("a@b.test")
        assert c.rcpt("c@d.test")[0] == 250
    with smtplib.SMTP("::1", ports[1]) as c:
        assert c.ehlo("x.test")[1].startswith(b"two.test")
        c.mail("a@b.test")
        assert c.rcpt("c@d.test")[0] == 550
    assert t.stop() == 0
