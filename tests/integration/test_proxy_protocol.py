# SPDX-License-Identifier: MIT
"""PROXY protocol (v1 and v2) on ESMTP listeners.

Behind HAProxy every connection came from the balancer's address, so relay
control judged the balancer and records named it. A listener with
proxy_protocol = { trusted = {...} } now reads the header a trusted peer
sends first and takes the client it names; a peer that is not trusted is
closed (or, with required = false, served as itself), and so is a trusted
peer whose first bytes are not a valid header. 203.0.113.5 appears only
inside the header bytes: no traffic goes to it.
"""
import socket
import struct
import time

import pytest

from conftest import listener_policy

CLIENT = "203.0.113.5"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

# Received mail waits an hour on an unreachable loopback MX, so nothing leaves.
HOLD = ("tern.on('get_queue_config', function()\n"
        "  return tern.make_queue_config { retry_interval = '1h',\n"
        "                                  mx_list = { '127.0.0.1:{port9}' } }\nend)\n")


def policy(proxy, relay="'203.0.113.0/24'"):
    return listener_policy(f"relay_hosts = {{ {relay} }}, proxy_protocol = {proxy}", HOLD)


def v1(src, port):
    return f"PROXY TCP4 {src} 127.0.0.1 40000 {port}\r\n".encode()


def v2(src, port):
    addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, port)
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def reply(f):
    while True:
        line = f.readline()
        if not line:
            return None, b""
        if line[3:4] != b"-":
            return int(line[:3]), line


def session(port, header, rcpt):
    """Send header, then a transaction to rcpt; returns the RCPT reply code and closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    s.sendall(header)
    assert reply(f)[0] == 220
    s.sendall(b"EHLO client.test\r\n")
    assert reply(f)[0] == 250
    s.sendall(b"MAIL FROM:<a@client.test>\r\n")
    assert reply(f)[0] == 250
    s.sendall(b"RCPT TO:<" + rcpt.encode() + b">\r\n")
    code = reply(f)[0]
    if code == 250:
        s.sendall(b"DATA\r\n")
        assert reply(f)[0] == 354
        s.sendall(b"Subject: proxied\r\n\r\nbody\r\n.\r\n")
        assert reply(f)[0] == 250
    s.sendall(b"QUIT\r\n")
    reply(f)
    s.close()
    return code


def closed_without_banner(port, first=b""):
    """The connection is closed (after at most a 421) before any 220."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    if first:
        s.sendall(first)
    try:
        code, _ = reply(f)
        rest = f.read()
    except ConnectionResetError:
        # Closed with our unread bytes still in its buffer: the kernel sends a reset.
        code, rest = None, b""
    s.close()
    return code in (None, 421) and rest == b""


def receptions(t, n):
    deadline = time.time() + 10
    while time.time() < deadline:
        recs = [r for r in t.records() if r.get("type") == "Reception"]
        if len(recs) >= n:
            return recs
        time.sleep(0.1)
    raise AssertionError(f"expected {n} Reception records, got {t.records()}")


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
def test_trusted_header_sets_client_for_relay_and_records(ternd, ports, header):
    t = ternd(policy("{ trusted = { '127.0.0.1' } }"))
    assert session(ports[0], header(CLIENT, ports[0]), "b@remote.example") == 250
    # The balancer itself (127.0.0.1) is not in relay_hosts: it is the claimed client that counts.
    assert session(ports[0], header("198.51.100.7", ports[0]), "b@remote.example") == 550
    rec = receptions(t, 1)
    assert [r["peer_address"] for r in rec] == [CLIENT]
    assert t.stop() == 0


def test_untrusted_peer_is_closed(ternd, ports):
    ternd(policy("{ trusted = { '10.0.0.0/8' } }"))
    assert closed_without_banner(ports[0], v1(CLIENT, ports[0]))


def test_trusted_peer_without_header_is_closed(ternd, ports):
    ternd(policy("{ trusted = { '127.0.0.1' } }"))
    assert closed_without_banner(ports[0], b"EHLO client.test\r\n")
    assert closed_without_banner(ports[0], b"PROXY TCP4 203.0.113.5 nonsense\r\n")


def test_not_required_serves_untrusted_peer_as_itself(ternd, ports):
    t = ternd(policy("{ trusted = { '10.0.0.0/8' }, required = false }", relay="'127.0.0.1'"))
    assert session(ports[0], b"", "b@remote.example") == 250
    assert [r["peer_address"] for r in receptions(t, 1)] == ["127.0.0.1"]
    # ... but a header from it is still a forged address: closed.
    s = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
    f = s.makefile("rb")
    assert reply(f)[0] == 220
    s.sendall(v1(CLIENT, ports[0]))
    assert reply(f)[0] == 421
    assert f.read() == b""
    s.close()


@pytest.mark.parametrize("bad", ["proxy_protocol = true", "proxy_protocol = { trusted = 'x' }",
                                 "proxy_protocol = { trusted = { 'nope' } }",
                                 "proxy_protocol = { trust = { '127.0.0.1' } }"])
def test_bad_option_is_a_policy_error(ternd, bad):
    t = ternd(listener_policy(bad), start=False)
    with pytest.raises(RuntimeError, match="proxy_protocol"):
        t.start()
