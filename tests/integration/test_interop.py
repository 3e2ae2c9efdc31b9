# SPDX-License-Identifier: MIT
"""Interoperability: real clients (Python smtplib, swaks) against ternd.

Plain SMTP, STARTTLS with a certificate made at test time, AUTH PLAIN and
LOGIN decided by a smtp_server_auth_plain hook, 8BITMIME bodies and SMTPUTF8
addresses. Each test checks the client's view (replies, exit status) and
ternd's (Reception records, the spool).
"""
import base64
import json
import re
import shutil
import smtplib
import subprocess
import time

import pytest

import tls
from conftest import listener_policy, run_tern

HOOKS = """
tern.on('smtp_server_auth_plain', function(authz, authc, password, conn)
  local f = assert(io.open('{dir}/auth.log', 'a'))
  f:write(authz, '|', authc, '|', password, '|', conn:peer_address(), '\\n')
  f:close()
  return authc == 'user' and password == 'secret'
end)
tern.on('smtp_server_message_received', function(msg, conn)
  local t = conn:tls()
  msg:set_meta('seen_tls', t and t.version or 'none')
  msg:set_meta('auth_id', conn:auth_id() or 'none')
  msg:set_meta('received', msg:get_header('Received'))
end)
"""

# Keep received messages in the spool for the checks: they are routed to a loopback port
# where nothing listens, fail transiently and wait an hour for their retry.
HOLD = ("tern.on('get_queue_config', function()\n"
        "  return tern.make_queue_config { retry_interval = '1h',\n"
        "                                  mx_list = { '127.0.0.1:{port9}' } }\nend)\n")


def _has_perl_ssl():
    return subprocess.run(["perl", "-MNet::SSLeay", "-MIO::Socket::SSL", "-e1"],
                          capture_output=True).returncode == 0


# swaks speaks TLS only through Net::SSLeay (Debian: libnet-ssleay-perl, libio-socket-ssl-perl).
needs_swaks_tls = pytest.mark.skipif(
    shutil.which("swaks") is None or not _has_perl_ssl(),
    reason="swaks TLS needs libnet-ssleay-perl and libio-socket-ssl-perl")


