# SPDX-License-Identifier: MIT
"""The delivery engine end to end: a ternd relays mail injected over SMTP to
sinks on loopback, finding them through the test DNS server, from source
addresses 127.0.0.2-4; the tests check what the sinks saw and the outcome
records ternd wrote (Delivery, TransientFailure, Bounce, Expiration).
"""
import collections

import dkim
import pytest

import tls
from conftest import run_tern
from sinks import (chunks, inject, mta_policy, of_type, port_free_on, postfix_sink, py_sink,
                   read_records, record_time, send_one, ternd_sink, wait_records)
from verifiers import dkimpy_dnsfunc, opendkim_conf, opendkim_verify

__all__ = ["postfix_sink", "py_sink", "ternd_sink"]  # fixtures, used by name

SOURCES = {"ip-a": ("127.0.0.2", "a.out.test"), "ip-b": ("127.0.0.3", "b.out.test"),
           "ip-c": ("127.0.0.4", "c.out.test")}
EHLO_OF = {addr: ehlo for addr, ehlo in SOURCES.values()}

SOURCE_HOOKS = """
local sources = {
  ['ip-a'] = { '127.0.0.2', 'a.out.test' },
  ['ip-b'] = { '127.0.0.3', 'b.out.test' },
  ['ip-c'] = { '127.0.0.4', 'c.out.test' },
}
tern.on('get_egress_source', function(name)
  local s = assert(sources[name], name)
  return tern.make_egress_source { name = name, source_address = s[1], ehlo_domain = s[2] }
end)
"""


def policy(dns, pool_entries, queue_opts, path_opts, extra=""):
    """The MTA's policy: sources ip-a..c, pool 'shared', one queue config and one path config."""
    return mta_policy(dns.address, SOURCE_HOOKS + """
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { %s } }
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'shared', %s }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { %s }
end)
""" % (pool_entries, queue_opts, path_opts) + extra)


def one_source(dns, queue_opts, path_opts, extra=""):
    return policy(dns, "{ name = 'ip-a', weight = 1 }", queue_opts, path_opts, extra)


def mx_zone(domain, *mx_hosts):
    """domain's MX records for (preference, host, address) triples, with their A records."""
    zone = {domain: {"MX": [[pref, host + "."] for pref, host, _ in mx_hosts]}}
    for _, host, addr in mx_hosts:
        zone[host] = {"A": [addr]}
    return zone


def host_of(peer):
    return peer.rsplit(":", 1)[0]


# ---- 1. pools, sources and sites ------------------------------------------------------------------

WEIGHTS = {"ip-a": 3, "ip-b": 2, "ip-c": 1}


def test_500_messages_to_five_domains_from_three_sources(ternd, ports, dns_server, ternd_sink, py_sink,
                                                         postfix_sink):
    sink_addr = {n: f"127.0.0.1{n}" for n in range(1, 6)}
    port = port_free_on(list(sink_addr.values()))
    zones = {}
    for n, addr in sink_addr.items():
        zones.update(mx_zone(f"d{n}.test", (10, f"mx.d{n}.test", addr)))
    dns = dns_server(zones)
    sinks = {1: ternd_sink(sink_addr[1], port), 2: ternd_sink(sink_addr[2], port),
             3: py_sink(sink_addr[3], port), 4: postfix_sink(sink_addr[4], port),
             5: ternd_sink(sink_addr[5], port)}
    entries = ", ".join(f"{{ name = '{k}', weight = {w} }}" for k, w in WEIGHTS.items())
    t = ternd(policy(dns, entries, "retry_interval = '1s'", f"smtp_port = {port}"))

    rcpts = [f"user{i}@d{n}.test" for i in range(100) for n in range(1, 6)]
    ids = inject(ports[0], chunks(rcpts, 10))
    assert len(set(ids)) == 500

    deliveries = wait_records(t, of_type("Delivery"), 500, timeout=60)
    others = [r for r in read_records(t) if r["type"] not in ("Reception", "Delivery")]
    assert others == [], others[:3]
    assert len(deliveries) == 500
    assert sorted(r["id"] for r in deliveries) == sorted(ids)
    assert sorted(r["recipient"] for r in deliveries) == sorted(rcpts)

    by_source = collections.Counter(r["egress_source"] for r in deliveries)
    for name, weight in WEIGHTS.items():
        assert abs(by_source[name] - 500 * weight / 6) <= 3, by_source
    for r in deliveries:
        n = int(r["recipient"].split("@d")[1][0])
        assert r["egress_pool"] == "shared"
        assert r["source_address"] == SOURCES[r["egress_source"]][0], r
        assert r["peer_address"] == f"{sink_addr[n]}:{port}", r
        assert r["site"] == f"mx.d{n}.test.", r
        assert r["response"]["code"] == 250

    # The pool's weights hold over all its messages (checked above), not per destination: how
    # the five domains' messages interleave decides which sources each one meets, so a sink
    # sees at least two of them, not necessarily all three.
    everyone = {addr for addr, _ in SOURCES.values()}

    def mixed(peers):
        return len(peers) >= 2 and peers <= everyone

    for n in (1, 2, 5):
        recs = sinks[n].wait_receptions(100)
        assert len(recs) == 100, n
        assert sorted(r["recipient"] for r in recs) == sorted(
            f"user{i}@d{n}.test" for i in range(100))
        assert mixed({host_of(r["peer_address"]) for r in recs}), n

    got = sinks[3].wait_messages(100)
    assert len(got) == 100
    assert mixed({m["peer"] for m in got})
    assert all(m["ehlo"] == EHLO_OF[m["peer"]] for m in got), got[:3]
    assert all(s["ehlo"] == EHLO_OF[s["peer"]] for s in sinks[3].sessions)

    dumped = sinks[4].wait_transactions(100)
    assert len(dumped) == 100
    assert mixed({d["client_addr"] for d in dumped})
    assert all(d["helo"] == EHLO_OF[d["client_addr"]] for d in dumped), dumped[:3]


