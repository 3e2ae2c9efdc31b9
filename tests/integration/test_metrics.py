# SPDX-License-Identifier: MIT
"""GET /metrics and /metrics.json against a real relaying ternd.

Mail goes in over SMTP and out to a ternd sink found through the test DNS
server; the exposition is parsed with prometheus_client's text parser (the
reference implementation of format 0.0.4) and its counters are compared with
the outcome records ternd wrote for the same messages.
"""
import http.client
import json
import os
import ssl
import subprocess
import time

import pytest

import tls
from conftest import ROOT
from sinks import of_type, port_free_on, read_records, send_one, ternd_sink, wait_records

__all__ = ["ternd_sink"]  # fixture, used by name

parser = pytest.importorskip("prometheus_client.parser",
                             reason="python3-prometheus-client is not installed")

SINK_ADDR = "127.0.0.21"

POLICY = """
tern.dns.configure { servers = { '%s' }, timeout = '1s', attempts = 1 }
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }
  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',
                              relay_hosts = { '127.0.0.0/8' } }
  tern.start_esmtp_listener { listen = '127.0.0.1:{port2}', hostname = 'tls.test', %s }
  tern.start_http_listener { listen = '127.0.0.1:{port3}' }
end)
tern.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', msg:get_header('X-Tenant') or 'acme')
end)
tern.on('get_egress_source', function(name)
  return tern.make_egress_source { name = name, source_address = '127.0.0.2',
                                   ehlo_domain = 'a.out.test' }
end)
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { { name = 'ip-a', weight = 1 } } }
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'shared', retry_interval = '1h' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { smtp_port = %d }
end)
"""


def start(ternd, dns_server, ternd_sink, tmp_path):
    """A relaying ternd with an HTTP listener on {port3} and a TLS listener on {port2}."""
    port = port_free_on([SINK_ADDR])
    dns = dns_server({"r.test": {"MX": [[10, "mx.r.test."]]}, "mx.r.test": {"A": [SINK_ADDR]}})
    ternd_sink(SINK_ADDR, port)
    cert, key = tls.make_cert(tmp_path)
    t = ternd(POLICY % (dns.address, tls.listener_options(cert, key), port))
    return t, cert


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), body


def scrape(port):
    """{name: {labels tuple: value}} from /metrics, parsed by the Prometheus text parser."""
    status, ctype, body = get(port, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    out = {}
    for fam in parser.text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(m, name, **labels):
    """Sum of name's samples whose labels include labels."""
    return sum(v for k, v in m.get(name, {}).items() if set(labels.items()) <= set(k))


def count(records, kind):
    return len([r for r in records if r["type"] == kind])


def cert_not_after(cert):
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", cert],
                         capture_output=True, text=True, check=True).stdout
    return ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])


def wait_for(fn, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.2)


