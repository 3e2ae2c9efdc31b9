# SPDX-License-Identifier: MIT
"""Nothing acknowledged is lost: 250 only after the message is durable.

Eight client threads inject over SMTP as fast as ternd answers; at a random
moment ternd is killed with SIGKILL. Every id that was given in a "250 2.0.0
OK queued as ..." reply must then be in the spool, with the recipient it was
given for, both as `tern spool list` sees it and after ternd has restarted on
the same spool. Each message has two recipients, so each 250 names two ids.

Regression: the test used to swallow every client error and never checked
that ternd was alive before the kill or died of it, so a ternd that crashed
(or refused every message) before the kill passed. Now a client's failure
before the kill fails the test, ternd must be running when the kill is sent
and must die of SIGKILL.

A kill -9 cannot find a missing fsync (the page cache survives it): that is
test_powerloss.py's job.
"""
import random
import signal

import pytest

from conftest import listener_policy
from durability import HOLD, acked_ids, assert_all_present, run_injectors, spool_list

CLIENTS = 8


def kill9_alive(t):
    """SIGKILL ternd, which must be running until then and must die of it."""
    assert t.proc.poll() is None, f"ternd exited with {t.proc.returncode} before the kill"
    t.kill9()
    assert t.proc.returncode == -signal.SIGKILL, f"ternd exited with {t.proc.returncode}"


@pytest.mark.parametrize("seed", range(5))
def test_kill9_loses_no_acknowledged_message(ternd, ports, tmp_path, seed):
    policy = listener_policy("relay_hosts = { '127.0.0.1' }", HOLD)
    t = ternd(policy)
    clients, _ = run_injectors(ports[0], CLIENTS, random.Random(seed).uniform(0.3, 1.5),
                               kill=lambda: kill9_alive(t))
    acked = acked_ids(clients)
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