# ---- 4. outcomes: retry, bounce, expiry, DNS, MX fallback ---------------------------------------

def sink_domain(dns_server, ternd_sink, domain="r.test", addr="127.0.0.21"):
    """domain -> MX mx.<domain> -> addr, where a ternd sink listens; returns (dns, port, sink)."""
    port = port_free_on([addr])
    dns = dns_server(mx_zone(domain, (10, "mx." + domain, addr)))
    return dns, port, ternd_sink(addr, port)


def for_rcpt(kind, rcpt):
    return lambda r: r["type"] == kind and r["recipient"] == rcpt


def test_tempfail_retried_with_backoff_and_permfail_bounced_at_once(ternd, ports, dns_server,
                                                                    ternd_sink):
    dns, port, sink = sink_domain(dns_server, ternd_sink)
    t = ternd(one_source(dns, "retry_interval = '1s', max_retry_interval = '1h'",
                         f"smtp_port = {port}"))
    send_one(ports[0], "s@origin.test", ["tempfail-1@r.test", "permfail-1@r.test"],
             b"Subject: retry\r\n\r\nx\r\n")

    fails = wait_records(t, for_rcpt("TransientFailure", "tempfail-1@r.test"), 4, timeout=15)
    assert len(fails) >= 4
    fails = fails[:4]
    assert all(r["response"]["code"] == 451 and r["response"]["enhanced_code"] == "4.3.0"
               for r in fails), fails[0]
    assert all(r["peer_address"] == f"127.0.0.21:{port}" for r in fails)
    attempts = [r["num_attempts"] for r in fails]
    assert attempts == list(range(attempts[0], attempts[0] + 4)), attempts
    gaps = [record_time(b) - record_time(a) for a, b in zip(fails, fails[1:])]
    # Jitter is +-10%; a busy box may wake the retry up to 0.6 s late, still short of the
    # next step of the backoff.
    for gap, base in zip(gaps, (1, 2, 4)):
        assert 0.9 * base - 0.05 <= gap <= 1.1 * base + 0.6, gaps

    bounces = [r for r in read_records(t) if r["recipient"] == "permfail-1@r.test"
               and r["type"] != "Reception"]
    assert [r["type"] for r in bounces] == ["Bounce"], bounces
    assert bounces[0]["response"]["code"] == 550
    assert bounces[0]["response"]["enhanced_code"] == "5.1.1"
    assert record_time(bounces[0]) - record_time(fails[0]) < 1
    assert sink.receptions() == []


