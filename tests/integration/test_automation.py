# SPDX-License-Identifier: MIT
"""Shaping automation with real processes: a ternd with three sources in one
pool (127.0.0.2..4) delivering to a scriptable Python sink that starts
refusing one source's address the way a provider defers an IP. Checks that
the path is suspended within seconds and its share moves to the other
sources, that `N/period` triggers count, that a `set` action holds the
measured rate at its value, and that a suspension survives a restart and
can be lifted through the admin API.
"""
import time

from sinks import py_sink, of_type, wait_records
from test_http_inject import post

__all__ = ["py_sink"]  # fixture, used by name

ADMIN = "/api/admin"
ADDRS = {"ip-a": "127.0.0.2", "ip-b": "127.0.0.3", "ip-c": "127.0.0.4"}

POLICY = """
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }
  tern.start_http_listener { listen = '127.0.0.1:{port}' }
end)
local shaping = require 'tern.shaping'
local shape = shaping.new { defaults = { %(defaults)s }, automation = { %(rules)s } }
tern.on('get_queue_config', function()
  return tern.make_queue_config { egress_pool = 'pool', retry_interval = '1s',
                                  max_retry_interval = '2s', mx_list = { '127.0.0.1:{port2}' } }
end)
tern.on('get_egress_source', function(name)
  local addr = { ['ip-a'] = '127.0.0.2', ['ip-b'] = '127.0.0.3', ['ip-c'] = '127.0.0.4' }
  return tern.make_egress_source { name = name, source_address = addr[name] }
end)
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { %(entries)s } }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return shape:path(domain, source, site)
end)
"""


def policy(rules, sources=("ip-a", "ip-b", "ip-c"), defaults="connection_limit = 4"):
    entries = ", ".join("{ name = '%s', weight = 1 }" % s for s in sources)
    return POLICY % {"defaults": defaults, "rules": rules, "entries": entries}


def inject(port, n, tag, first=0):
    for start in range(first, first + n, 50):
        body = {"envelope_sender": "news@sender.test",
                "recipients": [{"email": f"{tag}{i}@dest.example"}
                               for i in range(start, min(first + n, start + 50))],
                "content": "Subject: hi\r\n\r\nhello\r\n"}
        status, reply = post(port, body)
        assert status == 200, reply


