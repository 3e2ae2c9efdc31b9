# SPDX-License-Identifier: MIT
"""PROXY protocol (v1 and v2) on HTTP listeners.

libmicrohttpd reads its sockets itself, so a listener with proxy_protocol
accepts, reads the header from a trusted balancer and hands the connection
to it with the client the header names. That client is who trusted_hosts
judges (203.0.113.5, outside them, gets 401) and who the Reception record
names; a peer that is not trusted, or a trusted one without a valid header,
is closed. 203.0.113.5 and 198.51.100.7 appear only inside header bytes: no
traffic goes to them.
"""
import json
import socket
import time

import pytest

from test_proxy_protocol import v1, v2

CLIENT = "203.0.113.5"      # outside trusted_hosts
ALLOWED = "198.51.100.7"    # inside trusted_hosts

INJECT = {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}],
          "content": {"from": {"email": "a@sender.test"}, "text_body": "x"}}


def policy(proxy, extra=""):
    return ("tern.on('init', function()\n"
            "  tern.define_spool { path = '{dir}/spool' }\n"
            "  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }\n"
            "  tern.start_http_listener { listen = '127.0.0.1:{port}', client_timeout = '2s',\n"
            "    trusted_hosts = { '198.51.100.0/24' }, proxy_protocol = %s%s }\n"
            "end)\n"
            # Injected mail waits an hour on an unreachable loopback MX: nothing leaves.
            "tern.on('get_queue_config', function()\n"
            "  return tern.make_queue_config { retry_interval = '1h',\n"
            "                                  mx_list = { '127.0.0.1:{port9}' } }\nend)\n"
            % (proxy, extra))


def request(method, path, body=b""):
    head = (f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def exchange(port, *chunks, pause=0.0):
    """Send the chunks (pausing between them); the whole answer, b'' when closed without one."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        for i, c in enumerate(chunks):
            if i and pause:
                time.sleep(pause)
            s.sendall(c)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                return out
            if not d:
                return out
            out += d
    finally:
        s.close()


def status(answer):
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


TRUSTED = "{ trusted = { '127.0.0.0/8' } }"


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
def test_claimed_client_is_judged_by_trusted_hosts(ternd, ports, header):
    ternd(policy(TRUSTED))
    # The balancer (127.0.0.1) is not in trusted_hosts; the client it names decides.
    assert status(exchange(ports[0], header(CLIENT, ports[0]) + request("GET", "/metrics"))) == 401
    assert status(exchange(ports[0], header(ALLOWED, ports[0]) + request("GET", "/metrics"))) == 200


def test_claimed_client_is_in_the_reception_record(ternd, ports):
    t = ternd(policy(TRUSTED))
    answer = exchange(ports[0], v2(ALLOWED, ports[0])
                      + request("POST", "/api/inject/v1", json.dumps(INJECT).encode()))
    assert status(answer) == 200, answer
    deadline = time.monotonic() + 15
    while not [r for r in t.records() if r["type"] == "Reception"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (rec,) = [r for r in t.records() if r["type"] == "Reception"]
    assert rec["peer_address"] == ALLOWED, rec


def test_header_in_pieces_and_request_right_behind_it(ternd, ports):
    # A header split over several segments, the request in the same segment as its end:
    # the listener must take the header and leave every byte of the request to HTTP.
    ternd(policy(TRUSTED))
    h = v1(ALLOWED, ports[0])
    answer = exchange(ports[0], h[:7], h[7:20], h[20:] + request("GET", "/metrics"), pause=0.2)
    assert status(answer) == 200, answer
    h = v2(ALLOWED, ports[0])
    answer = exchange(ports[0], h[:5], h[5:14], h[14:] + request("GET", "/metrics"), pause=0.2)
    assert status(answer) == 200, answer


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
def test_untrusted_peer_sending_a_header_is_closed(ternd, ports, header):
    t = ternd(policy("{ trusted = { '10.0.0.0/8' } }"))
    assert exchange(ports[0], header(ALLOWED, ports[0]) + request("GET", "/metrics")) == b""
    assert exchange(ports[0], request("GET", "/metrics")) == b""
    assert "not a trusted PROXY peer: closed" in t.stderr()


def test_untrusted_peer_served_as_itself_when_not_required(ternd, ports):
    ternd(policy("{ trusted = { '10.0.0.0/8' }, required = false }"))
    # 127.0.0.1 is not in trusted_hosts here: judged as itself, not as a header could claim.
    assert status(exchange(ports[0], request("GET", "/metrics"))) == 401


def test_trusted_peer_without_a_valid_header_is_closed(ternd, ports):
    t = ternd(policy(TRUSTED))
    assert exchange(ports[0], request("GET", "/metrics")) == b""
    assert exchange(ports[0], b"PROXY TCP4 nonsense\r\n" + request("GET", "/metrics")) == b""
    # Silence: closed at client_timeout (2 s), not held for ever.
    s = socket.create_connection(("127.0.0.1", ports[0]), timeout=15)
    start = time.monotonic()
    assert s.recv(100) == b""
    assert 1.5 < time.monotonic() - start < 12
    s.close()
    assert "no PROXY header within 2s" in t.stderr()
    # The listener still serves.
    assert status(exchange(ports[0], v1(ALLOWED, ports[0]) + request("GET", "/metrics"))) == 200