def test_first_attempt_counts_as_attempt_one(ternd, ports, dns_server, ternd_sink):
    # Regression: num_attempts was one short (0 on a first-try Delivery), the record's
    # count being overwritten by the queue's count from before the attempt.
    dns, port, sink = sink_domain(dns_server, ternd_sink)
    t = ternd(one_source(dns, "retry_interval = '1s'", f"smtp_port = {port}"))
    send_one(ports[0], "s@origin.test", ["ok@r.test", "tempfail-2@r.test"],
             b"Subject: n\r\n\r\nx\r\n")
    delivered = wait_records(t, of_type("Delivery"), 1)
    fails = wait_records(t, of_type("TransientFailure"), 2, timeout=10)
    assert delivered[0]["num_attempts"] == 1, delivered[0]
    assert [r["num_attempts"] for r in fails[:2]] == [1, 2]


def test_max_age_expires_a_tempfailing_message(ternd, ports, dns_server, ternd_sink):
    dns, port, sink = sink_domain(dns_server, ternd_sink)
    # Retries capped at 1 s, so the message comes due about every second: expiry is checked
    # at the first due time past max_age, 3 to 4.1 s after reception (jitter 0.9-1.1).
    t = ternd(one_source(dns, "retry_interval = '1s', max_retry_interval = '1s', max_age = '3s'",
                         f"smtp_port = {port}"))
    send_one(ports[0], "s@origin.test", ["tempfail-3@r.test"], b"Subject: old\r\n\r\nx\r\n")
    expired = wait_records(t, of_type("Expiration"), 1, timeout=12)
    assert len(expired) == 1
    assert expired[0]["recipient"] == "tempfail-3@r.test"
    assert expired[0]["response"]["code"] == 551
    assert expired[0]["response"]["enhanced_code"] == "5.4.7"
    age = record_time(expired[0]) - record_time(
        next(r for r in read_records(t) if r["type"] == "Reception"))
    # 4.1 s plus a second of slack for a loaded 2-core machine.
    assert 3 <= age <= 5.1, age
    assert not [r for r in read_records(t) if r["type"] in ("Delivery", "Bounce")]
    assert len(wait_records(t, of_type("TransientFailure"), 2, timeout=0)) >= 2


DNS_ZONES = {
    "nullmx.test": {"MX": [[0, "."]]},
    "sf.test": {"servfail": True},
    "$zones": ["nullmx.test", "nx.test", "sf.test"],
}


@pytest.mark.parametrize("rcpt,kind,code,enhanced", [
    ("a@nullmx.test", "Bounce", 550, "5.1.10"),
    ("a@missing.nx.test", "Bounce", 550, "5.1.2"),
    ("a@sf.test", "TransientFailure", 451, "4.4.3"),
])
def test_dns_outcomes(ternd, ports, dns_server, rcpt, kind, code, enhanced):
    dns = dns_server(DNS_ZONES)
    t = ternd(one_source(dns, "retry_interval = '1h'", "smtp_port = 9"))
    send_one(ports[0], "s@origin.test", [rcpt], b"Subject: dns\r\n\r\nx\r\n")
    recs = wait_records(t, lambda r: r["type"] not in ("Reception",), 1, timeout=10)
    assert [r["type"] for r in recs] == [kind], recs
    assert recs[0]["response"]["code"] == code
    assert recs[0]["response"]["enhanced_code"] == enhanced
    assert "DNS" in recs[0]["response"]["content"]
    assert dns.count(rcpt.split("@")[1], "MX") >= 1


def test_mx_fallback_to_second_preference(ternd, ports, dns_server, ternd_sink):
    down, up = "127.0.0.31", "127.0.0.32"
    port = port_free_on([down, up])
    dns = dns_server(mx_zone("fb.test", (10, "mx1.fb.test", down), (20, "mx2.fb.test", up)))
    sink = ternd_sink(up, port)
    t = ternd(one_source(dns, "retry_interval = '1h'", f"smtp_port = {port}"))
    send_one(ports[0], "s@origin.test", ["a@fb.test"], b"Subject: fb\r\n\r\nx\r\n")
    delivered = wait_records(t, of_type("Delivery"), 1, timeout=10)
    assert len(delivered) == 1
    assert delivered[0]["peer_address"] == f"{up}:{port}"
    assert delivered[0]["site"] == "mx1.fb.test.,mx2.fb.test."
    assert [r["type"] for r in read_records(t)] == ["Reception", "Delivery"]
    assert [r["recipient"] for r in sink.wait_receptions(1)] == ["a@fb.test"]


# ---- 5. STARTTLS -----------------------------------------------------------------------------------

