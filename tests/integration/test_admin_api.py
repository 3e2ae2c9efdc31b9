# SPDX-License-Identifier: MIT
"""The admin API (/api/admin/*) against real ternd processes: suspensions
hold a domain's messages until resumed and survive a restart, admin bounces
produce AdminBounce records, the queue summary and liveness answer.
Messages are injected over HTTP and delivered to a Python sink.
"""
import time

from sinks import py_sink, wait_records, of_type
from test_http_inject import http_policy, post

__all__ = ["py_sink"]  # fixture, used by name

ADMIN = "/api/admin"


def inject(port, domain, n, campaign=None):
    body = {"envelope_sender": "news@sender.test",
            "recipients": [{"email": f"u{i}@{domain}"} for i in range(n)],
            "content": "Subject: hi\r\n\r\nhello\r\n"}
    status, reply = post(port, body)
    assert status == 200 and reply["success_count"] == n, reply


def summary(port):
    status, reply = post(port, b"", path=ADMIN + "/queue-summary/v1", method="GET")
    assert status == 200, reply
    return {q["domain"]: q for q in reply["scheduled"]}


def wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def suspend(port, **fields):
    status, reply = post(port, {"reason": "maintenance", "duration": "1h", **fields},
                         path=ADMIN + "/suspend/v1")
    assert status == 200, reply
    return reply["id"]


