# SPDX-License-Identifier: MIT
"""Nothing acknowledged is lost: 250 only after the message is durable.

Eight client threads inject over SMTP as fast as ternd answers; at a random
moment ternd is killed with SIGKILL. Every id that was given in a "250 2.0.0
OK queued as ..." reply must then be in the spool, with the recipient it was
given for, both as `tern spool list` sees it and after ternd has restarted on
the same spool. Each message has two recipients, so each 250 names two ids.
"""
import json
import random
import smtplib
import threading
import time

import pytest

from conftest import listener_policy, run_tern

CLIENTS = 8


# Keep received messages in the spool for the checks: they are routed to a loopback port
# where nothing listens, fail transiently and wait an hour for their retry.
HOLD = ("tern.on('get_queue_config', function()\n"
        "  return tern.make_queue_config { retry_interval = '1h',\n"
        "                                  mx_list = { '127.0.0.1:{port9}' } }\nend)\n")


class Injector(threading.Thread):
    """One SMTP client sending two-recipient messages until the server goes away."""

    def __init__(self, port, n, stop):
        super().__init__(daemon=True)
        self.port, self.n, self.stop = port, n, stop
        self.acked = {}  # id -> recipient
        self.replies = 0

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
        rcpts = [f"c{self.n}-{seq}-{x}@example.net" for x in ("a", "b")]
        c.mail(f"sender{self.n}@client.test")
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, text
        code, text = c.data(f"Subject: {self.n}/{seq}\r\n\r\n".encode() + b"x" * 512 + b"\r\n")
        assert code == 250, text
        head = b"2.0.0 OK queued as "
        assert text.startswith(head), text
        ids = text[len(head):].decode().split()
        assert len(ids) == 2 and ids[0] != ids[1], text
        self.acked.update(zip(ids, rcpts))
        self.replies += 1


def spool_list(spool):
    r = run_tern("spool", "list", "--spool", spool)
    assert r.returncode == 0, r.stderr
    return {m["id"]: m for m in map(json.loads, r.stdout.splitlines())}


def assert_all_present(acked, spooled):
    missing = sorted(set(acked) - set(spooled))
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged ids lost, e.g. {missing[:3]}"
    for i, rcpt in acked.items():
        assert spooled[i]["recipient"] == rcpt, (i, spooled[i])


@pytest.mark.parametrize("seed", range(5))
def test_kill9_loses_no_acknowledged_message(ternd, ports, tmp_path, seed):
    policy = listener_policy("relay_hosts = { '127.0.0.1' }", HOLD)
    t = ternd(policy)
    stop = threading.Event()
    clients = [Injector(ports[0], n, stop) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    time.sleep(random.Random(seed).uniform(0.3, 1.5))
    t.kill9()
    stop.set()
    for c in clients:
        c.join(15)
        assert not c.is_alive(), "a client hung after the kill"
    acked = {}
    for c in clients:
        acked.update(c.acked)
    assert sum(c.replies for c in clients) * 2 == len(acked), "an id was given twice"
    assert len(acked) >= 2 * CLIENTS, f"only {len(acked)} ids acknowledged before the kill"

    spool = str(tmp_path / "spool")
    assert_all_present(acked, spool_list(spool))

    # ternd recovers the same spool and keeps every message. Its own stderr file: the
    # harness waits for "ready:" in it, and the killed ternd's file already says so.
    again = ternd(policy, start=False)
    again.stderr_path = str(tmp_path / "ternd-restarted.stderr")
    again.start()
    assert again.stop() == 0
    assert_all_present(acked, spool_list(spool))
