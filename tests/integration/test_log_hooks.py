# SPDX-License-Identifier: MIT
"""Log hooks with the webhook sender: Delivery and Bounce records of real
deliveries reach a local HTTP receiver from the local log segments, signed,
exactly once normally, at least once over a receiver outage and over a
restart of ternd (the cursor is durable and only moves on a 2xx).
"""
import os
import signal
import time
import urllib.request

import pytest

from sinks import chunks, inject, ternd_sink
from webhook import WebhookReceiver

__all__ = ["ternd_sink"]  # fixture, used by name

SECRET = "s3cret"
FINAL = ("Delivery", "Bounce")


def policy(sink_port, hook_port, batch_size=200, hook=None, compression="none", segment="1s"):
    """ternd relaying to the sink, with a log hook (by default: the webhook, Delivery and Bounce)."""
    hook = hook or ("tern.configure_log_hook { name = 'esp', types = { 'Delivery', 'Bounce' },\n"
                    "  batch_size = %d, max_latency = '200ms',\n"
                    "  deliver = webhook }\n" % batch_size)
    return ("tern.on('init', function()\n"
            "  tern.start_http_listener { listen = '127.0.0.1:{port4}' }\n"
            "  tern.define_spool { path = '{dir}/spool' }\n"
            "  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '%s',\n"
            "                              compression = '%s' }\n"
            "  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',\n"
            "                              relay_hosts = { '127.0.0.0/8' } }\n"
            "end)\n"
            "tern.on('get_queue_config', function()\n"
            "  return tern.make_queue_config { mx_list = { '127.0.0.1:%d' },"
            " retry_interval = '1h' }\n"
            "end)\n"
            "local log_hooks = require 'tern.log_hooks'\n"
            "local webhook = log_hooks.webhook { url = 'http://127.0.0.1:%d/hook', secret = '%s',\n"
            "                                    timeout = '5s' }\n"
            % (segment, compression, sink_port, hook_port, SECRET)) + hook


def recipients(n, tag):
    """n recipients, one in five refused by the sink (a Bounce record)."""
    return [f"{'permfail' if i % 5 == 0 else 'user'}-{tag}-{i}@dest.test" for i in range(n)]


def final_records(t):
    return {(r["id"], r["type"]) for r in t.records() if r["type"] in FINAL}


def wait_all(t, receiver, n, timeout):
    """Wait until the log holds n final records and the receiver has seen each; return both."""
    deadline = time.monotonic() + timeout
    while True:
        want = final_records(t)
        got = {(r["id"], r["type"]) for r in receiver.seen()}
        if len(want) == n and want <= got:
            return want, receiver.seen()
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(want)} final records of {n}, receiver has "
                                 f"{len(want & got)} of them ({receiver.posts} posts)")
        time.sleep(0.1)


