# SPDX-License-Identifier: MIT
"""Retention of local logs: configure_local_logs{ max_age, max_total_size } deletes the oldest
finished segments (JSON and format files alike), exactly those past the limit, with one log
line each; segments being written and other files are never touched."""
import os
import re
import time

from conftest import listener_policy
from sinks import send_one

HOUR = 3600


def segment(path, name, age, size=100):
    """A finished segment whose last write was age seconds ago."""
    os.makedirs(path, exist_ok=True)
    full = os.path.join(path, name)
    with open(full, "w") as f:
        f.write(("x" * 63 + "\n") * (size // 64) + "y" * (size % 64))
    t = time.time() - age
    os.utime(full, (t, t))
    return name


def policy(logs):
    return listener_policy().replace("max_segment_duration = '1s' }", logs + " }")


def removed_lines(t):
    return re.findall(r"retention: removed (\S+) \(finished (\d+) s ago", t.stderr())


def test_max_age_removes_exactly_the_older_segments(ternd, tmp_path):
    log, acct = str(tmp_path / "log"), str(tmp_path / "log" / "acct")
    old = [segment(log, "20250101-000000.000000.jsonl", 30 * HOUR),
           segment(log, "20250101-010000.000000.jsonl.zst", 2 * HOUR),
           segment(log, "20250101-020000.000000.jsonl", HOUR + 120)]
    young = [segment(log, "20250101-030000.000000.jsonl", HOUR - 120),
             segment(log, "20250101-040000.000000.jsonl", 60)]
    old_csv = segment(acct, "20250101-000000.000000.csv", 5 * HOUR)
    young_csv = segment(acct, "20250101-040000.000000.csv", 60)
    other = segment(log, "notes.txt", 30 * HOUR)
    t = ternd(policy("max_age = '1h', formats = { acct = { kind = 'pmta_csv' } }"))
    assert sorted(os.listdir(log)) == sorted(young + [other, "acct"])
    assert sorted(os.listdir(acct)) == [young_csv]
    lines = removed_lines(t)
    assert sorted(os.path.basename(p) for p, _ in lines) == sorted(old + [old_csv]), lines
    t.stop()


def test_max_total_size_removes_oldest_first(ternd, tmp_path):
    log = str(tmp_path / "log")
    names = [segment(log, "20250101-0%d0000.000000.jsonl" % i, 60 * (10 - i), size=1000)
             for i in range(5)]
    t = ternd(policy("max_total_size = '2500'"))
    assert sorted(os.listdir(log)) == names[3:]
    assert [os.path.basename(p) for p, _ in removed_lines(t)] == names[:3]
    t.stop()


def test_segments_age_out_while_running(ternd, ports, tmp_path):
    """Segments written by this ternd are deleted once older than max_age, as it runs."""
    log = str(tmp_path / "log")
    t = ternd(policy("max_segment_duration = '1s', max_age = '3s'"))
    send_one(ports[0], "s@o.test", ["a@x.test"], b"Subject: 1\r\n\r\nx\r\n")
    deadline = time.monotonic() + 10
    while not [n for n in os.listdir(log) if n.endswith(".jsonl")]:
        assert time.monotonic() < deadline, os.listdir(log)
        time.sleep(0.1)
    first = sorted(n for n in os.listdir(log) if n.endswith(".jsonl"))[0]
    # Later segments end by their duration; retention runs as each is finished.
    deadline = time.monotonic() + 30
    while first in os.listdir(log):
        assert time.monotonic() < deadline, (first, os.listdir(log), t.stderr()[-2000:])
        send_one(ports[0], "s@o.test", ["b@x.test"], b"Subject: 2\r\n\r\nx\r\n")
        time.sleep(0.5)
    # The line is logged just after the unlink: a look in between sees neither.
    deadline = time.monotonic() + 10
    while not any(os.path.basename(p) == first for p, _ in removed_lines(t)):
        assert time.monotonic() < deadline, t.stderr()[-2000:]
        time.sleep(0.05)
    assert any(os.path.basename(p) == first and int(age) >= 3 for p, age in removed_lines(t))
    t.stop()


STALLED_HOOK = """
tern.configure_log_hook { name = 'stalled', types = { 'Reception' }, batch_size = 10,
                          max_latency = '100ms', deliver = function(records) return false end }
"""


def test_segments_a_log_hook_has_not_read_are_kept(ternd, ports, tmp_path):
    """A hook that never acknowledges holds every segment from where it stopped: retention
    deletes nothing it still has to read, however old."""
    log = str(tmp_path / "log")
    t = ternd(policy("max_segment_duration = '1s', max_age = '2s'") + STALLED_HOOK)
    send_one(ports[0], "s@o.test", ["a@x.test"], b"Subject: 1\r\n\r\nx\r\n")
    deadline = time.monotonic() + 10
    while not [n for n in os.listdir(log) if n.endswith(".jsonl")]:
        assert time.monotonic() < deadline, os.listdir(log)
        time.sleep(0.1)
    first = sorted(n for n in os.listdir(log) if n.endswith(".jsonl"))[0]
    for i in range(8):  # well past max_age, with segments finishing meanwhile
        send_one(ports[0], "s@o.test", ["b@x.test"], b"Subject: 2\r\n\r\nx\r\n")
        time.sleep(0.5)
    assert first in os.listdir(log), (os.listdir(log), t.stderr()[-2000:])
    assert not removed_lines(t)
    t.stop()
