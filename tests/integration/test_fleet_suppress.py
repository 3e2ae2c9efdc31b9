# SPDX-License-Identifier: MIT
"""The suppression list shared by a fleet: ternd nodes, one redis-server and a sink on loopback.

A suppression added through one node's admin API refuses the recipient at RCPT on the others
within two seconds, and its removal lets it through again as fast; a change made while Redis is
away waits in its node's spool (across a kill -9 of that node) and reaches the others once Redis
is back; a node restarted (SIGTERM or kill -9) resumes the fleet's stream from the last change it
applied instead of reading it again; a hard bounce on one node suppresses on the others.
"""
import os
import re
import smtplib
import time
import urllib.request

from conftest import free_port
from sinks import py_sink
from test_fleet import metric, redis_server, wait_for
from test_http_inject import post

__all__ = ["py_sink", "redis_server"]  # fixtures, used by name

API = "/api/admin/suppression/v1"


class Node:
    """One ternd of the fleet, with an SMTP and an HTTP listener; restartable on the same spool."""

    def __init__(self, ternd, tmp_path, name, redis_port, sink_port):
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        self.ternd, self.name = ternd, name
        self.http, self.smtp = free_port(), free_port()
        self.policy = (
            "tern.on('init', function()\n"
            f"  tern.define_spool {{ path = '{d}/spool' }}\n"
            f"  tern.configure_local_logs {{ log_dir = '{d}/log', max_segment_duration = '1s' }}\n"
            f"  tern.configure_redis {{ servers = {{ '127.0.0.1:{redis_port}' }},\n"
            f"                         node_id = '{name}', timeout = '2s' }}\n"
            f"  tern.start_http_listener {{ listen = '127.0.0.1:{self.http}' }}\n"
            f"  tern.start_esmtp_listener {{ listen = '127.0.0.1:{self.smtp}',\n"
            f"                              hostname = '{name}.test', relay_hosts = {{ '127.0.0.0/8' }} }}\n"
            "end)\n"
            "tern.on('get_queue_config', function()\n"
            "  return tern.make_queue_config { retry_interval = '1h',\n"
            f"                                  mx_list = {{ '127.0.0.1:{sink_port}' }} }}\n"
            "end)\n")
        self.proc = ternd(self.policy)

    def stop(self, kill9=False):
        if kill9:
            self.proc.kill9()
        else:
            assert self.proc.stop() == 0

    def start(self):
        self.proc = self.ternd(self.policy)

    def restart(self):
        self.stop()
        self.start()

    def metric(self, name):
        return metric(self.http, name)

    def rcpt(self, address):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=10) as c:
            c.ehlo("injector.test")
            assert c.mail("news@sender.test")[0] == 250
            return c.rcpt(address)

    def refuses(self, address):
        code, text = self.rcpt(address)
        assert code in (250, 550), (code, text)
        return code == 550 and text.startswith(b"5.7.1")

    def add(self, address):
        status, reply = post(self.http, {"address": address, "reason": "manual"}, path=API)
        assert status == 200, reply

    def remove(self, address):
        status, reply = post(self.http, {"address": address}, path=API, method="DELETE")
        assert status == 200, reply


def start_fleet(ternd, tmp_path, redis, n=3, sink_port=None):
    sink_port = sink_port or free_port()
    nodes = [Node(ternd, tmp_path, f"node{i}", redis.port, sink_port) for i in range(n)]
    assert wait_for(lambda: all(x.metric("tern_fleet_nodes") == n for x in nodes), 10)
    return nodes