def lag(port):
    """The hook's (records, seconds) lag from /metrics."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = {}
    for line in body.splitlines():
        for name in ("tern_log_hook_lag_records", "tern_log_hook_lag_seconds"):
            if line.startswith(name + '{hook="esp"}'):
                values[name] = float(line.split()[-1])
    return values.get("tern_log_hook_lag_records"), values.get("tern_log_hook_lag_seconds")


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def start(ternd, ternd_sink, ports):
    ternd_sink("127.0.0.1", ports[1])
    receiver = WebhookReceiver(ports[2], SECRET).start()
    t = ternd(policy(ports[1], ports[2]))
    return t, receiver


def test_every_record_exactly_once(ternd, ternd_sink, ports):
    t, receiver = start(ternd, ternd_sink, ports)
    try:
        ids = inject(ports[0], chunks(recipients(2000, "a"), 20))
        want, seen = wait_all(t, receiver, 2000, 120)
        assert {i for i, _ in want} == set(ids)
        assert len(seen) == len(want), "a record was delivered twice without any failure"
        assert {r["type"] for r in seen} == set(FINAL)
        assert receiver.bad_signatures == 0
    finally:
        receiver.stop()


def test_receiver_outage_loses_nothing(ternd, ternd_sink, ports):
    t, receiver = start(ternd, ternd_sink, ports)
    try:
        inject(ports[0], chunks(recipients(300, "before"), 20))
        wait_all(t, receiver, 300, 60)
        before = len(receiver.seen())
        receiver.stop()
        inject(ports[0], chunks(recipients(300, "during"), 20))
        time.sleep(30)  # the outage itself: ternd retries with a growing delay meanwhile
        assert len(receiver.seen()) == before
        records, seconds = lag(ports[3])
        assert records >= 300 and seconds >= 5, (records, seconds)
        receiver.start()
        inject(ports[0], chunks(recipients(300, "after"), 20))
        want, seen = wait_all(t, receiver, 900, 120)
        assert receiver.bad_signatures == 0
        dups = len(seen) - len({(r["id"], r["type"]) for r in seen})
        assert dups <= 200, f"{dups} duplicates: more than the batch in flight at the outage"
        assert "not delivered" in t.stderr()
        assert wait_for(lambda: lag(ports[3]) == (0, 0), 30), lag(ports[3])
    finally:
        receiver.stop()


def test_refused_batches_are_offered_again(ternd, ternd_sink, ports):
    t, receiver = start(ternd, ternd_sink, ports)
    try:
        receiver.status = 503
        inject(ports[0], chunks(recipients(50, "r"), 10))
        deadline = time.monotonic() + 30
        while receiver.posts < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.posts >= 2 and receiver.seen() == []
        receiver.status = 200
        wait_all(t, receiver, 50, 60)
        assert "answered 503" in t.stderr()
    finally:
        receiver.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_restart_of_ternd_loses_nothing(ternd, ternd_sink, ports, tmp_path, sig):
    ternd_sink("127.0.0.1", ports[1])
    receiver = WebhookReceiver(ports[2], SECRET).start()
    receiver.delay = 0.2  # batches of 20 trickle out, so the stop comes in the middle
    t = ternd(policy(ports[1], ports[2], batch_size=20))
    try:
        inject(ports[0], chunks(recipients(400, "one"), 20))
        deadline = time.monotonic() + 60
        while len(receiver.seen()) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        if sig == signal.SIGKILL:
            t.kill9()
        else:
            assert t.stop(sig) == 0
        acked = len(receiver.seen())
        assert 0 < acked < 400, "the stop did not come in the middle of the stream"
        assert os.path.exists(tmp_path / "log" / ".loghook-esp.cursor")
        receiver.delay = 0
        t2 = ternd(policy(ports[1], ports[2]))
        inject(ports[0], chunks(recipients(400, "two"), 20))
        want, seen = wait_all(t2, receiver, 800, 120)
        assert {(r["id"], r["type"]) for r in seen} >= want
        dups = len(seen) - len({(r["id"], r["type"]) for r in seen})
        assert dups <= 20, f"{dups} duplicates: more than the batch in flight at the stop"
        assert receiver.bad_signatures == 0
    finally:
        receiver.stop()


def test_filter_and_a_failing_deliver(ternd, ternd_sink, ports):
    """filter picks the records; a deliver that raises has its batch offered again."""
    ternd_sink("127.0.0.1", ports[1])
    receiver = WebhookReceiver(ports[2], SECRET).start()
    t = ternd(policy(ports[1], ports[2], hook=(
        "local calls = 0\n"
        "tern.configure_log_hook { name = 'bounces', max_latency = '100ms',\n"
        "  filter = function(r) return r.type == 'Bounce' end,\n"
        "  deliver = function(records, lines)\n"
        "    calls = calls + 1\n"
        "    if calls == 1 then error('first call fails') end\n"
        "    assert(#records == #lines and records[1].type == 'Bounce')\n"
        "    return webhook(records, lines)\n"
        "  end }\n")))
    try:
        inject(ports[0], chunks(recipients(100, "f"), 10))
        deadline = time.monotonic() + 60
        while len(receiver.seen()) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = receiver.seen()
        assert len(seen) == 20 and {r["type"] for r in seen} == {"Bounce"}
        assert "first call fails" in t.stderr()
        bounces = {r["id"] for r in t.records() if r["type"] == "Bounce"}
        assert {r["id"] for r in seen} == bounces
    finally:
        receiver.stop()


def test_reload_keeps_the_cursor(ternd, ternd_sink, ports, tmp_path):
    """A reloaded policy configures the hook again: it goes on from its cursor with the
    new deliver function, no record twice and none lost."""
    t, receiver = start(ternd, ternd_sink, ports)
    try:
        inject(ports[0], chunks(recipients(200, "old"), 20))
        wait_all(t, receiver, 200, 60)
        path = t.policy_path
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("batch_size = 200", "batch_size = 7"))
        t.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "policy reload: epoch 2 loaded" in t.stderr(), 30), t.stderr()
        posts = receiver.posts
        inject(ports[0], chunks(recipients(200, "new"), 20))
        want, seen = wait_all(t, receiver, 400, 60)
        assert len(seen) == len(want), "a record was delivered twice over the reload"
        assert receiver.posts - posts >= 200 // 7, "the reloaded batch_size is not in force"
    finally:
        receiver.stop()



def test_compressed_segments_over_a_kill(ternd, ternd_sink, ports, tmp_path):
    """zstd segments are followed while they grow, and a restart resumes inside one."""
    ternd_sink("127.0.0.1", ports[1])
    receiver = WebhookReceiver(ports[2], SECRET).start()
    receiver.delay = 0.2
    # A segment that outlives the test: with 1 s ones, the last could be finished (no
    # longer growing) before a slow hook has posted 40 records, and the kill would miss it.
    t = ternd(policy(ports[1], ports[2], batch_size=20, compression="zstd", segment="1h"))
    try:
        ids = set(inject(ports[0], chunks(recipients(300, "z1"), 20)))
        assert wait_for(lambda: len(receiver.seen()) >= 40, 60)
        t.kill9()
        before = {(r["id"], r["type"]) for r in receiver.seen()}
        assert any(n.endswith(".jsonl.zst.open") for n in os.listdir(tmp_path / "log"))
        seg, off = (tmp_path / "log" / ".loghook-esp.cursor").read_text().split()
        assert seg.endswith(".jsonl.zst") and int(off) > 0, (seg, off)
        receiver.delay = 0
        t2 = ternd(policy(ports[1], ports[2], batch_size=20, compression="zstd"))
        ids |= set(inject(ports[0], chunks(recipients(300, "z2"), 20)))
        # Every message has its final record at the receiver (a message delivered again
        # after the kill has two, with the same id).
        assert wait_for(lambda: {r["id"] for r in receiver.seen()} >= ids, 120), \
            (len(ids - {r["id"] for r in receiver.seen()}), len(receiver.seen()))
        seen = receiver.seen()
        assert {r["type"] for r in seen} == set(FINAL)
        # The restart resumed inside the compressed segment: what was acknowledged before
        # the kill is not sent again (the batch in flight at the kill may be).
        again = [r for r in seen if (r["id"], r["type"]) in before]
        assert len(again) <= len(before) + 20, (len(again), len(before))
        assert receiver.bad_signatures == 0
        t2.stop()
    finally:
        receiver.stop()
