# SPDX-License-Identifier: MIT
"""ternd as a system daemon: the service manager's notify protocol (READY,
STATUS during spool recovery, STOPPING, WATCHDOG only while every shard's loop
turns), the privilege drop of --user and the refusal to run as plain root, and
a busy port.

Regression: a second ternd started on a port another process already listened
on shared it through SO_REUSEPORT, so two daemons with different spools
silently split the connections between them.

The notify socket is a datagram socket of the test's own (AF_UNIX, SOCK_DGRAM),
as systemd's would be; ternd learns it from NOTIFY_SOCKET.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import TERND
from test_watchdog import wait_spinning

# Spooled messages for the recovery test; override with TERN_TEST_RECOVERY_N on slow machines.
RECOVERY_N = int(os.environ.get("TERN_TEST_RECOVERY_N", "200000"))
RCPTS_PER_MESSAGE = 1000

POLICY = """
tern.on('init', function()
  tern.define_spool { path = '%(spool)s' }
  tern.start_esmtp_listener { listen = '127.0.0.1:%(port)s', hostname = 'mta.test',
                              relay_hosts = { '127.0.0.0/8' } }
end)
-- Nothing leaves: one attempt an hour per queue keeps the spool full for recovery.
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { max_message_rate = '1/h', retry_interval = '1h' }
end)
"""


class NotifySocket:
    """The manager's end: collects every datagram ternd sends, in order."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages = []

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return self.messages

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in self.messages):
                return True
            self.drain(0.1)
        return False

    def close(self):
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """factory(abstract): a socket, and NOTIFY_SOCKET naming it for the next ternd."""
    made = []

    def make(abstract=False, watchdog_usec=None):
        if abstract:
            name = "tern-test-%d-%d" % (os.getpid(), len(made))
            ns = NotifySocket("\0" + name)
            monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        else:
            path = str(tmp_path / ("notify%d.sock" % len(made)))
            ns = NotifySocket(path)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
        if watchdog_usec:
            monkeypatch.setenv("WATCHDOG_USEC", str(watchdog_usec))
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.close()