def test_an_add_and_a_removal_reach_every_node_within_2s(ternd, tmp_path, redis_server):
    redis = redis_server()
    a, b, c = start_fleet(ternd, tmp_path, redis)
    assert not b.refuses("gone@r.test") and not c.refuses("gone@r.test")

    a.add("Gone@R.test")
    t0 = time.monotonic()
    assert wait_for(lambda: b.refuses("gone@r.test") and c.refuses("gone@r.test"), 2.0), \
        "the suppression did not reach the other nodes within 2 s"
    print(f"add reached both other nodes in {time.monotonic() - t0:.3f} s")
    assert a.refuses("gone@r.test")
    # A node's listing holds entries only, not its bookkeeping (last id, pending changes).
    for x in (a, b):
        status, listed = post(x.http, b"", path=API, method="GET")
        assert status == 200 and [e["address"] for e in listed["entries"]] == ["gone@r.test"], listed
    # The fleet's copy: one change in the stream, the entry in the hash under "tenant address".
    assert redis.cli("XLEN", "tern:suppress") == "1"
    assert '"address":"gone@r.test"' in redis.cli("HGET", "tern:suppress:all", "* gone@r.test")

    a.remove("gone@r.test")
    t0 = time.monotonic()
    assert wait_for(lambda: not any(x.refuses("gone@r.test") for x in (a, b, c)), 2.0), \
        "the removal did not reach the other nodes within 2 s"
    print(f"removal reached both other nodes in {time.monotonic() - t0:.3f} s")
    assert redis.cli("HEXISTS", "tern:suppress:all", "* gone@r.test") == "0"
    # Applied changes are not published again: two changes in all, each applied twice.
    assert redis.cli("XLEN", "tern:suppress") == "2"
    assert b.metric("tern_fleet_suppress_applied_total") == 2
    assert c.metric("tern_fleet_suppress_applied_total") == 2
    # a counts its push when Redis's reply reaches it, which may be after b and c applied it.
    assert wait_for(lambda: a.metric("tern_fleet_suppress_pushed_total") == 2, 10)
    assert a.metric("tern_fleet_suppress_pending") == 0
    assert b.metric("tern_fleet_suppress_lag_seconds") < 2
    # Each of the family is documented.
    with urllib.request.urlopen(f"http://127.0.0.1:{b.http}/metrics", timeout=10) as r:
        names = set(re.findall(r"^(tern_fleet_suppress_\w+) ", r.read().decode(), re.M))
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "metrics.md")).read()
    assert len(names) == 4 and all(f"`{n}`" in doc for n in names), names


def test_a_change_made_while_redis_is_away_reaches_the_others(ternd, tmp_path, redis_server):
    redis = redis_server()
    a, b, c = start_fleet(ternd, tmp_path, redis)
    a.add("before@r.test")
    # Every node must hold it before Redis goes: c removes it while Redis is away.
    assert wait_for(lambda: b.refuses("before@r.test") and c.refuses("before@r.test"), 10)

    redis.stop()
    assert wait_for(lambda: a.metric("tern_redis_up") == 0, 10)
    a.add("during@r.test")
    c.remove("before@r.test")
    assert a.refuses("during@r.test") and not c.refuses("before@r.test")
    assert a.metric("tern_fleet_suppress_pending") == 1
    # The change waits in the spool, not in memory: it outlives its node's kill -9.
    a.stop(kill9=True)
    a.start()
    assert wait_for(lambda: a.metric("tern_fleet_suppress_pending") == 1, 10)
    assert wait_for(lambda: b.metric("tern_fleet_suppress_lag_seconds") > 1, 5)

    redis_server(port=redis.port)
    assert wait_for(lambda: b.refuses("during@r.test") and c.refuses("during@r.test"), 15), \
        "a suppression made while Redis was away did not reach the others"
    assert wait_for(lambda: not a.refuses("before@r.test") and not b.refuses("before@r.test"), 15), \
        "a removal made while Redis was away did not reach the others"
    # A node drops its pending change on Redis's reply, which may come after the others applied it.
    assert wait_for(lambda: a.metric("tern_fleet_suppress_pending") == 0
                    and c.metric("tern_fleet_suppress_pending") == 0, 10)


