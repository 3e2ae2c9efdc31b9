# SPDX-License-Identifier: MIT
"""IP warm-up with real processes: a ternd relays to a sink found through the
test DNS server, from warming and warm sources on 127.0.0.2-3; the test clock
option (time_scale) makes a day last seconds. Checked: the cap holds exactly
and the pool's other source takes the rest; with no other source messages
wait for the next day without failing; 2% hard bounces pause the ramp (a
WarmupPaused record, the metric, the admin API); a restart keeps the pause,
the stage and the window's counts; an operator resumes it.
"""
import collections
import json
import os
import signal
import time
import urllib.request

from conftest import run_tern
from test_reload import wait_log
from sinks import (inject, of_type, port_free_on, read_records, record_time, ternd_sink,
                   wait_records)

__all__ = ["ternd_sink"]  # fixture, used by name

SINK = "127.0.0.21"


def policy(dns, port, pools, warmup):
    """sources ip-warm (127.0.0.2) and ip-b (127.0.0.3); domain -> pool from pools; warm-up plan."""
    return """
tern.dns.configure { servers = { '%s' }, timeout = '1s', attempts = 1 }
local warmup = require 'tern.warmup'
local plan = warmup.new { %s }
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }
  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',
                              relay_hosts = { '127.0.0.0/8' } }
  tern.start_http_listener { listen = '127.0.0.1:{port2}' }
  plan:apply()
end)
local sources = { ['ip-warm'] = '127.0.0.2', ['ip-b'] = '127.0.0.3' }
local pools = { %s }
tern.on('get_egress_source', function(name)
  return tern.make_egress_source { name = name, source_address = sources[name],
                                   ehlo_domain = name .. '.out.test' }
end)
tern.on('get_egress_pool', function(name)
  local entries = {}
  for _, s in ipairs(pools[name]) do entries[#entries + 1] = { name = s } end
  return tern.make_egress_pool { name = name, entries = entries }
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = domain, retry_interval = '1s' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { smtp_port = %d }
end)
""" % (dns.address, warmup, pools, port)


def zones(*domains):
    out = {"mx.sink.test": {"A": [SINK]}}
    for d in domains:
        out[d] = {"MX": [[10, "mx.sink.test."]]}
    return out


def api(t_ports, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{t_ports[1]}{path}",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def state(ports, source):
    return next(s for s in api(ports, "/api/admin/warmup/v1") if s["source"] == source)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def metric(ports, name, source):
    with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f'{name}{{source="{source}"}}'):
                return float(line.split()[-1])
    return None


def test_cap_holds_exactly_and_the_other_source_takes_the_rest(ternd, ports, dns_server, ternd_sink):
    port = port_free_on([SINK])
    ternd_sink(SINK, port)
    dns = dns_server(zones("w.test"))
    # A day lasts 120 s: the 300 messages are dispatched well inside the first one.
    warm = ("sources = { ['ip-warm'] = { start = %d, stages = { '100/day', '1000/day' } } }, "
            "time_scale = 720" % (time.time() - 1))
    t = ternd(policy(dns, port, "['w.test'] = { 'ip-warm', 'ip-b' }", warm))

    inject(ports[0], [[f"u{i + j}@w.test" for j in range(10)] for i in range(0, 300, 10)])
    deliveries = wait_records(t, of_type("Delivery"), 300, timeout=90)
    assert len(deliveries) == 300
    by_source = collections.Counter(r["egress_source"] for r in deliveries)
    assert by_source == {"ip-warm": 100, "ip-b": 200}, by_source
    assert [r for r in read_records(t) if r["type"] not in ("Reception", "Delivery")] == []
    s = state(ports, "ip-warm")
    assert (s["stage"], s["cap"], s["sent"], s["paused"]) == (0, 100, 100, False), s
    assert metric(ports, "tern_warmup_sent", "ip-warm") == 100


