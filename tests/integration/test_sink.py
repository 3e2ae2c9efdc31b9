# SPDX-License-Identifier: MIT
"""policy-examples/sink.lua, run as shipped: scripted replies by local part,
a Reception record per accepted message with the sender's address, and an
empty spool afterwards (every message is null-queued).
"""
import json
import os
import smtplib
import time

import pytest

from conftest import ROOT, Ternd, free_port, run_tern

SINK = os.path.join(ROOT, "policy-examples", "sink.lua")


@pytest.fixture
def sink(tmp_path, monkeypatch, request):
    """Factory: sink(host) starts sink.lua listening on host:free port; returns (ternd, port).

    TERN_SINK_DIR is made beforehand unless make_dir=False.
    """
    started = []

    def start(host, make_dir=True):
        if make_dir:
            (tmp_path / "sink").mkdir(exist_ok=True)
        port = free_port(host)
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        monkeypatch.setenv("TERN_SINK_LISTEN", listen)
        monkeypatch.setenv("TERN_SINK_DIR", str(tmp_path / "sink"))
        monkeypatch.setenv("TERN_SINK_HOSTNAME", "sink.example")
        t = Ternd(str(tmp_path), SINK)
        started.append(t)
        t.start()
        return t, port

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(f"--- sink stderr ---\n{t.stderr()[-5000:]}")


def receptions(t, n, tmp_path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            recs = [r for r in t.records("sink/log") if r["type"] == "Reception"]
        except json.JSONDecodeError:
            recs = []  # a line caught half-written
        if len(recs) >= n or time.monotonic() > deadline:
            assert len(recs) == n, f"{len(recs)} Reception records, wanted {n}"
            return {r["id"]: r for r in recs}
        time.sleep(0.05)


def queued_ids(text):
    head = b"2.0.0 OK queued as "
    assert text.startswith(head), text
    return text[len(head):].decode().split()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_sink_scripted_replies_and_records(sink, tmp_path, host):
    t, port = sink(host)
    with smtplib.SMTP(host, port) as c:
        code, caps = c.ehlo("client.test")
        assert caps.startswith(b"sink.example Hello client.test")
        assert b"\nSIZE 67108864\n" in caps
        assert c.mail("s@client.test")[0] == 250
        assert c.rcpt("tempfail-1@example.net") == \
            (451, b"4.3.0 temporary failure requested by recipient")
        assert c.rcpt("permfail.user@example.net") == \
            (550, b"5.1.1 permanent failure requested by recipient")
        assert c.rcpt("code-452-4.2.2-full@example.net") == (452, b"4.2.2 scripted reply")
        assert c.rcpt("code-521-5.3.2-x@example.net") == (521, b"5.3.2 scripted reply")
        assert c.rcpt("ok1@example.net") == (250, b"2.1.5 Recipient OK")
        assert c.rcpt("ok2@example.org") == (250, b"2.1.5 Recipient OK")
        code, text = c.data(b"Subject: sink\r\n\r\nx\r\n")
        assert code == 250
        ids = queued_ids(text)
        assert len(ids) == 2, "only the accepted recipients get messages"
        assert c.mail("s@client.test")[0] == 250
        assert c.rcpt("tempfail@example.net")[0] == 451
        assert c.docmd("DATA") == (554, b"5.5.1 No valid recipients")
    recs = receptions(t, 2, tmp_path)
    assert set(recs) == set(ids)
    assert {r["recipient"] for r in recs.values()} == {"ok1@example.net", "ok2@example.org"}
    for r in recs.values():
        assert r["peer_address"] == host
        assert r["sender"] == "s@client.test"
        assert r["queue"] == "null"
        assert r["meta"] == {"queue": "null"}
    listed = run_tern("spool", "list", "--spool", str(tmp_path / "sink" / "spool"))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "", "the sink left messages in its spool"


def test_sink_accepts_many_and_keeps_nothing(sink, tmp_path):
    t, port = sink("127.0.0.1")
    ids = []
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.ehlo("client.test")
        for i in range(20):
            assert c.mail(f"s{i}@client.test")[0] == 250
            assert c.rcpt(f"r{i}@example.net")[0] == 250
            code, text = c.data(b"Subject: n\r\n\r\n" + (b"y" * 510 + b"\r\n") * 8)
            assert code == 250
            ids += queued_ids(text)
    assert len(set(ids)) == 20
    assert set(receptions(t, 20, tmp_path)) == set(ids)
    listed = run_tern("spool", "list", "--spool", str(tmp_path / "sink" / "spool"))
    assert listed.returncode == 0 and listed.stdout == ""
    assert t.stop() == 0


def test_sink_dir_need_not_exist(sink, tmp_path):
    # sink.lua defaults TERN_SINK_DIR to ./var/sink, which a fresh checkout does not have:
    # the spool and log directories under it must be made, parents included.
    t, port = sink("127.0.0.1", make_dir=False)
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.ehlo("client.test")
        assert c.mail("s@client.test")[0] == 250
        assert c.rcpt("r@example.net")[0] == 250
        assert c.data(b"Subject: d\r\n\r\nx\r\n")[0] == 250
    assert (tmp_path / "sink" / "spool").is_dir()
    assert len(receptions(t, 1, tmp_path)) == 1