def wait_receptions(t, n, timeout=5.0):
    """The first n Reception records, waiting for the log writer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            recs = [r for r in t.records() if r["type"] == "Reception"]
        except json.JSONDecodeError:
            recs = []  # a line caught half-written
        if len(recs) >= n or time.monotonic() > deadline:
            assert len(recs) >= n, f"{len(recs)} Reception records, wanted {n}"
            return recs
        time.sleep(0.05)


def queued_ids(text):
    """The ids in a '250 2.0.0 OK queued as ID [ID...]' reply text."""
    if isinstance(text, bytes):
        text = text.decode()
    head = "2.0.0 OK queued as "
    assert text.startswith(head), text
    ids = text[len(head):].split()
    assert ids and all(len(i) == 32 and int(i, 16) >= 0 for i in ids), text
    return ids


def with_protocol(rec):
    """The protocol word of the Received header the hook saw (RFC 3848: ESMTPS, ESMTPSA, ...)."""
    m = re.search(r"\swith\s+(\S+)\s", rec["meta"]["received"])
    assert m, rec["meta"]["received"]
    return m.group(1)


def spool_ids(tmp_path):
    r = run_tern("spool", "list", "--spool", str(tmp_path / "spool"))
    assert r.returncode == 0, r.stderr
    return {json.loads(line)["id"] for line in r.stdout.splitlines()}


def swaks(port, *args):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--helo", "client.test",
                        "--from", "alice@client.test", *args],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def swaks_ids(output):
    # swaks marks replies "<-" in clear text and "<~" inside TLS.
    lines = [ln[len("<-  250 "):] for ln in output.splitlines()
             if ln[:3] in ("<- ", "<~ ") and ln[4:].startswith("250 2.0.0 OK queued as")]
    assert len(lines) == 1, output
    return queued_ids(lines[0])


def send_raw(c, sender, rcpts, body, mail_options=()):
    """MAIL, RCPT..., DATA by hand so that the final reply text is ours to read."""
    assert c.mail(sender, list(mail_options))[0] == 250
    for r in rcpts:
        assert c.rcpt(r)[0] == 250
    code, text = c.data(body)
    assert code == 250, text
    return queued_ids(text)


@pytest.fixture
def tls_ternd(ternd, tmp_path):
    cert, key = tls.make_cert(tmp_path)
    return ternd(listener_policy(
        "relay_hosts = { '127.0.0.1' }, " + tls.listener_options(cert, key), HOOKS + HOLD))


def test_smtplib_plain(ternd, ports, tmp_path):
    t = ternd(listener_policy("relay_hosts = { '127.0.0.1' }", HOOKS + HOLD))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        code, caps = c.ehlo("client.test")
        assert code == 250
        assert b"STARTTLS" not in caps, "no certificate: STARTTLS must not be offered"
        assert b"AUTH" not in caps, "AUTH is never offered in clear text"
        ids = send_raw(c, "alice@client.test", ["bob@example.net"],
                       b"Subject: plain\r\n\r\nhello\r\n")
    assert len(ids) == 1
    [rec] = wait_receptions(t, 1)
    assert rec["id"] == ids[0]
    assert rec["sender"] == "alice@client.test" and rec["recipient"] == "bob@example.net"
    assert rec["peer_address"] == "127.0.0.1"
    assert rec["listener"] == f"127.0.0.1:{ports[0]}"
    assert rec["tls"] is None
    assert rec["meta"]["seen_tls"] == "none" and rec["meta"]["auth_id"] == "none"
    assert with_protocol(rec) == "ESMTP"
    assert spool_ids(tmp_path) == set(ids)


def test_swaks_plain_two_recipients(ternd, ports, tmp_path):
    t = ternd(listener_policy("relay_hosts = { '127.0.0.1' }", HOOKS + HOLD))
    rc, out = swaks(ports[0], "--to", "bob@example.net,carol@example.org",
                    "--body", "b\u00f6dy with 8-bit text\n")
    assert rc == 0, out
    ids = swaks_ids(out)
    assert len(ids) == 2 and ids[0] != ids[1]
    recs = wait_receptions(t, 2)
    assert {r["id"]: r["recipient"] for r in recs} == {ids[0]: "bob@example.net",
                                                        ids[1]: "carol@example.org"}
    assert spool_ids(tmp_path) == set(ids)


def test_smtplib_starttls(tls_ternd, ports, tmp_path):
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        code, caps = c.ehlo("client.test")
        assert b"STARTTLS" in caps and b"AUTH" not in caps
        code, text = c.starttls(context=tls.client_context())
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        code, caps = c.ehlo("client.test")
        assert code == 250
        assert b"STARTTLS" not in caps, "STARTTLS offered again inside TLS"
        assert b"AUTH PLAIN LOGIN" in caps
        assert c.docmd("STARTTLS") == (503, b"5.5.1 TLS already active")
        ids = send_raw(c, "alice@client.test", ["bob@example.net"], b"Subject: tls\r\n\r\nx\r\n")
    [rec] = wait_receptions(tls_ternd, 1)
    assert rec["id"] == ids[0]
    assert rec["tls"] is not None and rec["tls"]["version"].startswith("TLSv1.")
    assert rec["tls"]["cipher"]
    # The hook's conn:tls() saw the same session the record describes.
    assert rec["meta"]["seen_tls"] == rec["tls"]["version"]
    assert with_protocol(rec) == "ESMTPS"


def test_starttls_pipelined_commands_are_discarded(tls_ternd, ports):
    # RFC 3207 section 4.2: what the client sent after STARTTLS before the handshake is dropped.
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        assert c.getreply() == (220, b"2.0.0 Ready to start TLS")
        c.sock = tls.client_context().wrap_socket(c.sock)
        c.file = None
        c.ehlo("client.test")
        assert c.mail("alice@client.test")[0] == 250, "an injected MAIL survived STARTTLS"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_after_starttls_good(tls_ternd, ports, tmp_path, mech):
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.starttls(context=tls.client_context())
        c.ehlo("client.test")
        c.user, c.password = "user", "secret"
        fn = c.auth_plain if mech == "PLAIN" else c.auth_login
        assert c.auth(mech, fn) == (235, b"2.7.0 Authentication successful")
        assert c.docmd("AUTH PLAIN " + base64.b64encode(b"\0user\0secret").decode()) == \
            (503, b"5.5.1 AUTH not allowed now")
        ids = send_raw(c, "alice@client.test", ["bob@example.net"], b"Subject: a\r\n\r\nx\r\n")
    [rec] = wait_receptions(tls_ternd, 1)
    assert rec["id"] == ids[0]
    assert rec["meta"]["auth_id"] == "user"
    assert with_protocol(rec) == "ESMTPSA"
    assert (tmp_path / "auth.log").read_text() == "|user|secret|127.0.0.1\n"


def test_auth_plain_passes_authzid_to_hook(tls_ternd, ports, tmp_path):
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.starttls(context=tls.client_context())
        c.ehlo("client.test")
        resp = base64.b64encode(b"boss\0user\0secret").decode()
        assert c.docmd("AUTH PLAIN " + resp)[0] == 235
    assert (tmp_path / "auth.log").read_text() == "boss|user|secret|127.0.0.1\n"


@pytest.mark.parametrize("mech,user,password", [
    ("PLAIN", "user", "wrong"), ("PLAIN", "intruder", "secret"),
    ("LOGIN", "user", "wrong"), ("LOGIN", "intruder", "secret")])
def test_auth_after_starttls_bad(tls_ternd, ports, mech, user, password):
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.starttls(context=tls.client_context())
        c.ehlo("client.test")
        c.user, c.password = user, password
        fn = c.auth_plain if mech == "PLAIN" else c.auth_login
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.auth(mech, fn)
        assert (e.value.smtp_code, e.value.smtp_error) == \
            (535, b"5.7.8 Authentication credentials invalid")
        # A failed AUTH leaves the session usable and unauthenticated.
        assert c.noop()[0] == 250
        c.user, c.password = "user", "secret"
        assert c.auth(mech, fn)[0] == 235


@pytest.mark.parametrize("line", ["AUTH PLAIN " + base64.b64encode(b"\0user\0secret").decode(),
                                  "AUTH LOGIN"])
def test_auth_before_tls_530(tls_ternd, ports, line):
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        assert c.docmd(line) == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert c.noop()[0] == 250


@needs_swaks_tls
def test_swaks_starttls(tls_ternd, ports):
    rc, out = swaks(ports[0], "-tls", "--to", "bob@example.net")
    assert rc == 0, out
    assert "TLS started" in out, out
    [rec] = wait_receptions(tls_ternd, 1)
    assert rec["id"] == swaks_ids(out)[0]
    assert rec["tls"]["version"].startswith("TLSv1.")


@needs_swaks_tls
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_auth(tls_ternd, ports, mech):
    rc, out = swaks(ports[0], "-tls", "--auth", mech, "--auth-user", "user",
                    "--auth-password", "secret", "--to", "bob@example.net")
    assert rc == 0, out
    assert "<~  235 2.7.0 Authentication successful" in out, out
    assert len(swaks_ids(out)) == 1
    rc, out = swaks(ports[0], "-tls", "--auth", mech, "--auth-user", "user",
                    "--auth-password", "nope", "--to", "bob@example.net")
    assert rc == 28, out
    assert "535 5.7.8 Authentication credentials invalid" in out, out


def test_8bitmime_and_smtputf8(tls_ternd, ports, tmp_path):
    sender, rcpt = "j\u00f6s\u00e9@ex\u00e4mple.test", "\u00f1o\u00f1o@\u4f8b\u3048.test"
    body = "Subject: \u00fcml\u00e4ut\r\n\r\nb\u00f6dy \u2713\r\n".encode()
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        code, caps = c.ehlo("client.test")
        assert b"\n8BITMIME\n" in caps and b"\nSMTPUTF8\n" in caps
        c.starttls(context=tls.client_context())
        c.ehlo("client.test")
        ids = send_raw(c, sender, [rcpt], body, ["BODY=8BITMIME", "SMTPUTF8"])
        # 8BITMIME alone, ASCII addresses, 8-bit body.
        ids += send_raw(c, "a@client.test", ["b@example.net"], body, ["BODY=8BITMIME"])
    recs = wait_receptions(tls_ternd, 2)
    by_id = {r["id"]: r for r in recs}
    first = by_id[ids[0]]
    assert (first["sender"], first["recipient"]) == (sender, rcpt)
    assert first["queue"] == "\u4f8b\u3048.test"
    assert with_protocol(first) == "UTF8ESMTPS"
    second = by_id[ids[1]]
    assert with_protocol(second) == "ESMTPS"
    # The stored size counts the body plus the Received header tern prepended.
    assert first["size"] > len(body) and second["size"] > len(body)
    spooled = {json.loads(line)["id"]: json.loads(line) for line in
               run_tern("spool", "list", "--spool", str(tmp_path / "spool")).stdout.splitlines()}
    assert spooled[ids[0]]["sender"] == sender and spooled[ids[0]]["recipient"] == rcpt
