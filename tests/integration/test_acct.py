# SPDX-License-Identifier: MIT
"""Accounting formats beside the JSON records: PowerMTA's acct CSV (header, columns, record
types d, b, t, r, RFC 4180 quoting) and per-type templates, written by a run with deliveries,
bounces, deferrals and expirations; bad format options are policy errors naming file:line;
local log settings follow a reload."""
import collections
import csv
import os
import re
import signal
import smtplib
import threading
import time

import pytest

from conftest import run_ternd
from sinks import (of_type, port_free_on, py_sink, read_records, send_one, ternd_sink,
                   wait_records)

__all__ = ["ternd_sink", "py_sink"]  # fixtures, used by name

PMTA_HEADER = ["type", "timeLogged", "timeQueued", "orig", "rcpt", "orcpt", "dsnAction",
               "dsnStatus", "dsnDiag", "dsnMta", "bounceCat", "srcType", "srcMta", "dlvType",
               "dlvSourceIp", "dlvDestinationIp", "dlvEsmtpAvailable", "dlvSize", "vmta", "jobId",
               "envId", "queue", "vmtaPool"]

POLICY = """
tern.dns.configure { servers = { '%(dns)s' }, timeout = '1s', attempts = 1 }
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.configure_local_logs {
    log_dir = '{dir}/log', max_segment_duration = '1s',
    formats = {
      acct = { kind = 'pmta_csv', types = { 'd', 'b', 't', 'r' },
               fields = { %(fields)s, 'header_X-Job', 'id' } },
      lines = { kind = 'template',
                template = { Delivery = 'D {{ id }} {{ rcpt }} {{ dlvDestinationIp }}',
                             Bounce = 'B {{ id }} {{ bounceCat }} {{ response.code }}' } },
    },
  }
  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',
                              relay_hosts = { '127.0.0.0/8' } }
end)
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1s', max_retry_interval = '1s', max_age = '3s' }
end)
tern.on('get_egress_path_config', function() return tern.make_egress_path { smtp_port = %(port)d } end)
"""

JOB = 'spring,"sale" 2026'


def read_dir(path, ext):
    """Every finished segment of path ending in ext, oldest first."""
    return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(ext)]


def test_acct_csv_counts_match_json_records(ternd, ports, dns_server, ternd_sink):
    addr = "127.0.0.22"
    port = port_free_on([addr])
    dns = dns_server({"r.test": {"MX": [[10, "mx.r.test."]]}, "mx.r.test": {"A": [addr]}})
    ternd_sink(addr, port)
    fields = ", ".join("'%s'" % f for f in PMTA_HEADER[1:])
    t = ternd(POLICY % {"dns": dns.address, "port": port, "fields": fields})
    body = ("Subject: acct\r\nX-Job: %s\r\n\r\nx\r\n" % JOB).encode()
    send_one(ports[0], "s@origin.test", ["permfail-1@r.test", "code-552-5.2.2@r.test",
                                         "tempfail-1@r.test", "ok@r.test", "ok2@r.test"], body)
    wait_records(t, of_type("Expiration"), 1, timeout=20)
    assert t.stop() == 0
    recs = read_records(t)
    json_counts = collections.Counter(r["type"] for r in recs)
    assert json_counts["TransientFailure"] >= 1 and json_counts["Expiration"] == 1

    rows = []
    files = read_dir(os.path.join(t.workdir, "log", "acct"), ".csv")
    assert files, os.listdir(os.path.join(t.workdir, "log", "acct"))
    for path in files:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == PMTA_HEADER + ["header_X-Job", "id"], path
            rows.extend(dict(zip(PMTA_HEADER + ["header_X-Job", "id"], row)) for row in reader)
    counts = collections.Counter(r["type"] for r in rows)
    assert counts["d"] == json_counts["Delivery"] == 2
    assert counts["b"] == json_counts["Bounce"] + json_counts["Expiration"] == 3
    assert counts["t"] == json_counts["TransientFailure"]
    assert counts["r"] == json_counts["Reception"] == 5
    assert set(counts) == {"d", "b", "t", "r"}

    # A value with a comma and quotes comes back as it was sent (RFC 4180 quoting). An
    # expiry is decided without the message's data in memory: no header there.
    by_id = {(r["id"], r["type"]): r for r in rows}
    expired = [r for r in recs if r["type"] == "Expiration"][0]
    assert all(r["header_X-Job"] == JOB and r["jobId"] == JOB for r in rows
               if r is not by_id[(expired["id"], "b")]), rows[0]
    assert by_id[(expired["id"], "b")]["bounceCat"] == "message-expired"
    for row in rows:
        if row["type"] == "r":
            assert row["srcType"] == "smtp" and row["srcMta"] == "127.0.0.1"
            assert row["dlvType"] == row["dlvDestinationIp"] == row["dsnMta"] == ""
    for rec in recs:
        if rec["type"] == "Bounce" and rec["recipient"] == "permfail-1@r.test":
            row = by_id[(rec["id"], "b")]
            assert row["bounceCat"] == "bad-mailbox"
            assert row["dsnAction"] == "failed"
            assert row["dsnStatus"] == "5.1.1"
            assert row["dsnDiag"].startswith("smtp;550 5.1.1 ")
            assert row["dlvDestinationIp"] == addr
            assert row["rcpt"] == "permfail-1@r.test" and row["orig"] == "s@origin.test"
        if rec["type"] == "Delivery":
            row = by_id[(rec["id"], "d")]
            assert row["dsnAction"] == "relayed" and row["dsnStatus"].startswith("2.")
            assert row["dlvType"] == "smtp" and row["dlvSize"] == str(rec["size"])
            assert row["queue"] == rec["queue"] and row["timeLogged"].endswith("+0000")

    lines = []
    for path in read_dir(os.path.join(t.workdir, "log", "lines"), ".log"):
        with open(path) as f:
            lines.extend(line.rstrip("\n") for line in f)
    want = sorted(["D %s %s %s" % (r["id"], r["recipient"], addr) for r in recs
                   if r["type"] == "Delivery"] +
                  ["B %s %s %d" % (r["id"], r["bounce_classification"], r["response"]["code"])
                   for r in recs if r["type"] == "Bounce"])
    assert sorted(lines) == want


