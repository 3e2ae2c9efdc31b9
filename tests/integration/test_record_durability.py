# SPDX-License-Identifier: MIT
"""Regression: over kill -9 during delivery, 18% of Reception and Delivery
records were missing, some for messages already delivered and gone from the
spool, which could then never be reconciled.

A Reception record now reaches the kernel in the group commit that precedes
its 250, and a final record before the spool removal it explains, so a kill -9
(which the page cache survives) loses none. Each run: several clients inject,
ternd delivers to a sink (one recipient in five is refused, for Bounce
records), and ternd is killed with SIGKILL at a random moment. Then every
acknowledged id has its Reception record, and every message no longer in the
spool has its final record.
"""
import json
import os
import random
import signal
import smtplib
import threading
import time

import pytest

from conftest import run_tern
from sinks import port_free_on, queued_ids, ternd_sink

__all__ = ["ternd_sink"]  # fixture, used by name

CLIENTS = 4
FINAL = {"Delivery", "Bounce", "Expiration", "AdminBounce", "Suppressed"}


def policy(sink_port, sync):
    return ("tern.on('init', function()\n"
            "  tern.define_spool { path = '{dir}/spool' }\n"
            "  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s',"
            " sync = %s }\n"
            "  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',\n"
            "                              relay_hosts = { '127.0.0.0/8' } }\n"
            "end)\n"
            "tern.on('get_queue_config', function()\n"
            "  return tern.make_queue_config { mx_list = { '127.0.0.1:%d' },"
            " retry_interval = '1h' }\n"
            "end)\n" % ("true" if sync else "false", sink_port))


class Injector(threading.Thread):
    """One SMTP client sending one-recipient messages until the server goes away."""

    def __init__(self, port, n, stop):
        super().__init__(daemon=True)
        self.port, self.n, self.stop = port, n, stop
        self.acked = set()

    def run(self):
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as c:
                c.ehlo("client.test")
                seq = 0
                while not self.stop.is_set():
                    seq += 1
                    self.send_one(c, seq)
        except (OSError, smtplib.SMTPException):
            pass  # the kill: the message in flight was never acknowledged

    def send_one(self, c, seq):
        local = "permfail" if seq % 5 == 0 else "user"
        assert c.mail(f"sender{self.n}@client.test")[0] == 250
        code, text = c.rcpt(f"{local}-{self.n}-{seq}@dest.test")
        assert code == 250, text
        code, text = c.data(f"Subject: {self.n}/{seq}\r\n\r\n".encode() + b"x" * 512 + b"\r\n")
        assert code == 250, text
        self.acked.update(queued_ids(text))


def read_log_records(log_dir):
    """Every whole record in the segments, finished or left open by the kill."""
    out = []
    for name in sorted(os.listdir(log_dir)):
        if not (name.endswith(".jsonl") or name.endswith(".jsonl.open")):
            continue
        with open(os.path.join(log_dir, name)) as f:
            text = f.read()
        # A record torn by the kill is one that nobody was told about yet.
        out.extend(json.loads(line) for line in text.split("\n")[:-1] if line)
    return out


def delivered_any(log_dir):
    """Whether a final record is in the log yet (read while ternd runs)."""
    try:
        return any(r["type"] in FINAL for r in read_log_records(log_dir))
    except FileNotFoundError:  # a segment was finished (renamed) while we read: look again
        return False


def spooled_ids(spool):
    r = run_tern("spool", "list", "--spool", spool)
    assert r.returncode == 0, r.stderr
    return {json.loads(line)["id"] for line in r.stdout.splitlines()}


def run_and_kill(t, port, seed):
    stop = threading.Event()
    clients = [Injector(port, n, stop) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    # The kill's delay counts from the first final record, so that a slow start on a loaded
    # box does not leave nothing delivered (nothing to test) before the kill.
    log_dir, deadline = os.path.join(t.workdir, "log"), time.monotonic() + 30
    while sum(len(c.acked) for c in clients) < CLIENTS or not delivered_any(log_dir):
        assert time.monotonic() < deadline, "nothing delivered in 30 s:\n" + t.stderr()[-3000:]
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(1.0, 2.5))
    assert t.proc.poll() is None, "ternd died before the kill:\n" + t.stderr()[-3000:]
    t.proc.send_signal(signal.SIGKILL)
    assert t.proc.wait(10) == -signal.SIGKILL
    stop.set()
    for c in clients:
        c.join(15)
        assert not c.is_alive(), "a client hung after the kill"
    return set().union(*(c.acked for c in clients))


def check_records(tmp_path, acked):
    recs = read_log_records(str(tmp_path / "log"))
    received = {r["id"] for r in recs if r["type"] == "Reception"}
    final = {r["id"] for r in recs if r["type"] in FINAL}
    in_spool = spooled_ids(str(tmp_path / "spool"))
    assert len(acked) >= CLIENTS, f"only {len(acked)} messages acknowledged before the kill"
    assert final, "nothing was delivered before the kill: the run tests nothing"
    lost = sorted(acked - received)
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged ids have no Reception record, " \
                     f"e.g. {lost[:3]}"
    gone = (acked | received) - in_spool
    unexplained = sorted(gone - final)
    assert not unexplained, f"{len(unexplained)} of {len(gone)} messages left the spool " \
                            f"without a final record, e.g. {unexplained[:3]}"
    return len(acked), len(gone)


@pytest.mark.parametrize("seed", range(10))
def test_kill9_during_delivery_loses_no_record(ternd, ports, ternd_sink, tmp_path, seed):
    sink_port = port_free_on(["127.0.0.1"])
    ternd_sink("127.0.0.1", sink_port)
    t = ternd(policy(sink_port, sync=False))
    acked = run_and_kill(t, ports[0], seed)
    check_records(tmp_path, acked)


def test_synced_records_kill9(ternd, ports, ternd_sink, tmp_path):
    """configure_local_logs{ sync = true } keeps the same promise (and syncs each commit)."""
    sink_port = port_free_on(["127.0.0.1"])
    ternd_sink("127.0.0.1", sink_port)
    t = ternd(policy(sink_port, sync=True))
    acked = run_and_kill(t, ports[0], 42)
    check_records(tmp_path, acked)
