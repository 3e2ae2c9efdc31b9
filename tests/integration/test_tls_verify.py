# SPDX-License-Identifier: MIT
"""Regression: outbound TLS never verified the receiver's certificate, so
enable_tls = 'required' only meant "encrypted", to anyone. Now 'required'
verifies the chain (system roots, or the path's tls_ca_file) and the MX host
name, and a failure is a TransientFailure saying why; 'required_insecure'
keeps encryption without verification; 'opportunistic' never fails over the
certificate (RFC 7435). Every record over TLS says whether the peer verified.
"""
import pytest

import tls
from sinks import (mta_policy, port_free_on, read_records, send_one, ternd_sink,
                   wait_records)

__all__ = ["ternd_sink"]  # fixture, used by name

PATH = """
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1h' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path { smtp_port = %d, %s }
end)
"""


def start_pair(tmp_path, dns_server, ternd_sink, ternd, addr, cert_name, path_opts):
    """A sink on addr named mx.v.test in DNS, with a self-signed certificate for cert_name."""
    port = port_free_on([addr])
    dns = dns_server({"v.test": {"MX": [[10, "mx.v.test."]]}, "mx.v.test": {"A": [addr]}})
    cert, key = tls.make_cert(tmp_path, cert_name)
    sink = ternd_sink(addr, port, tls=(cert, key))
    t = ternd(mta_policy(dns.address, PATH % (port, path_opts.replace("{cert}", cert))))
    return t, sink


def deliver(t, ports):
    send_one(ports[0], "s@origin.test", ["a@v.test"], b"Subject: verify\r\n\r\nx\r\n")
    return wait_records(t, lambda r: r["type"] in ("Delivery", "TransientFailure"), 1,
                        timeout=15)[0]


@pytest.mark.parametrize("addr,name,opts,verified", [
    ("127.0.0.61", "mx.v.test", "enable_tls = 'required_insecure'", False),
    ("127.0.0.62", "mx.v.test", "enable_tls = 'required', tls_ca_file = '{cert}'", True),
    ("127.0.0.63", "mx.v.test", "enable_tls = 'opportunistic'", False),
    ("127.0.0.64", "other.test", "enable_tls = 'opportunistic', tls_ca_file = '{cert}'", False),
], ids=["required_insecure", "required_with_ca", "opportunistic", "opportunistic_wrong_name"])
def test_delivered_and_recorded(tmp_path, dns_server, ternd_sink, ternd, ports, addr, name, opts,
                                verified):
    t, sink = start_pair(tmp_path, dns_server, ternd_sink, ternd, addr, name, opts)
    rec = deliver(t, ports)
    assert rec["type"] == "Delivery", rec
    assert rec["tls"]["verified"] is verified, rec
    assert len(sink.wait_receptions(1)) == 1


@pytest.mark.parametrize("addr,name,opts,why", [
    ("127.0.0.65", "mx.v.test", "enable_tls = 'required'", "self-signed certificate"),
    ("127.0.0.66", "other.test", "enable_tls = 'required', tls_ca_file = '{cert}'",
     "hostname mismatch"),
], ids=["self_signed", "wrong_name"])
def test_required_fails_transiently_saying_why(tmp_path, dns_server, ternd_sink, ternd, ports,
                                               addr, name, opts, why):
    t, sink = start_pair(tmp_path, dns_server, ternd_sink, ternd, addr, name, opts)
    rec = deliver(t, ports)
    assert rec["type"] == "TransientFailure", rec
    assert rec["response"]["code"] == 451 and rec["response"]["enhanced_code"] == "4.7.5", rec
    content = rec["response"]["content"]
    assert "certificate verify failed for mx.v.test" in content and why in content, content
    assert rec["tls"]["verified"] is False, rec
    t.stop()
    assert [r["type"] for r in read_records(t)] == ["Reception", "TransientFailure"]
    assert sink.receptions() == []


@pytest.mark.parametrize("opts,why", [
    ("enable_tls = 'verify'", "required_insecure"),
    ("enable_tls = 'required', tls_ca_file = '/nonexistent/ca.pem'",
     "tls_ca_file /nonexistent/ca.pem: No such file or directory"),
], ids=["enable_tls", "tls_ca_file"])
def test_bad_path_option_is_a_policy_error(ternd, opts, why):
    t = ternd(mta_policy("127.0.0.1:53", "tern.make_egress_path { %s }" % opts), start=False)
    with pytest.raises(RuntimeError, match=why):
        t.start()
