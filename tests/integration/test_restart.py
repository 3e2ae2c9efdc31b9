# SPDX-License-Identifier: MIT
"""Nothing acknowledged is lost across a restart: 10,000 messages wait for a
destination that is down, ternd stops (SIGTERM), the destination comes up,
and ternd starts again on the same spool with a policy that retries soon.
Every message is delivered exactly once, at its recorded due time and as its
second attempt: one Delivery record per accepted id, and one Reception at
the sink per recipient.
"""
import collections
import signal
import time

from sinks import chunks, inject, mta_policy, port_free_on, read_records, record_time, ternd_sink

__all__ = ["ternd_sink"]  # a fixture, used by name

DEST = "127.0.0.71"

HOOKS = """
tern.on('get_egress_source', function(name)
  return tern.make_egress_source { name = name, source_address = '127.0.0.2',
                                   ehlo_domain = 'out.test' }
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'ip-a', retry_interval = '%s' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { smtp_port = %d, connection_limit = 10 }
end)
"""

N_MESSAGES, N_RCPTS = 100, 100


def wait_ids(t, kind, n, stall=10.0, timeout=90.0):
    """Records of kind, once they name n ids or stop coming for stall seconds."""
    deadline = time.monotonic() + timeout
    seen, last_change = -1, time.monotonic()
    while True:
        recs = [r for r in read_records(t) if r["type"] == kind]
        if len(recs) != seen:
            seen, last_change = len(recs), time.monotonic()
        if len({r["id"] for r in recs}) >= n or time.monotonic() - last_change > stall \
                or time.monotonic() > deadline:
            return recs
        time.sleep(0.2)


# The first run waits RETRY after each failure; the second run's policy retries every second.
# A recovered message keeps its attempt count and due time, so nothing is delivered before its
# failure plus 0.9 * RETRY (the least jitter), and each Delivery is its second attempt.
RETRY = 20


def test_10000_queued_messages_survive_a_restart(ternd, ports, dns_server, ternd_sink):
    port = port_free_on([DEST])
    dns = dns_server({"down.test": {"MX": [[10, "mx.down.test."]]},
                      "mx.down.test": {"A": [DEST]}})
    t = ternd(mta_policy(dns.address, HOOKS % (f"{RETRY}s", port)))
    rcpts = [f"r{i}-{j}@down.test" for i in range(N_MESSAGES) for j in range(N_RCPTS)]
    ids = inject(ports[0], chunks(rcpts, N_RCPTS), threads=6)
    total = N_MESSAGES * N_RCPTS
    assert len(ids) == len(set(ids)) == total

    # Every message was tried, found nobody listening and waits for its retry.
    fails = wait_ids(t, "TransientFailure", total)
    assert {r["id"] for r in fails} == set(ids)
    assert {r["num_attempts"] for r in fails} == {1}
    failed_at = {r["id"]: record_time(r) for r in fails}
    assert t.stop(signal.SIGTERM) == 0
    assert not [r for r in read_records(t) if r["type"] in ("Delivery", "Bounce")]

    sink = ternd_sink(DEST, port)
    t2 = ternd(mta_policy(dns.address, HOOKS % ("1s", port)))
    assert f"recovered {total} messages" in t2.stderr()
    delivered = wait_ids(t2, "Delivery", total, stall=RETRY + 10, timeout=90 + RETRY)
    ids_delivered = collections.Counter(r["id"] for r in delivered)
    assert len(ids_delivered) == total, f"{len(ids_delivered)} of {total} delivered"
    assert set(ids_delivered) == set(ids)
    assert max(ids_delivered.values()) == 1, ids_delivered.most_common(3)
    assert {r["num_attempts"] for r in delivered} == {2}
    early = [r["id"] for r in delivered if record_time(r) < failed_at[r["id"]] + 0.9 * RETRY]
    assert early == [], f"{len(early)} delivered before their due time, e.g. {early[:3]}"

    received = sink.wait_receptions(total, timeout=30)
    by_rcpt = collections.Counter(r["recipient"] for r in received)
    assert len(received) == total
    assert set(by_rcpt) == set(rcpts)
    assert max(by_rcpt.values()) == 1, by_rcpt.most_common(3)