def test_counters_match_the_records(ternd, ports, dns_server, ternd_sink, tmp_path):
    t, cert = start(ternd, dns_server, ternd_sink, tmp_path)
    ok = [f"ok-{i}@r.test" for i in range(10)]
    bad = [f"permfail-{i}@r.test" for i in range(3)]
    later = [f"tempfail-{i}@r.test" for i in range(2)]
    send_one(ports[0], "s@origin.test", ok[:5] + bad, b"Subject: one\r\n\r\nx\r\n")
    send_one(ports[0], "s@origin.test", ok[5:] + later, b"Subject: two\r\n\r\nx\r\n")
    wait_records(t, of_type("Delivery"), 10)
    wait_records(t, of_type("Bounce"), 3)
    wait_records(t, of_type("TransientFailure"), 2)
    recs = read_records(t)
    # The scheduled queue gauge is published once a second: wait for the two deferred messages.
    m = wait_for(lambda: (lambda m: m if total(m, "tern_scheduled_messages") == 2 else None)(
        scrape(ports[2])))
    assert m, scrape(ports[2]).get("tern_scheduled_messages")

    assert total(m, "tern_messages_delivered_total") == count(recs, "Delivery") == 10
    assert total(m, "tern_messages_bounced_total") == count(recs, "Bounce") == 3
    assert total(m, "tern_messages_transient_failures_total") == count(
        recs, "TransientFailure") == 2
    assert total(m, "tern_messages_expired_total") == count(recs, "Expiration") == 0
    listener = f"127.0.0.1:{ports[0]}"
    assert total(m, "tern_messages_received_total", listener=listener) == count(
        recs, "Reception")
    for fam, label, value in [("site", "site", None), ("source", "source", "ip-a"),
                              ("pool", "pool", "shared"), ("tenant", "tenant", "acme")]:
        name = f"tern_outcomes_by_{fam}_total"
        sel = {label: value} if value else {}
        assert total(m, name, outcome="delivered", **sel) == 10, (name, m.get(name))
        assert total(m, name, outcome="bounced", **sel) == 3, (name, m.get(name))
        assert total(m, name, outcome="transient_failure", **sel) == 2, (name, m.get(name))
    assert total(m, "tern_outcomes_by_path_total", source="ip-a", outcome="delivered") == 10

    # Delivery latency is observed for final outcomes: delivered and bounced.
    assert total(m, "tern_delivery_latency_seconds_count") == 13
    assert total(m, "tern_delivery_latency_seconds_bucket", le="+Inf") == 13
    assert total(m, "tern_hook_duration_seconds_count") >= 2
    assert total(m, "tern_spool_sync_batch_records_count") >= 1
    assert total(m, "tern_spool_sync_batches_total") >= 1
    assert total(m, "tern_spool_records_total") >= count(recs, "Reception")
    assert total(m, "tern_spool_disk_free_bytes") > 0
    # Every first attempt took its message from RAM, none read it back; nothing is left kept.
    assert total(m, "tern_spool_kept_taken_total") == 15
    assert total(m, "tern_spool_kept_dropped_total") == 0
    assert total(m, "tern_spool_kept_bytes") == 0
    assert total(m, "tern_connections_in_total") >= 2
    assert total(m, "tern_connections_out_total") >= 1
    assert total(m, "tern_dns_lookups_total") >= 1
    assert total(m, "tern_ready_messages") == 0
    assert total(m, "tern_scheduled_queue_messages") == 2
    assert total(m, "tern_policy_epoch") == 1
    assert total(m, "tern_policy_reload_failures_total") == 0
    assert total(m, "tern_process_resident_memory_bytes") > 1 << 20
    expiry = total(m, "tern_tls_certificate_expiry_timestamp_seconds",
                   listener=f"127.0.0.1:{ports[1]}")
    assert expiry == cert_not_after(cert)
    rev = [dict(k)["revision"] for k in m["tern_policy_info"]]
    assert rev == [recs[0]["policy_revision"]]

    # The JSON twin has the same families and values.
    status, ctype, body = get(ports[2], "/metrics.json?history=1")
    assert status == 200 and ctype == "application/json"
    j = json.loads(body)
    delivered = j["metrics"]["tern_messages_delivered_total"]
    assert delivered["type"] == "counter"
    assert delivered["samples"][0]["value"] == 10
    # The history is sampled on shard 0's tick, which may come after the tick of the shard
    # that published the deferred messages above.
    assert wait_for(lambda: (lambda h: h and h[-1][1] == 10)(
        json.loads(get(ports[2], "/metrics.json?history=1")[2])["history"])), j["history"][-3:]


def test_label_cardinality_is_bounded(ternd, ports, dns_server, ternd_sink, tmp_path):
    # 30 tenants: the exposition keeps the 20 largest and folds the rest into "other".
    t, _ = start(ternd, dns_server, ternd_sink, tmp_path)
    for i in range(30):
        n = 2 if i < 5 else 1
        for j in range(n):
            send_one(ports[0], "s@origin.test", [f"ok-{i}-{j}@r.test"],
                     f"X-Tenant: tenant{i:02d}\r\nSubject: t\r\n\r\nx\r\n".encode())
    wait_records(t, of_type("Delivery"), 35)
    m = scrape(ports[2])
    tenants = {dict(k)["tenant"]: v for k, v in m["tern_outcomes_by_tenant_total"].items()
               if dict(k)["outcome"] == "delivered"}
    assert len(tenants) == 21, tenants
    assert tenants["other"] == 35 - sum(v for k, v in tenants.items() if k != "other")
    assert sum(tenants.values()) == 35
    # The five tenants with two messages are among the top.
    assert all(tenants.get(f"tenant{i:02d}") == 2 for i in range(5)), tenants


def test_unknown_paths_and_methods(ternd, ports, dns_server, ternd_sink, tmp_path):
    start(ternd, dns_server, ternd_sink, tmp_path)
    assert get(ports[2], "/metrics.txt")[0] == 404
    c = http.client.HTTPConnection("127.0.0.1", ports[2], timeout=30)
    c.request("POST", "/metrics", body=b"{}")
    assert c.getresponse().status == 405
    c.close()



