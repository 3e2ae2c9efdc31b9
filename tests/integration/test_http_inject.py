# SPDX-License-Identifier: MIT
"""POST /api/inject/v1 on tern.start_http_listener, against real ternd processes.

Messages built from the JSON are delivered to a Python sink and parsed with
Python's `email` package; durability is checked with kill -9 right after the
HTTP reply; access control with a client bound to 127.0.0.2; the body limit,
malformed bodies and wrong fields with raw requests.
"""
import base64
import email
import email.policy
import http.client
import json
import os
import socket
import threading
import time

import pytest

from conftest import run_tern
from sinks import py_sink

__all__ = ["py_sink"]  # fixture, used by name

# Deliver to the sink at 127.0.0.1:{port2}; keep the spool to check after a kill.
QUEUE_TO_SINK = ("tern.on('get_queue_config', function()\n"
                 "  return tern.make_queue_config { retry_interval = '1h',\n"
                 "                                  mx_list = { '127.0.0.1:{port2}' } }\nend)\n")


def http_policy(options="", hooks=""):
    opts = (", " + options) if options else ""
    return ("tern.on('init', function()\n"
            "  tern.define_spool { path = '{dir}/spool' }\n"
            "  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }\n"
            "  tern.start_http_listener { listen = '127.0.0.1:{port}'" + opts + " }\n"
            "end)\n" + QUEUE_TO_SINK + hooks)