def test_opportunistic_starttls_is_used_and_recorded(ternd, ports, tmp_path, dns_server,
                                                     ternd_sink):
    addr = "127.0.0.41"
    port = port_free_on([addr])
    dns = dns_server(mx_zone("tls.test", (10, "mx.tls.test", addr)))
    sink = ternd_sink(addr, port, tls=tls.make_cert(tmp_path, "mx.tls.test"))
    t = ternd(one_source(dns, "retry_interval = '1h'", f"smtp_port = {port}"))
    send_one(ports[0], "s@origin.test", ["a@tls.test"], b"Subject: tls\r\n\r\nx\r\n")
    delivered = wait_records(t, of_type("Delivery"), 1, timeout=10)
    assert len(delivered) == 1
    assert delivered[0]["tls"] is not None, delivered[0]
    assert delivered[0]["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert delivered[0]["tls"]["cipher"]
    assert len(sink.wait_receptions(1)) == 1


def test_required_tls_to_a_server_without_it_fails_transiently(ternd, ports, dns_server,
                                                               ternd_sink):
    dns, port, sink = sink_domain(dns_server, ternd_sink, "plain.test", "127.0.0.42")
    t = ternd(one_source(dns, "retry_interval = '1h'",
                         f"smtp_port = {port}, enable_tls = 'required'"))
    send_one(ports[0], "s@origin.test", ["a@plain.test"], b"Subject: tls\r\n\r\nx\r\n")
    fails = wait_records(t, of_type("TransientFailure"), 1, timeout=10)
    assert len(fails) == 1
    assert "TLS" in fails[0]["response"]["content"], fails[0]
    assert fails[0]["response"]["code"] == 451
    t.stop()
    assert [r["type"] for r in read_records(t)] == ["Reception", "TransientFailure"]
    assert sink.receptions() == []


# ---- 7. DKIM ---------------------------------------------------------------------------------------

DKIM_HOOKS = """
local signing = require('tern.dkim').from_table {
  ['origin.test'] = { selector = '%s', key = '%s', algo = '%s' },
}
tern.on('smtp_server_message_received', function(msg)
  for _, signer in ipairs(signing:signers_for('origin.test')) do msg:dkim_sign(signer) end
end)
"""


@pytest.mark.parametrize("algo,genkey", [("rsa", "rsa2048"), ("ed25519", "ed25519")])
def test_dkim_signed_message_verifies_at_the_receiver(ternd, ports, tmp_path, dns_server,
                                                      py_sink, algo, genkey):
    out = run_tern("dkim", "genkey", "--domain", "origin.test", "--selector", "s1",
                   "--algo", genkey, "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    name = out.stdout.split()[0].rstrip(".")
    txt = "".join(__import__("re").findall(r'"([^"]*)"', out.stdout))
    addr = "127.0.0.51"
    port = port_free_on([addr])
    # The receiving side's verifiers fetch the key from the same loopback DNS server.
    dns = dns_server({**mx_zone("dk.test", (10, "mx.dk.test", addr)), name: {"TXT": [txt]}})
    sink = py_sink(addr, port)
    t = ternd(one_source(dns, "retry_interval = '1h'", f"smtp_port = {port}",
                         DKIM_HOOKS % ("s1", tmp_path / "s1.origin.test.key", algo)))
    body = (b"From: Sender <s@origin.test>\r\nTo: a@dk.test\r\nSubject: signed\r\n\r\n"
            b"Hello,\r\n.leading dot\r\n\r\nbye\r\n")
    send_one(ports[0], "s@origin.test", ["a@dk.test"], body)
    got = sink.wait_messages(1)
    assert len(got) == 1
    data = got[0]["data"]
    assert data.startswith(b"DKIM-Signature:"), data[:200]
    assert b"d=origin.test" in data and b"s=s1" in data

    dnsfunc = dkimpy_dnsfunc(dns.address)
    assert dkim.verify(data, dnsfunc=dnsfunc)
    assert not dkim.verify(data.replace(b"bye", b"bye!"), dnsfunc=dnsfunc)
    conf = opendkim_conf(dns.address, str(tmp_path))
    assert opendkim_verify(conf, data, str(tmp_path)), "opendkim rejects the signature"
    assert not opendkim_verify(conf, data.replace(b"bye", b"bye!"), str(tmp_path), 1)
    assert dns.count(name, "TXT") >= 3
    assert len(wait_records(t, of_type("Delivery"), 1)) == 1