def test_suspend_holds_a_domain_until_resume(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    ternd(http_policy())
    sid = suspend(ports[0], domain="held.example")
    inject(ports[0], "held.example", 5)
    inject(ports[0], "free.example", 3)
    assert len(sink.wait_messages(3, timeout=20)) == 3
    assert wait_for(lambda: summary(ports[0]).get("held.example", {}).get("suspended_count") == 5)
    q = summary(ports[0])["held.example"]
    assert q["suspended"] is True and q["count"] == 5
    time.sleep(1.5)
    assert len(sink.messages) == 3  # still held
    status, listed = post(ports[0], b"", path=ADMIN + "/suspend/v1", method="GET")
    assert status == 200 and [s["id"] for s in listed] == [sid]
    assert listed[0]["domain"] == "held.example" and listed[0]["reason"] == "maintenance"
    status, _ = post(ports[0], {"id": sid}, path=ADMIN + "/suspend/v1", method="DELETE")
    assert status == 200
    got = sink.wait_messages(8, timeout=20)
    assert sorted(m["rcpt_tos"][0] for m in got if "held" in m["rcpt_tos"][0]) == \
        sorted(f"u{i}@held.example" for i in range(5))
    assert "held.example" not in summary(ports[0])


def test_suspension_survives_restart(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    t = ternd(http_policy())
    sid = suspend(ports[0], domain="held.example", tenant="")
    inject(ports[0], "held.example", 2)
    assert wait_for(lambda: summary(ports[0]).get("held.example", {}).get("suspended_count") == 2)
    assert t.stop() == 0
    t2 = ternd(http_policy())
    status, listed = post(ports[0], b"", path=ADMIN + "/suspend/v1", method="GET")
    assert [s["id"] for s in listed] == [sid]
    assert wait_for(lambda: summary(ports[0]).get("held.example", {}).get("suspended_count") == 2)
    assert sink.messages == []
    post(ports[0], {"id": sid}, path=ADMIN + "/suspend/v1", method="DELETE")
    assert len(sink.wait_messages(2, timeout=20)) == 2
    t2.stop()


def test_bounce_produces_admin_bounce_records(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    t = ternd(http_policy())
    suspend(ports[0], domain="gone.example")
    inject(ports[0], "gone.example", 4)  # queued (held) when the bounce comes
    assert wait_for(lambda: summary(ports[0]).get("gone.example", {}).get("count") == 4)
    status, reply = post(ports[0], {"domain": "gone.example", "reason": "purge",
                                    "duration": "10m"}, path=ADMIN + "/bounce/v1")
    assert status == 200, reply
    inject(ports[0], "gone.example", 2)  # arrives while the bounce lasts
    recs = wait_records(t, of_type("AdminBounce"), 6)
    assert len(recs) == 6
    assert all("purge" in r["response"]["content"] for r in recs), recs[0]
    assert sink.messages == []
    status, listed = post(ports[0], b"", path=ADMIN + "/bounce/v1", method="GET")
    assert status == 200 and listed[0]["id"] == reply["id"]
    status, _ = post(ports[0], {"id": reply["id"]}, path=ADMIN + "/bounce/v1", method="DELETE")
    assert status == 200
    status, listed = post(ports[0], b"", path=ADMIN + "/bounce/v1", method="GET")
    assert listed == []


def test_bad_bodies_name_the_field(ternd, ports):
    ternd(http_policy())
    cases = [({"reason": "x"}, "duration"),
             ({"duration": "1h", "reason": "x"}, "domain"),
             ({"domain": "a.example", "duration": "1h"}, "reason"),
             ({"domain": 7, "duration": "1h", "reason": "x"}, "domain"),
             ({"domain": "a.example", "duration": "soon", "reason": "x"}, "duration"),
             ({"queue_names": "q", "duration": "1h", "reason": "x"}, "queue_names")]
    for body, field in cases:
        status, reply = post(ports[0], body, path=ADMIN + "/suspend/v1")
        assert status == 422 and field in reply["error"], (body, reply)
    status, reply = post(ports[0], b"{nope", path=ADMIN + "/suspend/v1")
    assert status == 400
    status, reply = post(ports[0], {"id": "no-such"}, path=ADMIN + "/suspend/v1",
                         method="DELETE")
    assert status == 404


def test_inspect_and_liveness(ternd, ports, py_sink):
    py_sink("127.0.0.1", ports[1])
    t = ternd(http_policy())
    suspend(ports[0], domain="held.example")
    inject(ports[0], "held.example", 1)
    rec = wait_records(t, of_type("Reception"), 1)[0]
    status, reply = post(ports[0], b"", method="GET",
                         path=ADMIN + "/inspect-message/v1?id=" + rec["id"])
    assert status == 200, reply
    assert reply["id"] == rec["id"] and reply["message"]["recipient"] == "u0@held.example"
    status, reply = post(ports[0], b"", method="GET", path=ADMIN + "/inspect-message/v1?id=zz")
    assert status == 422
    status, reply = post(ports[0], b"", method="GET", path="/api/check-liveness/v1")
    assert status == 200 and reply == {"alive": True}


# Two sources in one pool, both delivering to the sink at 127.0.0.1:{port2}.
TWO_SOURCES = """
tern.on('get_egress_source', function(name)
  local addr = { ['ip-a'] = '127.0.0.2', ['ip-b'] = '127.0.0.3' }
  return tern.make_egress_source { name = name, source_address = addr[name] }
end)
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { %s } }
end)
"""


def pool_policy(entries):
    policy = http_policy(hooks=TWO_SOURCES % entries)
    return policy.replace("return tern.make_queue_config {",
                          "return tern.make_queue_config { egress_pool = 'two',")


def site_of(t, port, sink):
    """Deliver one message and read the site its record names."""
    inject(port, "probe.example", 1)
    sink.wait_messages(1, timeout=20)
    return wait_records(t, of_type("Delivery"), 1)[0]["site"]


def test_suspend_ready_q_stops_one_path_while_the_other_delivers(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    t = ternd(pool_policy("{ name = 'ip-a', weight = 1 }, { name = 'ip-b', weight = 1 }"))
    site = site_of(t, ports[0], sink)
    status, reply = post(ports[0], {"name": f"ip-a->{site}@smtp_client", "reason": "blocklisted",
                                    "duration": "1h"}, path=ADMIN + "/suspend-ready-q/v1")
    assert status == 200, reply
    inject(ports[0], "many.example", 10)
    got = [m for m in sink.wait_messages(11, timeout=30) if "many" in m["rcpt_tos"][0]]
    assert len(got) == 10
    assert {m["peer"] for m in got} == {"127.0.0.3"}
    status, qs = post(ports[0], b"", path=ADMIN + "/queue-summary/v1", method="GET")
    ready = {r["name"]: r for r in qs["ready"]}
    assert ready[f"ip-b->{site}"]["rate"] > 0 and not ready[f"ip-b->{site}"]["suspended"]
    assert ready[f"ip-a->{site}"]["suspended"] is True
    status, listed = post(ports[0], b"", path=ADMIN + "/suspend-ready-q/v1", method="GET")
    assert [(r["id"], r["name"]) for r in listed] == [(reply["id"], f"ip-a->{site}")]


def test_suspend_ready_q_holds_a_single_source_path(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    t = ternd(pool_policy("{ name = 'ip-a', weight = 1 }"))
    site = site_of(t, ports[0], sink)
    status, reply = post(ports[0], {"name": f"ip-a->{site}", "reason": "r", "duration": 3600},
                         path=ADMIN + "/suspend-ready-q/v1")
    assert status == 200, reply
    inject(ports[0], "held.example", 3)

    def ready_q():
        status, reply = post(ports[0], b"", path=ADMIN + "/queue-summary/v1", method="GET")
        return {r["name"]: r for r in reply["ready"]}.get(f"ip-a->{site}", {})
    assert wait_for(lambda: ready_q().get("count") == 3)
    assert ready_q()["suspended"] is True
    status, states = post(ports[0], b"", path=ADMIN + "/ready-q-states/v1", method="GET")
    assert status == 200
    assert states["states_by_ready_queue"][f"ip-a->{site}"]["suspended"]["context"] == "r"
    time.sleep(1.5)
    assert len(sink.messages) == 1
    status, _ = post(ports[0], {"id": reply["id"]}, path=ADMIN + "/suspend-ready-q/v1",
                     method="DELETE")
    assert status == 200
    assert len(sink.wait_messages(4, timeout=20)) == 4
    status, reply = post(ports[0], {"name": "no-arrow", "reason": "r", "duration": 60},
                         path=ADMIN + "/suspend-ready-q/v1")
    assert status == 422 and "name" in reply["error"]


def test_rebind_moves_held_messages_to_another_queue(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    t = ternd(http_policy())
    suspend(ports[0], domain="held.example")
    inject(ports[0], "held.example", 3)
    assert wait_for(lambda: summary(ports[0]).get("held.example", {}).get("suspended_count") == 3)
    status, reply = post(ports[0], {"domain": "held.example", "reason": "move",
                                    "data": {"queue": "overflow@held.example"}},
                         path=ADMIN + "/rebind/v1")
    assert status == 200, reply
    # The new queue's name holds no campaign and a tenant: the suspension (domain) still matches.
    assert wait_for(lambda: list(q["name"] for q in summary(ports[0]).values())
                    == ["overflow@held.example"])
    status, listed = post(ports[0], b"", path=ADMIN + "/suspend/v1", method="GET")
    post(ports[0], {"id": listed[0]["id"]}, path=ADMIN + "/suspend/v1", method="DELETE")
    assert len(sink.wait_messages(3, timeout=20)) == 3
    recs = wait_records(t, of_type("Delivery"), 3)
    assert {r["queue"] for r in recs} == {"overflow@held.example"}
    status, reply = post(ports[0], {"domain": "x", "reason": "r"}, path=ADMIN + "/rebind/v1")
    assert status == 422 and "data" in reply["error"]


def test_liveness_fails_below_the_spool_floor(ternd, ports):
    policy = http_policy().replace("path = '{dir}/spool' }",
                                   "path = '{dir}/spool', min_free_space = '99.999%' }")
    ternd(policy)

    def live():
        return post(ports[0], b"", method="GET", path="/api/check-liveness/v1")
    assert wait_for(lambda: live()[0] == 503, timeout=10)
    assert "free-space floor" in live()[1]["error"]