def post(port, body, headers=None, source=None, path="/api/inject/v1", method="POST"):
    """One request; returns (status, parsed JSON body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                   source_address=(source, 0) if source else None)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    c.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                **(headers or {})})
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, json.loads(raw)


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def text(part):
    """A text part's content with the wire's CRLF line ends read as newlines."""
    return part.get_content().replace("\r\n", "\n")


def test_100_recipients_each_body_personalised(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    ternd(http_policy())
    rcpts = [{"email": f"user{i}@example.net", "name": f"User {i}",
              "substitutions": {"first": f"Name{i}", "n": i}} for i in range(100)]
    status, reply = post(ports[0], {
        "envelope_sender": "news@sender.test",
        "recipients": rcpts,
        "substitutions": {"company": "Acme"},
        "content": {"subject": "Hello {{ first }} from {{company}}",
                    "from": {"email": "news@sender.test", "name": "Acme News"},
                    "text_body": "Dear {{ first }},\nyou are number {{ n }}.\n"}})
    assert status == 200, reply
    assert reply == {"success_count": 100, "fail_count": 0, "failed_recipients": [], "errors": []}
    got = sink.wait_messages(100, timeout=60)
    assert len(got) == 100
    seen = set()
    for m in got:
        msg = parse(m["data"])
        i = int(m["rcpt_tos"][0][len("user"):].split("@")[0])
        assert msg["Subject"] == f"Hello Name{i} from Acme"
        assert msg["To"].addresses[0].display_name == f"User {i}"
        assert text(msg) == f"Dear Name{i},\nyou are number {i}.\n"
        seen.add(i)
    assert seen == set(range(100))


def test_utf8_subject_html_and_attachment_parse(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    ternd(http_policy())
    pdf = bytes(range(256)) * 40
    status, reply = post(ports[0], {
        "envelope_sender": "a@sender.test",
        "recipients": [{"email": "b@example.net", "name": "Zoë Ångström"}],
        "content": {"subject": "Grüße, {{ who }} — ünïcödé " + "long " * 30,
                    "from": {"email": "a@sender.test", "name": "Sénder"},
                    "reply_to": {"email": "reply@sender.test"},
                    "headers": {"X-Campaign": "spring {{ who }}", "X-Evil": "a\r\nBcc: x@evil.test"},
                    "text_body": "Plain ünïcödé {{ who }}\n" + "x" * 200 + " \n",
                    "html_body": "<p>{{ who }}</p>",
                    "attachments": [{"data": base64.b64encode(pdf).decode(), "base64": True,
                                     "content_type": "application/pdf",
                                     "file_name": "rapport é.pdf"},
                                    {"data": "plain text", "content_type": "text/plain",
                                     "file_name": "a.txt"}]},
        "substitutions": {"who": "<Ann & Bob>"}})
    assert status == 200 and reply["success_count"] == 1, reply
    (m,) = sink.wait_messages(1)
    msg = parse(m["data"])
    assert not msg.defects
    assert msg["Subject"] == "Grüße, <Ann & Bob> — ünïcödé " + "long " * 30
    assert msg["From"].addresses[0].display_name == "Sénder"
    assert msg["To"].addresses[0].display_name == "Zoë Ångström"
    assert msg["Reply-To"] == "reply@sender.test"
    assert msg["X-Campaign"] == "spring <Ann & Bob>"
    # A line break in a header value stays inside that value: no header is added.
    assert msg["Bcc"] is None and "Bcc: x@evil.test" in msg["X-Evil"]
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(("plain",))
    assert text(body) == "Plain ünïcödé <Ann & Bob>\n" + "x" * 200 + " \n"
    assert text(msg.get_body(("html",))) == "<p>&lt;Ann &amp; Bob&gt;</p>\n"
    atts = list(msg.iter_attachments())
    assert [a.get_filename() for a in atts] == ["rapport é.pdf", "a.txt"]
    assert atts[0].get_content_type() == "application/pdf"
    assert atts[0].get_content() == pdf
    assert atts[1].get_payload(decode=True) == b"plain text"
    for part in msg.walk():
        assert not part.defects, part.defects
    for line in m["data"].split(b"\r\n"):
        assert len(line) <= 998


def test_full_message_content_with_substitution(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    ternd(http_policy(hooks="tern.on('http_message_generated', function(msg)\n"
                            "  msg:set_header('X-Hooked', 'yes')\nend)\n"))
    status, reply = post(ports[0], {
        "envelope_sender": "a@sender.test",
        "recipients": [{"email": "b@example.net", "substitutions": {"name": "Bea"}}],
        "content": "Subject: hi {{ name }}\nFrom: a@sender.test\n\nHello {{ name }}\n"})
    assert status == 200 and reply["success_count"] == 1, reply
    (m,) = sink.wait_messages(1)
    msg = parse(m["data"])
    assert msg["Subject"] == "hi Bea" and msg["X-Hooked"] == "yes"
    assert text(msg) == "Hello Bea\n"


def test_hook_rejects_one_recipient(ternd, ports, py_sink):
    py_sink("127.0.0.1", ports[1])
    ternd(http_policy(hooks="tern.on('http_message_generated', function(msg)\n"
                            "  tern.sleep(0.01)\n"
                            "  if msg:recipient():find('^bad') then tern.reject(550, 'no thanks') end\n"
                            "end)\n"))
    status, reply = post(ports[0], {
        "envelope_sender": "a@sender.test",
        "recipients": [{"email": "ok1@example.net"}, {"email": "bad@example.net"},
                       {"email": "ok2@example.net"}],
        "content": {"from": {"email": "a@sender.test"}, "text_body": "x"}})
    assert status == 200, reply
    assert reply["success_count"] == 2 and reply["fail_count"] == 1
    assert reply["failed_recipients"] == ["bad@example.net"]
    assert "no thanks" in reply["errors"][0]


def test_kill9_after_reply_loses_no_accepted_recipient(ternd, ports, tmp_path):
    # Nothing listens on {port2}: messages stay in the spool, waiting for their retry.
    t = ternd(http_policy())
    accepted = []
    for batch in range(5):
        rcpts = [f"r{batch}-{i}@example.net" for i in range(10)]
        status, reply = post(ports[0], {"envelope_sender": "a@sender.test",
                                        "recipients": [{"email": r} for r in rcpts],
                                        "content": {"from": {"email": "a@sender.test"},
                                                    "text_body": "x"}})
        assert status == 200 and reply["success_count"] == 10, reply
        accepted += rcpts
    t.kill9()
    r = run_tern("spool", "list", "--spool", str(tmp_path / "spool"))
    assert r.returncode == 0, r.stderr
    spooled = [json.loads(line)["recipient"] for line in r.stdout.splitlines()]
    assert sorted(spooled) == sorted(accepted)


BEARER_HOOK = ("tern.on('http_server_validate_auth_bearer', function(token)\n"
               "  tern.sleep(0.01)\n"
               "  return token == 's3cret'\nend)\n"
               "tern.on('http_server_validate_auth_basic', function(user, password)\n"
               "  return user == 'ops' and password == 'pw'\nend)\n")

SIMPLE = {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}],
          "content": {"from": {"email": "a@sender.test"}, "text_body": "x"}}


def test_untrusted_client_needs_credentials(ternd, ports):
    port = ports[0]
    ternd(http_policy("trusted_hosts = { '127.0.0.1/32' }", BEARER_HOOK))
    status, reply = post(port, SIMPLE, source="127.0.0.2")
    assert status == 401 and "credentials" in reply["error"]
    status, reply = post(port, SIMPLE, {"Authorization": "Bearer wrong"}, source="127.0.0.2")
    assert status == 401, reply
    status, reply = post(port, SIMPLE, {"Authorization": "Bearer s3cret"}, source="127.0.0.2")
    assert status == 200 and reply["success_count"] == 1, reply
    basic = "Basic " + base64.b64encode(b"ops:pw").decode()
    status, reply = post(port, SIMPLE, {"Authorization": basic}, source="127.0.0.2")
    assert status == 200, reply
    # The trusted address needs nothing.
    status, reply = post(port, SIMPLE)
    assert status == 200, reply


def test_untrusted_client_without_hooks_gets_401(ternd, ports):
    ternd(http_policy("trusted_hosts = { '127.0.0.1/32' }"))
    status, reply = post(ports[0], SIMPLE, {"Authorization": "Bearer s3cret"}, source="127.0.0.2")
    assert status == 401, reply


def test_body_over_limit_gets_413(ternd, ports):
    ternd(http_policy("request_body_limit = '2M'"))
    big = dict(SIMPLE, content={"from": {"email": "a@sender.test"}, "text_body": "x" * (3 << 20)})
    status, reply = post(ports[0], big)
    assert status == 413 and "limit" in reply["error"]
    # Without a Content-Length (chunked), the limit holds as the body arrives.
    c = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=30)
    c.request("POST", "/api/inject/v1", body=iter([b"x" * 65536] * 48),
              headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
    assert c.getresponse().status == 413
    c.close()
    assert post(ports[0], SIMPLE)[0] == 200


MALFORMED = [
    b"", b"{", b"[]", b"nul", b'{"envelope_sender": }', b"\xff\xfe", b'{"a":1,}',
    {"recipients": [{"email": "b@example.net"}], "content": "x"},
    {"envelope_sender": "a@sender.test", "content": "x"},
    {"envelope_sender": "a@sender.test", "recipients": [], "content": "x"},
    {"envelope_sender": "a@sender.test", "recipients": [{"name": "x"}], "content": "x"},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "not an address"}], "content": "x"},
    {"envelope_sender": "a@sender.test", "recipients": "b@example.net", "content": "x"},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}]},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}], "content": 5},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}],
     "content": {"text_body": "no from"}},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}],
     "content": {"from": {"email": "a@sender.test"}, "headers": {"Sub ject": "x"}}},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}],
     "content": {"from": {"email": "a@sender.test"},
                 "attachments": [{"data": "!!", "base64": True}]}},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net"}],
     "content": {"from": {"email": "a@sender.test"}, "html_bdy": "typo"}},
    {"envelope_sender": "a@sender.test", "recipients": [{"email": "b@example.net",
                                                         "substitutions": {"x": [1]}}],
     "content": "x"},
]


def test_20_malformed_bodies_get_400_or_422_naming_the_field(ternd, ports):
    assert len(MALFORMED) == 20
    ternd(http_policy())
    for body in MALFORMED:
        status, reply = post(ports[0], body)
        assert status in (400, 422), (body, status, reply)
        assert reply["error"], body
    status, reply = post(ports[0], MALFORMED[-1])
    assert reply["error"].startswith("recipients[0].substitutions.x:"), reply
    status, reply = post(ports[0], MALFORMED[-2])
    assert reply["error"] == "content.html_bdy: unknown field", reply
    assert post(ports[0], SIMPLE)[0] == 200


def test_slow_and_vanishing_clients_do_not_stop_the_listener(ternd, ports):
    ternd(http_policy("client_timeout = '2s'"))
    # Half a request, then silence; a client that hangs up mid-body.
    idle = socket.create_connection(("127.0.0.1", ports[0]))
    idle.sendall(b"POST /api/inject/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    gone = socket.create_connection(("127.0.0.1", ports[0]))
    gone.sendall(b"POST /api/inject/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    gone.close()
    results = []
    threads = [threading.Thread(target=lambda: results.append(post(ports[0], SIMPLE)[0]))
               for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert results == [200] * 8
    idle.settimeout(10)
    assert idle.recv(100) == b""  # closed by client_timeout
    idle.close()


def test_sigterm_with_requests_in_flight_exits_cleanly(ternd, ports):
    # A hook that takes a while: requests are mid-flight when the stop begins.
    t = ternd(http_policy(hooks="tern.on('http_message_generated', function(msg)\n"
                                "  io.open('{dir}/hook-started', 'w'):close()\n"
                                "  tern.sleep(0.3)\nend)\n"))
    started = os.path.join(t.workdir, "hook-started")
    results = []

    def one():
        try:
            results.append(post(ports[0], SIMPLE)[0])
        except (OSError, http.client.HTTPException):
            results.append("closed")

    threads = [threading.Thread(target=one) for _ in range(6)]
    for th in threads:
        th.start()
    # Stop only once a request is surely in flight: its hook has begun.
    deadline = time.monotonic() + 10
    while not os.path.exists(started) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.path.exists(started)
    assert t.stop() == 0
    for th in threads:
        th.join(30)
    # A graceful stop waits for requests in flight (answered after their write); one still
    # in the accept queue or half-read when listening stops is closed unanswered.
    assert len(results) == 6 and set(results) <= {200, "closed"}, results
    assert 200 in results


def test_https_listener(ternd, ports, tmp_path):
    from tls import client_context, listener_options, make_cert
    cert, key = make_cert(tmp_path, "api.test")
    ternd(http_policy(listener_options(cert, key)))
    c = http.client.HTTPSConnection("127.0.0.1", ports[0], timeout=30, context=client_context())
    c.request("POST", "/api/inject/v1", body=json.dumps(SIMPLE).encode())
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["success_count"] == 1
    c.close()
    # Plain HTTP on the TLS port is not answered as HTTP.
    try:
        status = post(ports[0], SIMPLE)[0]
    except (OSError, http.client.HTTPException, ValueError):
        status = None
    assert status is None


def test_unknown_path_and_method_with_a_body(ternd, ports):
    # Regression: an answer queued before the body was read closed the connection unanswered.
    ternd(http_policy())
    status, reply = post(ports[0], SIMPLE, path="/api/nope/v1")
    assert status == 404 and reply["error"] == "no such endpoint: /api/nope/v1"
    status, reply = post(ports[0], SIMPLE, method="DELETE")
    assert status == 405 and reply["error"] == "DELETE is not allowed on /api/inject/v1"
    assert post(ports[0], SIMPLE)[0] == 200


def test_http_listener_on_a_busy_port_fails_naming_it(ternd, ports):
    # SO_REUSEPORT would have let a second daemon share the HTTP port, splitting requests.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", ports[0]))
        other.listen()
        t = ternd(http_policy(), start=False)
        with pytest.raises(RuntimeError, match="http listener 127.0.0.1:%d: port %d is already "
                                               "in use" % (ports[0], ports[0])):
            t.start()