def test_a_long_outages_backlog_reaches_the_others_in_pages(ternd, tmp_path, redis_server):
    redis = redis_server()
    a, b = start_fleet(ternd, tmp_path, redis, n=2)
    redis.stop()
    assert wait_for(lambda: a.metric("tern_redis_up") == 0, 10)
    n = 700  # more than one page (512) of pushes, and of stream reads
    for i in range(n):
        a.add(f"backlog{i}@r.test")
    assert wait_for(lambda: a.metric("tern_fleet_suppress_pending") == n, 5)
    redis_server(port=redis.port)
    t0 = time.monotonic()
    assert wait_for(lambda: b.metric("tern_fleet_suppress_applied_total") == n, 20), \
        b.metric("tern_fleet_suppress_applied_total")
    print(f"{n} changes reached the other node {time.monotonic() - t0:.2f} s after Redis started")
    assert b.refuses("backlog0@r.test") and b.refuses(f"backlog{n - 1}@r.test")
    # a drops its last page on Redis's reply, which may come after b read the stream.
    assert wait_for(lambda: a.metric("tern_fleet_suppress_pending") == 0, 10)
    assert redis.cli("HLEN", "tern:suppress:all") == str(n)


def test_a_restarted_node_resumes_from_its_last_id(ternd, tmp_path, redis_server):
    redis = redis_server()
    a, b = start_fleet(ternd, tmp_path, redis, n=2)
    for i in range(3):
        a.add(f"first{i}@r.test")
    assert wait_for(lambda: b.metric("tern_fleet_suppress_applied_total") == 3, 10)

    for kill9 in (False, True):
        b.stop(kill9)
        a.add(f"while-down-{kill9}@r.test")
        b.start()
        assert wait_for(lambda: b.refuses(f"while-down-{kill9}@r.test"), 15)
        # Only what came after its last id: a node reading the stream again would count 4 or 5.
        assert b.metric("tern_fleet_suppress_applied_total") == 1, f"kill9={kill9}"
        assert b.refuses("first0@r.test")


def test_a_hard_bounce_on_one_node_suppresses_on_the_others(ternd, tmp_path, redis_server,
                                                            py_sink):
    redis = redis_server()
    sink_port = free_port()
    sink = py_sink("127.0.0.1", sink_port)
    sink.reply = lambda peer, rcpts: ("550 5.1.1 no such user" if "nobody@r.test" in rcpts
                                      else None)
    a, b, c = start_fleet(ternd, tmp_path, redis, sink_port=sink_port)
    status, reply = post(a.http, {"envelope_sender": "news@sender.test",
                                  "recipients": [{"email": "nobody@r.test"}],
                                  "content": "Subject: hi\r\n\r\nhello\r\n"})
    assert status == 200 and reply["success_count"] == 1, reply
    assert wait_for(lambda: a.refuses("nobody@r.test"), 15), "the hard bounce did not suppress"
    t0 = time.monotonic()
    assert wait_for(lambda: b.refuses("nobody@r.test") and c.refuses("nobody@r.test"), 2.0), \
        "the bounce's suppression did not reach the other nodes within 2 s"
    print(f"the bounce's suppression reached the others {time.monotonic() - t0:.3f} s after "
          "its own node refused")


def test_a_node_behind_the_trimmed_stream_reloads_the_fleets_list(ternd, tmp_path, redis_server):
    redis = redis_server()
    a, b = start_fleet(ternd, tmp_path, redis, n=2)
    a.add("early@r.test")
    assert wait_for(lambda: b.refuses("early@r.test"), 10)
    b.stop()
    a.add("late@r.test")
    a.add("gone-again@r.test")
    a.remove("gone-again@r.test")
    # Trimmed past b's last id (the stream keeps only its latest changes): the hash has the list.
    redis.cli("XTRIM", "tern:suppress", "MAXLEN", "0")
    b.start()
    c = Node(ternd, tmp_path, "fresh", redis.port, free_port())  # a new node, an empty spool
    for x in (b, c):
        assert wait_for(lambda: x.refuses("late@r.test") and x.refuses("early@r.test"), 15), x.name
        assert "reloading the fleet's list from tern:suppress:all" in x.proc.stderr()
    assert wait_for(lambda: "2 entries reloaded" in c.proc.stderr(), 10)
    assert not c.refuses("gone-again@r.test")
    # Both follow the stream again from its end.
    a.add("after@r.test")
    assert wait_for(lambda: b.refuses("after@r.test") and c.refuses("after@r.test"), 2.0)
