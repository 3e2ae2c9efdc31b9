# SPDX-License-Identifier: MIT
"""Egress limits seen from the receiving side: connection_limit caps the
sessions one source holds open to a site at once, and max_message_rate
paces deliveries to a site (GCRA, so the long-run count is exact), and
max_connection_rate paces the connections opened to it.
"""
import collections

from sinks import (chunks, inject, mta_policy, of_type, port_free_on, py_sink, read_records,
                   received_ids, record_time, wait_records)

__all__ = ["py_sink"]  # a fixture, used by name

SOURCES_AND_SITE = """
local sources = { ['ip-a'] = '127.0.0.2', ['ip-b'] = '127.0.0.3' }
tern.on('get_egress_source', function(name)
  return tern.make_egress_source { name = name, source_address = sources[name],
                                   ehlo_domain = name .. '.out.test' }
end)
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { %s } }
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'shared', retry_interval = '1s' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { smtp_port = %d, %s }
end)
"""

ZONES = {"site.test": {"MX": [[10, "mx.site.test."]]}, "mx.site.test": {"A": ["127.0.0.61"]}}


def test_connection_limit_per_source_ip(ternd, ports, dns_server, py_sink):
    port = port_free_on(["127.0.0.61"])
    sink = py_sink("127.0.0.61", port, data_delay=0.03)
    dns = dns_server(ZONES)
    entries = "{ name = 'ip-a', weight = 1 }, { name = 'ip-b', weight = 1 }"
    t = ternd(mta_policy(dns.address, SOURCES_AND_SITE % (
        entries, port, "connection_limit = 2, max_deliveries_per_connection = 7")))
    rcpts = [f"u{i}@site.test" for i in range(300)]
    inject(ports[0], chunks(rcpts, 25))

    got = sink.wait_messages(300, timeout=60)
    assert len(got) == 300
    delivered = wait_records(t, of_type("Delivery"), 300)
    assert sorted(r["id"] for r in delivered) == sorted(received_ids(t))
    assert len(set(received_ids(t))) == 300
    assert sink.max_concurrency == {"127.0.0.2": 2, "127.0.0.3": 2}, sink.max_concurrency
    per_session = collections.Counter(m["peer"] for m in got)
    assert per_session["127.0.0.2"] + per_session["127.0.0.3"] == 300
    # max_deliveries_per_connection = 7 forced reconnections, so the limit held over many sessions.
    assert len(sink.sessions) >= 300 // 7


def test_max_message_rate_600_per_minute(ternd, ports, dns_server, py_sink):
    port = port_free_on(["127.0.0.61"])
    sink = py_sink("127.0.0.61", port)
    dns = dns_server(ZONES)
    t = ternd(mta_policy(dns.address, SOURCES_AND_SITE % (
        "{ name = 'ip-a', weight = 1 }", port, "max_message_rate = '600/min'")))
    rcpts = [f"u{i}@site.test" for i in range(700)]
    inject(ports[0], chunks(rcpts, 100))

    first = wait_records(t, of_type("Delivery"), 1, timeout=10)
    start = record_time(first[0])
    wait_records(t, lambda r: r["type"] == "Delivery" and record_time(r) >= start + 60.5, 1,
                 timeout=75)
    recs = read_records(t)
    times = [record_time(r) for r in recs if r["type"] == "Delivery"]
    in_window = [x for x in times if start <= x < start + 60]
    # The cap is exact (GCRA); a loaded 2-core machine may fall a little behind it, never ahead.
    assert 570 <= len(in_window) <= 606, len(in_window)
    assert not [r for r in recs if r["type"] in ("TransientFailure", "Bounce")]
    # Paced, not bursty (GCRA without burst): any three seconds of the window hold their 30,
    # and a few more when records are written late. Record times, not admissions, are what
    # the log shows: a loaded machine that stalls a delivery for a second writes its record
    # in the next one (seen: 8, 5, then 15 in single seconds at an exact 600 a minute), so a
    # single second is too short a window; a burst allowance of even 4 would reach 34 at the start.
    per_second = collections.Counter(int(x - start) for x in in_window)
    three = [sum(per_second[s + k] for k in range(3)) for s in range(58)]
    assert max(three) <= 33, (max(three), per_second.most_common(3))
    assert len(sink.messages) >= len(in_window)


def test_max_connection_rate_paces_new_connections(ternd, ports, dns_server, py_sink):
    port = port_free_on(["127.0.0.61"])
    sink = py_sink("127.0.0.61", port)
    dns = dns_server(ZONES)
    # One delivery per connection and room for 10 at once: only the rate holds them back.
    t = ternd(mta_policy(dns.address, SOURCES_AND_SITE % (
        "{ name = 'ip-a', weight = 1 }", port,
        "max_connection_rate = '5/s', connection_limit = 10, max_deliveries_per_connection = 1")))
    n = 30
    inject(ports[0], chunks([f"u{i}@site.test" for i in range(n)], 1))

    assert len(sink.wait_messages(n, timeout=30)) == n
    assert len(wait_records(t, of_type("Delivery"), n)) == n
    starts = sorted(s["start"] for s in sink.sessions)
    assert len(starts) == n, len(starts)
    # 5/s from the first: the 30th opens 5.8 s after the first (unpaced, all 30 take well under
    # a second); 2 s of slack above for a loaded machine.
    span = starts[-1] - starts[0]
    assert 5.6 <= span <= 7.8, span
    per_second = collections.Counter(int(x - starts[0]) for x in starts)
    assert max(per_second.values()) <= 6, per_second.most_common(3)