@pytest.mark.parametrize("formats,message", [
    ("{ acct = { kind = 'csv' } }", "formats.acct: kind must be 'pmta_csv' or 'template'"),
    ("{ acct = { kind = 'pmta_csv', fields = { 'rcpt', 'nope' } } }",
     "formats.acct.fields[2]: unknown field 'nope'"),
    ("{ acct = { kind = 'pmta_csv', types = { 'd', 'x' } } }",
     "formats.acct.types[2]: 'x' is not a record type"),
    ("{ t = { kind = 'template', template = 'a {{ rcpt }} {{ oops }}' } }",
     "formats.t: unknown field '{{ oops }}' in template"),
    ("{ t = { kind = 'template', template = { Delivered = 'x' } } }",
     "formats.t: template must map record types"),
    ("{ ['a/b'] = { kind = 'pmta_csv' } }", "a format's name is letters"),
    ("{ acct = { kind = 'pmta_csv', colour = 1 } }", "unknown option 'colour'"),
])
def test_bad_format_is_a_policy_error(tmp_path, formats, message):
    path = tmp_path / "f.lua"
    path.write_text("tern.on('init', function()\n"
                    "  tern.define_spool { path = '%s/spool' }\n"
                    "  tern.configure_local_logs { log_dir = '%s/log', formats = %s }\n"
                    "end)\n" % (tmp_path, tmp_path, formats))
    r = run_ternd("--check", "--policy", str(path))
    assert r.returncode == 1, r.stdout
    assert "f.lua:3:" in r.stderr and message in r.stderr, r.stderr


RELOAD_POLICY = """
tern.dns.configure { servers = { '%(dns)s' }, timeout = '1s', attempts = 1 }
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.configure_local_logs { log_dir = '{dir}/log', %(logs)s }
  tern.start_esmtp_listener { listen = '127.0.0.1:%(smtp)d', hostname = 'mta.test',
                              relay_hosts = { '127.0.0.0/8' } }
end)
tern.on('get_egress_path_config', function() return tern.make_egress_path { smtp_port = %(sink)d } end)
"""