def test_every_family_is_documented(ternd, ports, dns_server, ternd_sink, tmp_path):
    start(ternd, dns_server, ternd_sink, tmp_path)
    status, _, body = get(ports[2], "/metrics")
    families = [f.name for f in parser.text_string_to_metric_families(body.decode())]
    doc = open(os.path.join(ROOT, "docs", "metrics.md")).read()
    # The parser drops a counter's _total from the family name; the docs name the full metric.
    missing = [f for f in families if f"`{f}`" not in doc and f"`{f}_total`" not in doc]
    assert families and missing == [], missing


def test_https_listener_certificate_expiry(ternd, ports, tmp_path):
    cert, key = tls.make_cert(tmp_path, "api.test")
    ternd("tern.on('init', function()\n"
          "  tern.define_spool { path = '{dir}/spool' }\n"
          "  tern.start_http_listener { listen = '127.0.0.1:{port}' }\n"
          "  tern.start_http_listener { listen = '127.0.0.1:{port2}', %s }\n"
          "end)\n" % tls.listener_options(cert, key))
    c = http.client.HTTPSConnection("127.0.0.1", ports[1], timeout=30,
                                    context=tls.client_context())
    c.request("GET", "/metrics")
    r = c.getresponse()
    assert r.status == 200
    fams = {f.name: f for f in parser.text_string_to_metric_families(r.read().decode())}
    c.close()
    samples = fams["tern_tls_certificate_expiry_timestamp_seconds"].samples
    assert [(s.labels, s.value) for s in samples] == [
        ({"listener": f"127.0.0.1:{ports[1]}"}, cert_not_after(cert))]


def test_tls_expiry_follows_a_certificate_reload(ternd, ports, tmp_path):
    # The gauge must show the certificate in service, not the one read at start-up.
    from test_tls_reload import install, make_cert_days
    live, new = tmp_path / "live", tmp_path / "new"
    live.mkdir()
    new.mkdir()
    cert, key = make_cert_days(live, "mx.test", 2)
    ternd("tern.on('init', function()\n"
          "  tern.define_spool { path = '{dir}/spool' }\n"
          "  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mx.test', %s,\n"
          "                              tls_reload_interval = '1s' }\n"
          "  tern.start_http_listener { listen = '127.0.0.1:{port2}' }\n"
          "end)\n" % tls.listener_options(cert, key))
    listener = f"127.0.0.1:{ports[0]}"
    before = total(scrape(ports[1]), "tern_tls_certificate_expiry_timestamp_seconds",
                   listener=listener)
    assert before == cert_not_after(cert)
    make_cert_days(new, "mx.test", 90)
    install(new, cert, key)
    after = cert_not_after(cert)
    assert after > before + 80 * 86400
    assert wait_for(lambda: total(scrape(ports[1]), "tern_tls_certificate_expiry_timestamp_seconds",
                                  listener=listener) == after)


def test_policy_epoch_and_reload_failures_follow_reloads(ternd, ports, tmp_path):
    import signal
    policy = ("tern.on('init', function()\n"
              "  tern.define_spool { path = '{dir}/spool' }\n"
              "  tern.start_http_listener { listen = '127.0.0.1:{port}' }\n"
              "end)\n")
    t = ternd(policy)
    m = scrape(ports[0])
    assert total(m, "tern_policy_epoch") == 1
    assert total(m, "tern_policy_reload_failures_total") == 0
    good = open(t.policy_path).read()
    with open(t.policy_path, "w") as f:
        f.write(good + "this is not lua\n")
    t.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: total(scrape(ports[0]), "tern_policy_reload_failures_total") == 1)
    assert total(scrape(ports[0]), "tern_policy_epoch") == 1
    with open(t.policy_path, "w") as f:
        f.write(good + "-- changed\n")
    t.proc.send_signal(signal.SIGHUP)
    # The epoch's log line comes just after its metric.
    assert wait_for(lambda: total(scrape(ports[0]), "tern_policy_epoch") == 2
                    and "epoch 2 loaded" in t.stderr())
    m = scrape(ports[0])
    assert total(m, "tern_policy_reload_failures_total") == 1
    rev = [dict(k)["revision"] for k in m["tern_policy_info"]]
    assert len(rev) == 1 and rev[0] in t.stderr().split("epoch 2 loaded")[1]
