# SPDX-License-Identifier: MIT
"""policy-examples/esp.lua end to end: four weighted sources, shaping by
provider, tenants from headers, and two DKIM signatures (the customer's RSA
and the ESP's Ed25519) that a real verifier accepts at the receiver."""
import re

import dkim

from conftest import ROOT, run_tern
from sinks import of_type, port_free_on, py_sink, send_one, wait_records
from verifiers import dkimpy_dnsfunc, opendkim_conf, opendkim_verify

__all__ = ["py_sink"]  # fixture, used by name

ESP = f"{ROOT}/policy-examples/esp.lua"
SINK = "127.0.0.60"


def genkey(keys, domain, selector, algo):
    out = run_tern("dkim", "genkey", "--domain", domain, "--selector", selector, "--algo", algo,
                   "--out", str(keys))
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0].rstrip("."), "".join(re.findall(r'"([^"]*)"', out.stdout))


def test_esp_policy_delivers_signed_mail_through_its_pool(ternd, ports, tmp_path, dns_server,
                                                          py_sink, monkeypatch):
    keys = tmp_path / "esp" / "keys"
    keys.mkdir(parents=True)
    txt = dict([genkey(keys, "customer.test", "s1", "rsa2048"),
                genkey(keys, "esp.test", "esp", "ed25519")])
    port = port_free_on([SINK])
    sink = py_sink(SINK, port)
    # The receiver's verifiers fetch both keys from the same loopback DNS server.
    dns = dns_server({"gmail.com": {"MX": [[5, "gmail-smtp-in.l.gmail.test."]]},
                      "gmail-smtp-in.l.gmail.test": {"A": [SINK]},
                      **{name: {"TXT": [value]} for name, value in txt.items()}})
    monkeypatch.setenv("TERN_ESP_DIR", str(tmp_path / "esp"))
    monkeypatch.setenv("TERN_ESP_LISTEN", f"127.0.0.1:{ports[0]}")
    monkeypatch.setenv("TERN_ESP_DNS", dns.address)
    monkeypatch.setenv("TERN_ESP_SMTP_PORT", str(port))
    t = ternd(open(ESP).read())

    n = 26
    for i in range(n):
        body = (f"From: News <news@customer.test>\r\nTo: u{i}@gmail.com\r\n"
                f"Subject: issue {i}\r\nX-Tenant: acme\r\nX-Campaign: spring\r\n\r\n"
                f"Hello {i}\r\n").encode()
        send_one(ports[0], "bounces@customer.test", [f"u{i}@gmail.com"], body)
    delivered = wait_records(t, of_type("Delivery"), n, timeout=60, log_dir="esp/log")
    assert len(delivered) == n
    assert {r["queue"] for r in delivered} == {"spring:acme@gmail.com"}
    assert {r["meta"]["tenant"] for r in delivered} == {"acme"}
    # Weights 4:4:4:1 over 26 picks: smooth round-robin gives exactly 8, 8, 8 and 2.
    per_source = {}
    for r in delivered:
        per_source[r["source_address"]] = per_source.get(r["source_address"], 0) + 1
    assert per_source == {"127.0.0.2": 8, "127.0.0.3": 8, "127.0.0.4": 8, "127.0.0.5": 2}
    assert {r["site"] for r in delivered} == {"gmail-smtp-in.l.gmail.test."}

    dnsfunc = dkimpy_dnsfunc(dns.address)
    conf = opendkim_conf(dns.address, str(tmp_path))
    got = sink.wait_messages(n)
    # Each recipient's message arrived, and only once.
    assert sorted(r for m in got for r in m["rcpt_tos"]) == sorted(f"u{i}@gmail.com"
                                                                   for i in range(n))
    for m in got:
        data = m["data"]
        assert b"X-Tenant" not in data.split(b"\r\n\r\n")[0]
        sigs = re.findall(rb"^DKIM-Signature:.*?(?=^\S)", data, re.M | re.S)
        assert len(sigs) == 2, data[:600]
        assert dkim.verify(data, dnsfunc=dnsfunc), "first signature"
        d = dkim.DKIM(data)
        assert d.verify(idx=1, dnsfunc=dnsfunc), "second signature"
    # opendkim -t gives one verdict for the message (of its signatures); one message is enough.
    assert opendkim_verify(conf, got[0]["data"], str(tmp_path)), "opendkim rejects the signature"
    assert {m["peer"] for m in got} == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