def pipelined_inject(port, n_messages, rcpts):
    """n_messages messages of rcpts recipients each, MAIL and every RCPT in one write."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        s.sendall(b"EHLO injector.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        for m in range(n_messages):
            cmds = [b"MAIL FROM:<sender@origin.test>\r\n"]
            cmds += [b"RCPT TO:<r%d-%d@held.test>\r\n" % (m, i) for i in range(rcpts)]
            s.sendall(b"".join(cmds) + b"DATA\r\n")
            for _ in range(rcpts + 1):
                assert f.readline().startswith(b"250")
            assert f.readline().startswith(b"354")
            s.sendall(b"Subject: held\r\n\r\nhello\r\n.\r\n")
            line = f.readline()
            while line.startswith(b"250-"):  # the queued ids span several lines
                line = f.readline()
            assert line.startswith(b"250 "), line


def policy(ternd, tmp_path, port, spool=None, extra=""):
    return ternd(POLICY % {"spool": spool or str(tmp_path / "spool"), "port": port} + extra,
                 start=False)


def test_notify_order_with_recovery_status(ternd, tmp_path, ports, notify_socket):
    t = policy(ternd, tmp_path, ports[0]).start()
    n_messages = max(1, RECOVERY_N // RCPTS_PER_MESSAGE)
    pipelined_inject(ports[0], n_messages, RCPTS_PER_MESSAGE)
    assert t.stop() == 0

    ns = notify_socket(abstract=True)
    t2 = policy(ternd, tmp_path, ports[0])
    t2.start(timeout=300)
    assert ns.wait_for("READY=1", 30)
    assert t2.stop() == 0
    ns.drain(0.5)
    kinds = [m.split("\n")[0].split("=")[0] for m in ns.messages]
    statuses = [m for m in ns.messages if m.startswith("STATUS=recovering")]
    assert statuses, ns.messages
    assert all("EXTEND_TIMEOUT_USEC=" in m for m in statuses)
    took = float(re.search(r"recovery: \d+ messages, \d+ quarantined, in ([\d.]+)s",
                           t2.stderr()).group(1))
    if took >= 1.0:  # long enough for progress reports, every 0.5 s
        assert any(re.match(r"STATUS=recovering: [1-9]\d* messages", m) for m in statuses), \
            statuses
        assert re.search(r"recovery: \d+ messages so far", t2.stderr())
    # In order: recovery progress, then READY=1, then STOPPING=1 last.
    assert kinds.index("READY") > kinds.index("STATUS")
    assert kinds[-1] == "STOPPING", kinds
    assert ns.messages.index(statuses[-1]) < kinds.index("READY")
    # The whole spool recovered.
    assert re.search(r"recovery: %d messages" % (n_messages * RCPTS_PER_MESSAGE), t2.stderr())


WEDGE = """
tern.set_hook_timeout('30s')
tern.on('smtp_server_rcpt_to', function(recipient, conn)
  if recipient:find('^wedge@') then
    while true do end
  end
end)
"""


def test_watchdog_keepalive_stops_while_a_shard_is_stuck(ternd, tmp_path, ports, notify_socket):
    ns = notify_socket(watchdog_usec=1000000)
    t = policy(ternd, tmp_path, ports[0], extra=WEDGE).start()
    ns.drain(2.5)
    assert sum(m == "WATCHDOG=1" for m in ns.messages) >= 3, ns.messages
    wedge = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
    f = wedge.makefile("rb")
    assert f.readline().startswith(b"220")
    wedge.sendall(b"EHLO wedge.test\r\nMAIL FROM:<a@origin.test>\r\nRCPT TO:<wedge@held.test>\r\n")
    # Once the hook loops: one keep-alive period for the stuck iteration to count as stuck,
    # then silence.
    wait_spinning(t.proc.pid)
    ns.drain(1.0)
    before = len(ns.messages)
    ns.drain(3.0)
    assert "WATCHDOG=1" not in ns.messages[before:], ns.messages[before:]
    wedge.close()
    t.proc.kill()
    t.proc.wait()


def test_second_ternd_on_a_busy_port_fails_naming_it(ternd, tmp_path, ports):
    policy(ternd, tmp_path, ports[0]).start()
    second = policy(ternd, tmp_path, ports[0], spool=str(tmp_path / "spool2"))
    with pytest.raises(RuntimeError, match="port %d is already in use" % ports[0]):
        second.start()
    assert second.proc.returncode != 0


def test_port_held_by_another_program_is_refused(ternd, tmp_path, ports):
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", ports[0]))
        other.listen()
        t = policy(ternd, tmp_path, ports[0])
        with pytest.raises(RuntimeError, match="127.0.0.1:%d: port %d is already in use"
                           % (ports[0], ports[0])):
            t.start()


# ---- privileges ---------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")


def free_privileged_port():
    for port in [25, 587, 465, *range(1000, 1024)]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no port below 1024 is free on 127.0.0.1")


def proc_ids(pid):
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = value.split()
    return ids


@pytest.fixture
def open_dir():
    """A directory any user may write, for the spool of a ternd that drops root."""
    d = tempfile.mkdtemp(prefix="tern-daemon-")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_user_drops_root_after_binding_a_privileged_port(ternd, tmp_path, open_dir):
    nobody = pwd.getpwnam("nobody")
    port = free_privileged_port()
    spool = os.path.join(open_dir, "spool")
    t = ternd(POLICY % {"spool": spool, "port": port}, start=False,
              extra_args=("--user", "nobody"))
    t.start()
    ids = proc_ids(t.proc.pid)
    assert ids["Uid"] == [str(nobody.pw_uid)] * 4, ids
    assert ids["Gid"] == [str(nobody.pw_gid)] * 4, ids
    assert ids["Groups"] == [], ids
    # Accepting still works, and the spool the user created is the user's.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert s.makefile("rb").readline().startswith(b"220")
    assert os.stat(spool).st_uid == nobody.pw_uid
    assert "running as user nobody" in t.stderr()
    assert t.stop() == 0


@needs_root
def test_root_without_user_is_refused(tmp_path, ports, monkeypatch):
    monkeypatch.delenv("TERN_ALLOW_ROOT", raising=False)
    path = tmp_path / "p.lua"
    path.write_text(POLICY % {"spool": str(tmp_path / "spool"), "port": ports[0]})
    r = subprocess.run([TERND, "--policy", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert "refusing to run as root" in r.stderr and "--user" in r.stderr
    assert not (tmp_path / "spool").exists()
    r = subprocess.run([TERND, "--policy", str(path), "--user", "no-such-user-here"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no-such-user-here" in r.stderr
    # --check binds nothing and runs no hook but init: root may check a policy.
    r = subprocess.run([TERND, "--check", "--policy", str(path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


@needs_root
def test_allow_root_runs_as_root(ternd, tmp_path, ports, monkeypatch):
    monkeypatch.delenv("TERN_ALLOW_ROOT", raising=False)
    t = ternd(POLICY % {"spool": str(tmp_path / "spool"), "port": ports[0]}, start=False,
              extra_args=("--allow-root",))
    t.start()
    assert proc_ids(t.proc.pid)["Uid"][0] == "0"
    assert t.stop() == 0


# ---- the systemd unit ---------------------------------------------------------------------------

UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "packaging", "ternd.service")


def test_unit_file_is_hardened_and_verifies(tmp_path):
    text = open(UNIT).read()
    settings = dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["User"] == "tern"
    assert settings["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert set(settings["ReadWritePaths"].split()) == {"/var/spool/tern", "/var/log/tern"}
    assert int(settings["LimitNOFILE"]) >= 262144
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit names the installed binary; point it at the one built here. Man pages are
    # checked once installed, not from the source tree.
    unit = tmp_path / "ternd.service"
    unit.write_text(text.replace("/usr/sbin/ternd", TERND))
    r = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