def test_with_no_other_source_messages_wait_for_the_next_day(ternd, ports, dns_server, ternd_sink):
    port = port_free_on([SINK])
    ternd_sink(SINK, port)
    dns = dns_server(zones("solo.test"))
    # A day lasts 8 s; the second day's cap takes the rest.
    start = time.time() - 1
    warm = ("sources = { ['ip-warm'] = { start = %f, stages = { '5/day', '100/day' } } }, "
            "time_scale = 10800" % start)
    t = ternd(policy(dns, port, "['solo.test'] = { 'ip-warm' }", warm))

    inject(ports[0], [[f"u{i}@solo.test" for i in range(8)]])
    deliveries = wait_records(t, of_type("Delivery"), 8, timeout=60)
    assert len(deliveries) == 8
    day = [int((record_time(r) - start) // 8) for r in deliveries]
    assert collections.Counter(day)[min(day)] == 5, day
    assert [r for r in read_records(t) if r["type"] not in ("Reception", "Delivery")] == []


def test_hard_bounces_pause_the_ramp_and_a_restart_keeps_it(ternd, ports, dns_server, ternd_sink):
    port = port_free_on([SINK])
    ternd_sink(SINK, port)
    dns = dns_server(zones("p.test"))
    # A day lasts 6 s, the window 100 days (10 min): days pass while the pause holds the stage.
    warm = ("sources = { ['ip-warm'] = { start = %d, stages = { '1000/day', '2000/day', '3000/day' } } }, "
            "time_scale = 14400, window = '100d', min_messages = 50" % (time.time() - 1))
    text = policy(dns, port, "['p.test'] = { 'ip-warm' }", warm)
    t = ternd(text)

    rcpts = [f"{'permfail' if i in (40, 80) else 'u'}{i}@p.test" for i in range(100)]
    inject(ports[0], [rcpts[i:i + 10] for i in range(0, 100, 10)])
    paused = wait_records(t, of_type("WarmupPaused"), 1, timeout=60)
    assert len(paused) == 1, paused
    rec = paused[0]
    assert rec["egress_source"] == "ip-warm"
    assert "hard-bounce rate" in rec["reason"] and "passed 1.50%" in rec["reason"], rec
    stage = rec["warmup"]["stage"]
    assert rec["warmup"]["bounce_rate"] > 0.015
    wait_records(t, lambda r: r["type"] in ("Delivery", "Bounce"), 100, timeout=60)
    s = state(ports, "ip-warm")
    assert s["paused"] and s["stage"] == stage and s["window_messages"] == 100, s
    assert abs(s["bounce_rate"] - 0.02) < 1e-9, s
    assert metric(ports, "tern_warmup_paused", "ip-warm") == 1

    # Two days pass: the stage holds. A restart keeps the pause, the stage and the counts.
    time.sleep(12.5)
    assert state(ports, "ip-warm")["stage"] == stage
    assert t.stop() == 0
    t2 = ternd(text)
    s = state(ports, "ip-warm")
    assert s["paused"] and s["stage"] == stage and s["window_messages"] == 100, s
    assert len([r for r in read_records(t2) if r["type"] == "WarmupPaused"]) == 1

    # The operator resumes it: the ramp moves on from where it stopped, a day at a time.
    assert api(ports, "/api/admin/warmup-resume/v1", {"source": "ip-warm"}) == {}
    s = state(ports, "ip-warm")
    assert not s["paused"] and s["stage"] == stage and s["reason"] == "", s
    wait_for(lambda: state(ports, "ip-warm")["stage"] == stage + 1, 15, "the ramp moves on")
    assert metric(ports, "tern_warmup_paused", "ip-warm") == 0


EXPLAIN_POLICY = """
local warmup = require 'tern.warmup'
local plan = warmup.new {
  sources = { ['ip-a'] = { start = %d, stages = { '200/day', '500/day', '1000/day' } } },
}
tern.on('init', function() plan:apply() end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'shared' }
end)
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { { name = 'ip-a' }, { name = 'ip-b' } } }
end)
"""


def test_policy_explain_shows_a_warming_sources_stage_and_cap(tmp_path):
    path = tmp_path / "policy.lua"
    path.write_text(EXPLAIN_POLICY % (time.time() - 2.5 * 86400))
    r = run_tern("policy", "explain", "--policy", str(path), "--domain", "gmail.com", "--json")
    assert r.returncode == 0, r.stderr
    w = json.loads(r.stdout)["warmup"]
    assert list(w) == ["ip-a"] and (w["ip-a"]["stage"], w["ip-a"]["cap"]) == (2, 1000), w
    assert w["ip-a"]["at"] == f"{path}:3", w
    r = run_tern("policy", "explain", "--policy", str(path), "--domain", "gmail.com")
    assert r.returncode == 0, r.stderr
    assert f"warm-up stage 3 of 3: cap 1000 per 1d  {path}:3" in r.stdout, r.stdout


def test_a_reload_replaces_the_plan_and_keeps_the_count(ternd, ports, dns_server, ternd_sink):
    port = port_free_on([SINK])
    ternd_sink(SINK, port)
    dns = dns_server(zones("r.test"))
    start = time.time() - 1
    warm = ("sources = { ['ip-warm'] = { start = %d, stages = { '%s/day' } } }, "
            "time_scale = 720")  # a day lasts 120 s
    t = ternd(policy(dns, port, "['r.test'] = { 'ip-warm', 'ip-b' }", warm % (start, 5)))
    inject(ports[0], [[f"a{i}@r.test" for i in range(20)]])
    wait_records(t, of_type("Delivery"), 20, timeout=60)

    # The new epoch raises the cap to 8: the 5 already sent today still count.
    text = open(t.policy_path).read().replace("'5/day'", "'8/day'")
    with open(t.policy_path + ".tmp", "w") as f:
        f.write(text)
    os.rename(t.policy_path + ".tmp", t.policy_path)
    t.proc.send_signal(signal.SIGHUP)
    wait_log(t, r"policy reload: epoch 2 loaded")
    assert state(ports, "ip-warm")["sent"] == 5
    inject(ports[0], [[f"b{i}@r.test" for i in range(20)]])
    deliveries = wait_records(t, of_type("Delivery"), 40, timeout=60)
    by_source = collections.Counter(r["egress_source"] for r in deliveries)
    assert by_source == {"ip-warm": 8, "ip-b": 32}, by_source
    s = state(ports, "ip-warm")
    assert (s["cap"], s["sent"]) == (8, 8), s


def test_a_suspended_source_holds_what_a_capped_one_cannot_take(ternd, ports, dns_server,
                                                                 ternd_sink):
    """One source suspended by an operator, the other not started yet (cap 0): the messages wait
    on the suspended path without a record and leave when the operator lifts it."""
    port = port_free_on([SINK])
    ternd_sink(SINK, port)
    dns = dns_server(zones("h.test"))
    warm = "sources = { ['ip-warm'] = { start = %d, stages = { '10/day' } } }" % (time.time() + 86400)
    t = ternd(policy(dns, port, "['h.test'] = { 'ip-warm', 'ip-b' }", warm))
    rule = api(ports, "/api/admin/suspend-ready-q/v1",
               {"name": "ip-b->mx.sink.test.", "reason": "test", "duration": "1h"})
    inject(ports[0], [[f"u{i}@h.test" for i in range(3)]])
    time.sleep(3)
    assert [r["type"] for r in read_records(t) if r["type"] != "Reception"] == []
    ready = api(ports, "/api/admin/queue-summary/v1")["ready"]
    assert [(q["name"], q["count"]) for q in ready] == [("ip-b->mx.sink.test.", 3)], ready
    req = urllib.request.Request(f"http://127.0.0.1:{ports[1]}/api/admin/suspend-ready-q/v1",
                                 data=json.dumps({"id": rule["id"]}).encode(), method="DELETE")
    urllib.request.urlopen(req, timeout=10).read()
    deliveries = wait_records(t, of_type("Delivery"), 3, timeout=30)
    assert sorted(r["egress_source"] for r in deliveries) == ["ip-b"] * 3