def wait_for(pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def delivered(sink, tag):
    """Recipients with tag the sink accepted, each once."""
    return {r for m in list(sink.messages) for r in m["rcpt_tos"] if r.startswith(tag)}


def states(port):
    status, reply = post(port, b"", path=ADMIN + "/ready-q-states/v1", method="GET")
    assert status == 200, reply
    return reply["states_by_ready_queue"]


def test_deferred_source_is_suspended_and_its_share_moves(ternd, ports, py_sink):
    """421 4.7.28 to one source after 50 messages: that path stops within 5 s, the other two
    deliver everything, nothing bounces, and after the duration the source delivers again
    with half its connections."""
    sink = py_sink("127.0.0.1", ports[1])
    accepted = {"n": 0}

    def provider(peer, rcpts):
        if peer != ADDRS["ip-a"]:
            return None
        accepted["n"] += 1
        return "421 4.7.28 Our system has detected an unusual rate of unsolicited mail" \
            if accepted["n"] > 50 else None
    sink.reply = provider
    t = ternd(policy("{ regex = { '4\\\\.7\\\\.28', 'unusual rate' }, action = 'suspend', "
                     "duration = '12s', recovery = '1m' }"))
    inject(ports[0], 400, "u")
    assert wait_for(lambda: any(a["reply"] for a in sink.attempts)), "the sink never refused"
    first_refusal = min(a["time"] for a in sink.attempts if a["reply"])
    assert wait_for(lambda: len(delivered(sink, "u")) == 400, timeout=60), \
        len(delivered(sink, "u"))
    late = [a for a in sink.attempts if a["peer"] == ADDRS["ip-a"]
            and first_refusal + 5 < a["time"] < first_refusal + 11]
    assert late == [], f"{len(late)} transactions from the suspended source"
    # Records reach the log on the flusher's next tick, not when the sink sees the message.
    actions = wait_records(t, of_type("ShapingAction"), 1)
    assert len(actions) == 1, actions
    assert not [r for r in t.records() if r["type"] == "Bounce"]
    sh = actions[0]["shaping"]
    assert sh["action"] == "suspend" and sh["duration"] == 12
    assert sh["scope"].startswith("ip-a->") and "4.7.28" in actions[0]["response"]["enhanced_code"]
    assert "automation[1]" in sh["rule_at"]
    site = actions[0]["site"]
    st = states(ports[0])[f"ip-a->{site}"]["shaping"]
    assert st["action"] == "suspend" and "4.7.28" in st["context"]

    # After the duration: the source delivers again, starting at half its connections.
    sink.reply = None
    end = actions[0]["shaping"]["duration"] + first_refusal
    assert wait_for(lambda: time.time() > end + 0.5, timeout=20)
    with sink.lock:
        sink.max_concurrency.clear()
    sink.data_delay = 0.3
    inject(ports[0], 120, "v")
    assert wait_for(lambda: len(delivered(sink, "v")) == 120, timeout=60)
    back = [m for m in sink.messages if m["peer"] == ADDRS["ip-a"] and m["time"] > end]
    assert back, "the source never came back"
    assert sink.max_concurrency[ADDRS["ip-a"]] <= 2, sink.max_concurrency
    assert sink.max_concurrency[ADDRS["ip-b"]] > 2, sink.max_concurrency


def test_trigger_counts_matches_in_its_window(ternd, ports, py_sink):
    """trigger = '3/5m' does not fire on two matching replies and fires on the third."""
    sink = py_sink("127.0.0.1", ports[1])
    sink.reply = lambda peer, rcpts: "451 4.7.28 deferred"
    t = ternd(policy("{ regex = '4\\\\.7\\\\.28', action = 'suspend', duration = '1h', "
                     "trigger = '3/5m' }", sources=("ip-a",))
              .replace("retry_interval = '1s',\n                                  max_retry_interval = '2s'",
                       "retry_interval = '1h'"))
    for i in range(2):
        inject(ports[0], 1, f"t{i}-")
        wait_records(t, of_type("TransientFailure"), i + 1)
    time.sleep(0.5)
    assert not [r for r in t.records() if r["type"] == "ShapingAction"]
    inject(ports[0], 1, "t2-")
    act = wait_records(t, of_type("ShapingAction"), 1)
    assert len(act) == 1 and act[0]["shaping"]["action"] == "suspend"
    assert len([a for a in sink.attempts]) == 3


def test_suspension_survives_restart_and_is_lifted_by_the_admin_api(ternd, ports, py_sink):
    """Regression guard for durability: a suspension set before a restart still holds after
    it; DELETE /api/admin/shaping-state/v1 lifts it and the held message goes at once."""
    sink = py_sink("127.0.0.1", ports[1])
    sink.reply = lambda peer, rcpts: "421 4.7.28 unusual rate"
    text = policy("{ regex = '4\\\\.7\\\\.28', action = 'suspend', duration = '1h' }",
                  sources=("ip-a",))
    t = ternd(text)
    inject(ports[0], 1, "r0-")
    wait_records(t, of_type("ShapingAction"), 1)
    assert t.stop() == 0
    sink.reply = None
    t2 = ternd(text)
    status, listed = post(ports[0], b"", path=ADMIN + "/shaping-state/v1", method="GET")
    assert status == 200 and len(listed) == 1 and listed[0]["source"] == "ip-a", listed
    assert listed[0]["suspend"] is True and listed[0]["until"] > time.time() + 3000
    inject(ports[0], 2, "r1-")
    time.sleep(3)
    assert not delivered(sink, "r"), "a suspended path delivered after the restart"
    status, reply = post(ports[0], {"source": "ip-a"}, path=ADMIN + "/shaping-state/v1",
                         method="DELETE")
    assert status == 200 and reply == {"cleared": 1}, reply
    assert wait_for(lambda: len(delivered(sink, "r")) == 3, timeout=20), delivered(sink, "r")
    assert not [r for r in t2.records() if r["type"] == "Bounce"]
    status, reply = post(ports[0], {}, path=ADMIN + "/shaping-state/v1", method="DELETE")
    assert status == 422 and "required" in reply["error"]


def test_set_action_holds_the_measured_rate_then_returns_it(ternd, ports, py_sink):
    """A `set` action lowers the path's measured rate to its value (within 5%) for the
    duration; afterwards the rate climbs back."""
    sink = py_sink("127.0.0.1", ports[1])
    refused = {"n": 0}

    def once(peer, rcpts):
        refused["n"] += 1
        return "451 4.7.0 TSS04 temporarily deferred" if refused["n"] == 1 else None
    sink.reply = once
    t = ternd(policy("{ regex = 'TSS04', action = { set = { max_message_rate = '5/s' } }, "
                     "duration = '12s', recovery = '1s' }", sources=("ip-a",),
                     defaults="connection_limit = 4, max_message_rate = '40/s'"))
    inject(ports[0], 1, "s0-")
    wait_records(t, of_type("ShapingAction"), 1)
    start = time.time()
    inject(ports[0], 40, "s1-")
    assert wait_for(lambda: len(delivered(sink, "s1-")) == 40, timeout=30)
    times = sorted(m["time"] for m in sink.messages
                   if m["rcpt_tos"][0].startswith("s1-"))
    assert times[-1] < start + 12, "the override window was too short to measure"
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert abs(rate - 5) <= 0.25, rate
    assert wait_for(lambda: time.time() > start + 14, timeout=20)
    inject(ports[0], 80, "s2-")
    assert wait_for(lambda: len(delivered(sink, "s2-")) == 80, timeout=30)
    times = sorted(m["time"] for m in sink.messages if m["rcpt_tos"][0].startswith("s2-"))
    assert (len(times) - 1) / (times[-1] - times[0]) > 15


TENANT_FROM_RECIPIENT = """
tern.on('http_message_generated', function(msg)
  msg:set_meta('tenant', msg:recipient():match('^(%a+)'))
end)
"""


def test_bounce_and_suspend_tenant_actions(ternd, ports, py_sink):
    """A `bounce` rule fails the message at once (Bounce, no retry); a `suspend_tenant` rule
    holds that tenant's messages for the site while other tenants' go, and lifting it through
    the admin API sends the held ones at once."""
    sink = py_sink("127.0.0.1", ports[1])
    refused = set()

    def provider(peer, rcpts):
        r = rcpts[0]
        if r.startswith("bad"):
            return "451 4.7.0 TSS09 messages from this sender are blocked"
        if r == "acme0@dest.example" and not refused:
            refused.add(r)
            return "451 4.7.1 too many complaints for this tenant"
        return None
    sink.reply = provider
    t = ternd(policy("{ regex = 'TSS09', action = 'bounce' }, "
                     "{ regex = 'complaints', action = 'suspend_tenant', duration = '1h' }",
                     sources=("ip-a", "ip-b")) + TENANT_FROM_RECIPIENT)
    inject(ports[0], 1, "bad")
    bounce = wait_records(t, of_type("Bounce"), 1)[0]
    assert bounce["recipient"] == "bad0@dest.example" and bounce["response"]["code"] == 451
    act = wait_records(t, of_type("ShapingAction"), 1)[0]
    assert act["shaping"]["action"] == "bounce" and act["shaping"]["scope"] == "message"
    assert not [r for r in t.records() if r["type"] == "TransientFailure"]

    inject(ports[0], 1, "acme")
    acts = wait_records(t, of_type("ShapingAction"), 2)
    held = [a for a in acts if a["shaping"]["action"] == "suspend_tenant"][0]
    assert held["shaping"]["scope"] == "tenant:acme->" + held["site"]
    inject(ports[0], 3, "acme", first=1)
    inject(ports[0], 3, "other")
    assert wait_for(lambda: len(delivered(sink, "other")) == 3)
    time.sleep(2)
    assert not delivered(sink, "acme"), "a held tenant's message went"
    status, reply = post(ports[0], {"tenant": "acme"}, path=ADMIN + "/shaping-state/v1",
                         method="DELETE")
    assert status == 200 and reply == {"cleared": 1}, reply
    assert wait_for(lambda: len(delivered(sink, "acme")) == 4, timeout=20), delivered(sink, "acme")
    assert len([r for r in t.records() if r["type"] == "ShapingAction"]) == 2
    assert [r["recipient"] for r in t.records() if r["type"] == "Bounce"] == ["bad0@dest.example"]


def test_suspend_source_holds_the_source_for_the_providers_sites(ternd, ports, py_sink):
    """A provider's `suspend_source` rule takes the source off every site of the provider
    (a state scoped by the provider's MX suffixes) while the pool's other source delivers."""
    sink = py_sink("127.0.0.1", ports[1])
    refused = []

    def provider(peer, rcpts):
        if peer == ADDRS["ip-a"] and not refused:
            refused.append(time.time())
            return "550 5.7.1 S3150 your IP is on our block list"
        return None
    sink.reply = provider
    text = policy("", sources=("ip-a", "ip-b")).replace(
        "automation = {  }",
        "providers = { sink = { mx_suffixes = { '0.0.1:{port2}' }, automation = {"
        " { regex = 'S3150', action = 'suspend_source', duration = '1h' } } } }")
    t = ternd(text)
    inject(ports[0], 40, "w")
    assert wait_for(lambda: len(delivered(sink, "w")) == 39, timeout=30)
    act = wait_records(t, of_type("ShapingAction"), 1)[0]
    assert act["shaping"]["action"] == "suspend_source"
    assert act["shaping"]["scope"] == "ip-a->*0.0.1:%d" % ports[1]
    assert [r["type"] for r in wait_records(t, of_type("Bounce"), 1)] == ["Bounce"]
    time.sleep(1)
    late = [a for a in sink.attempts if a["peer"] == ADDRS["ip-a"] and a["time"] > refused[0] + 1]
    assert late == []
    status, listed = post(ports[0], b"", path=ADMIN + "/shaping-state/v1", method="GET")
    assert [(s["scope"], s["source"], s["site"]) for s in listed] == \
        [("source", "ip-a", "0.0.1:%d" % ports[1])]
