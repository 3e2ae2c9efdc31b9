# SPDX-License-Identifier: MIT
"""The `tern` commands over the HTTP API against a real ternd: queue-summary,
suspend/resume, bounce, inspect and inject print what the API says; `tern top`
runs in a tmux pane (send-keys, capture-pane) and shows queues and
suspensions as they change.
"""
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import TERN, run_tern
from sinks import py_sink, wait_records, of_type
from test_admin_api import inject, summary, wait_for
from test_http_inject import http_policy, post

__all__ = ["py_sink"]  # fixture, used by name


def tern(port, *args):
    r = run_tern(*args, "--endpoint", f"http://127.0.0.1:{port}")
    return r.returncode, r.stdout, r.stderr


def test_suspend_queue_summary_resume(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    ternd(http_policy())
    rc, out, err = tern(ports[0], "suspend", "--domain", "held.example", "--reason", "cli test",
                        "--duration", "30m")
    assert rc == 0, err
    sid = out.strip()
    uuid.UUID(sid)
    inject(ports[0], "held.example", 3)
    assert wait_for(lambda: summary(ports[0]).get("held.example", {}).get("suspended_count") == 3)
    rc, out, err = tern(ports[0], "queue-summary")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["QUEUE", "COUNT", "SUSPENDED", "OLDEST(s)"]
    api = summary(ports[0])["held.example"]
    assert [api["name"], str(api["count"]), str(api["suspended_count"])] == rows[1][:3]
    rc, out, err = tern(ports[0], "resume", sid)
    assert rc == 0, err
    assert len(sink.wait_messages(3, timeout=20)) == 3
    rc, out, err = tern(ports[0], "resume", sid)
    assert rc == 1 and "404" in err and sid in err


def test_bounce_inspect_inject(ternd, ports, py_sink, tmp_path):
    py_sink("127.0.0.1", ports[1])
    t = ternd(http_policy())
    rc, out, err = tern(ports[0], "suspend", "--domain", "x.example", "--reason", "hold")
    assert rc == 0, err
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: from the cli\r\n\r\nbody\r\n")
    rc, out, err = tern(ports[0], "inject", "--from", "a@sender.test", "--to", "b@x.example",
                        str(msg))
    assert rc == 0, err
    assert '"success_count":1' in out.replace(" ", "")
    rec = wait_records(t, of_type("Reception"), 1)[0]
    rc, out, err = tern(ports[0], "inspect", rec["id"])
    assert rc == 0 and '"recipient":"b@x.example"' in out.replace(" ", ""), (out, err)
    rc, out, err = tern(ports[0], "bounce", "--domain", "x.example", "--reason", "cli purge")
    assert rc == 0, err
    recs = wait_records(t, of_type("AdminBounce"), 1)
    assert len(recs) == 1 and "cli purge" in recs[0]["response"]["content"]
    rc, out, err = tern(ports[0], "suspend", "--reason", "no selector")
    assert rc == 2


def tmux(sock, *args):
    return subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True)


def wait_pane(sock, session, pred, timeout=20.0):
    """The pane's text once pred accepts it (or the last text after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = tmux(sock, "capture-pane", "-p", "-t", session).stdout
        if pred(text):
            return text
        time.sleep(0.2)
    return tmux(sock, "capture-pane", "-p", "-t", session).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_top_in_tmux(ternd, ports, py_sink, tmp_path):
    py_sink("127.0.0.1", ports[1])
    ternd(http_policy())
    sid = post(ports[0], {"domain": "held.example", "reason": "top test", "duration": "1h"},
               path="/api/admin/suspend/v1")[1]["id"]
    inject(ports[0], "held.example", 4)
    assert wait_for(lambda: summary(ports[0]).get("held.example", {}).get("suspended_count") == 4)
    session = "terntop"
    sock = str(tmp_path / "tmux.sock")  # a tmux server of this test's own
    cmd = f"{os.path.abspath(TERN)} top --endpoint http://127.0.0.1:{ports[0]}"
    assert tmux(sock, "new-session", "-d", "-s", session, "-x", "160", "-y", "40",
                cmd).returncode == 0
    try:
        text = wait_pane(sock, session, lambda t: "held.example" in t and sid in t)
        api = summary(ports[0])["held.example"]
        row = next(line.split() for line in text.splitlines() if line.startswith(api["name"]))
        assert row[1:3] == [str(api["count"]), str(api["suspended_count"])], text
        assert "top test" in text
        post(ports[0], {"id": sid}, path="/api/admin/suspend/v1", method="DELETE")
        text = wait_pane(sock, session, lambda t: sid not in t and "held.example" not in t)
        assert sid not in text and "held.example" not in text, text
        tmux(sock, "send-keys", "-t", session, "C-c")
        assert wait_for(lambda: tmux(sock, "has-session", "-t", session).returncode != 0,
                        timeout=10)
    finally:
        tmux(sock, "kill-server")


def test_suspend_ready_q_and_resume(ternd, ports, py_sink):
    from test_admin_api import pool_policy, site_of
    sink = py_sink("127.0.0.1", ports[1])
    t = ternd(pool_policy("{ name = 'ip-a', weight = 1 }"))
    site = site_of(t, ports[0], sink)
    rc, out, err = tern(ports[0], "suspend-ready-q", "--name", f"ip-a->{site}", "--reason", "rbl")
    assert rc == 0, err
    rid = out.strip()
    inject(ports[0], "held.example", 2)
    time.sleep(1.5)
    assert len(sink.messages) == 1
    rc, out, err = tern(ports[0], "resume", rid)
    assert rc == 0, err
    assert len(sink.wait_messages(3, timeout=20)) == 3