def sender(port, n, stop, sent, errors):
    """One connection sending message after message until stop."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
            i = 0
            while not stop.is_set():
                c.sendmail("s@origin.test", [f"u{n}-{i}@site.test"], b"Subject: r\r\n\r\nx\r\n")
                sent.append(f"u{n}-{i}@site.test")
                i += 1
    except Exception as e:  # noqa: BLE001 - the test reports whatever a session saw
        errors.append(f"connection {n}: {e!r}")


def wait_log(t, pattern, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, t.stderr()):
        assert t.proc.poll() is None, f"ternd exited ({t.proc.returncode}):\n{t.stderr()[-3000:]}"
        assert time.monotonic() < deadline, f"{pattern!r} not logged:\n{t.stderr()[-3000:]}"
        time.sleep(0.02)


def test_local_logs_follow_a_reload(ternd, ports, dns_server, py_sink):
    """Regression: configure_local_logs kept the first epoch's settings for good. Under
    injection, SIGHUP adds an acct format and shortens max_segment_duration, a second one
    removes the format again: each record is written once, in the JSON files and (while the
    format was configured) in the CSV, and the segments follow the new duration."""
    addr = "127.0.0.23"
    sink_port = port_free_on([addr])
    py_sink(addr, sink_port)
    dns = dns_server({"site.test": {"MX": [[10, "mx.site.test."]]}, "mx.site.test": {"A": [addr]}})
    values = {"dns": dns.address, "smtp": ports[0], "sink": sink_port,
              "logs": "max_segment_duration = '1h'"}
    t = ternd(RELOAD_POLICY % values)
    stop, sent, errors = threading.Event(), [], []
    threads = [threading.Thread(target=sender, args=(ports[0], n, stop, sent, errors))
               for n in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    values["logs"] = ("max_segment_duration = '1s', formats = { acct = { kind = 'pmta_csv', "
                      "types = { 'd', 'r' }, fields = { 'rcpt', 'id' } } }")
    with open(t.policy_path, "w") as f:
        f.write((RELOAD_POLICY % values).replace("{dir}", t.workdir))
    t.proc.send_signal(signal.SIGHUP)
    wait_log(t, r"policy reload: epoch 2 loaded")
    # Epoch 2's second finishes the segment epoch 1 opened, then one of its own: wait for both
    # (a fixed 2.5 s could end before the flusher's ticks on a loaded box).
    deadline = time.monotonic() + 15
    while len(read_dir(os.path.join(t.workdir, "log"), ".jsonl")) < 2:
        assert time.monotonic() < deadline, os.listdir(os.path.join(t.workdir, "log"))
        time.sleep(0.1)
    values["logs"] = "max_segment_duration = '1h'"
    with open(t.policy_path, "w") as f:
        f.write((RELOAD_POLICY % values).replace("{dir}", t.workdir))
    t.proc.send_signal(signal.SIGHUP)
    wait_log(t, r"policy reload: epoch 3 loaded")
    time.sleep(0.3)
    stop.set()
    for th in threads:
        th.join(60)
    assert not errors, errors
    wait_records(t, of_type("Delivery"), len(sent), timeout=30)
    assert t.stop() == 0

    recs = read_records(t)
    for kind in ("Reception", "Delivery"):
        got = collections.Counter(r["recipient"] for r in recs if r["type"] == kind)
        assert sorted(got) == sorted(sent) and set(got.values()) == {1}, kind
    # With epoch 1's hour only the stop would have finished a segment: epoch 2's second
    # ended the one epoch 1 opened and at least one more of its own.
    json_segments = read_dir(os.path.join(t.workdir, "log"), ".jsonl")
    assert len(json_segments) >= 3, json_segments

    acct = os.path.join(t.workdir, "log", "acct")
    assert not [n for n in os.listdir(acct) if n.endswith(".open")], os.listdir(acct)
    rows = []
    for path in read_dir(acct, ".csv"):
        with open(path, newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == ["type", "rcpt", "id"]
            rows.extend(tuple(row) for row in reader)
    assert len(rows) == len(set(rows)) > 0
    by_id = {(r["type"], r["id"]): r["recipient"] for r in recs}
    letters = {"d": "Delivery", "r": "Reception"}
    assert all(by_id[(letters[k], i)] == rcpt for k, rcpt, i in rows)
    # Only while the format was configured: not every record is there.
    assert len(rows) < len(recs)
