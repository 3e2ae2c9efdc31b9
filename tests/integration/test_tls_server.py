# SPDX-License-Identifier: MIT
"""Regression: the ESMTP listener offered static-RSA and CBC-SHA1 suites and no
session resumption. By default it now offers TLS 1.2 ECDHE with AEAD ciphers
and TLS 1.3 only, resumes sessions, and each listener may choose otherwise
(tls_ciphers, tls_ciphersuites, tls_min_version)."""
import os
import socket
import ssl
import subprocess

import pytest

import tls
from conftest import listener_policy, run_ternd


def rsa_cert(directory):
    """An RSA pair, so that static-RSA key exchange would be possible if offered."""
    cert, key = os.path.join(str(directory), "rsa.pem"), os.path.join(str(directory), "rsa.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=mx.test"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def reply(f):
    """Read one SMTP reply (all its lines) from a file object; return the code."""
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line[3:4] != b"-":
            return int(line[:3])


def starttls(port, ctx, session=None):
    """Connect, STARTTLS, EHLO inside TLS; return the TLS socket (caller closes)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    assert reply(f) == 220
    raw.sendall(b"EHLO client.test\r\n")
    assert reply(f) == 250
    raw.sendall(b"STARTTLS\r\n")
    assert reply(f) == 220
    s = ctx.wrap_socket(raw, session=session)
    s.sendall(b"EHLO client.test\r\n")
    assert reply(s.makefile("rb")) == 250  # TLS 1.3 tickets arrive with this read
    return s


def client(ciphers=None, version=None):
    ctx = tls.client_context()
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


@pytest.fixture
def rsa_ternd(ternd, tmp_path):
    def make(extra=""):
        cert, key = rsa_cert(tmp_path)
        opts = tls.listener_options(cert, key) + (", " + extra if extra else "")
        return ternd(listener_policy(opts))
    return make


@pytest.mark.parametrize("cipher", ["AES128-GCM-SHA256", "AES256-SHA", "ECDHE-RSA-AES128-SHA",
                                    "ECDHE-RSA-AES256-SHA384"])
def test_weak_tls12_cipher_is_refused(rsa_ternd, ports, cipher):
    rsa_ternd()
    with pytest.raises(ssl.SSLError):
        starttls(ports[0], client(cipher + ":@SECLEVEL=0", ssl.TLSVersion.TLSv1_2)).close()


@pytest.mark.parametrize("cipher", ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                    "ECDHE-RSA-CHACHA20-POLY1305"])
def test_ecdhe_aead_tls12_works(rsa_ternd, ports, cipher):
    rsa_ternd()
    with starttls(ports[0], client(cipher, ssl.TLSVersion.TLSv1_2)) as s:
        assert s.version() == "TLSv1.2" and s.cipher()[0] == cipher


def test_tls13_is_default(rsa_ternd, ports):
    rsa_ternd()
    with starttls(ports[0], client()) as s:
        assert s.version() == "TLSv1.3"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_is_resumed(rsa_ternd, ports, version):
    rsa_ternd()
    ctx = client(version=version)
    with starttls(ports[0], ctx) as first:
        session = first.session
        assert not first.session_reused
    with starttls(ports[0], ctx, session=session) as second:
        assert second.session_reused


def test_listener_options_choose_ciphers_and_version(rsa_ternd, ports):
    rsa_ternd("tls_min_version = '1.3', tls_ciphersuites = 'TLS_AES_256_GCM_SHA384'")
    with pytest.raises(ssl.SSLError):
        starttls(ports[0], client(version=ssl.TLSVersion.TLSv1_2)).close()
    with starttls(ports[0], client()) as s:
        assert s.version() == "TLSv1.3" and s.cipher()[0] == "TLS_AES_256_GCM_SHA384"


def test_listener_tls12_cipher_option(rsa_ternd, ports):
    rsa_ternd("tls_ciphers = 'ECDHE-RSA-AES256-GCM-SHA384'")
    with pytest.raises(ssl.SSLError):
        starttls(ports[0], client("ECDHE-RSA-AES128-GCM-SHA256", ssl.TLSVersion.TLSv1_2)).close()
    with starttls(ports[0], client(version=ssl.TLSVersion.TLSv1_2)) as s:
        assert s.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"


@pytest.mark.parametrize("option,message", [
    ("tls_ciphers = 'NOSUCHCIPHER'", "tls_ciphers 'NOSUCHCIPHER'"),
    ("tls_ciphersuites = 'TLS_NOPE'", "tls_ciphersuites 'TLS_NOPE'"),
    ("tls_min_version = '1.0'", "option 'tls_min_version' must be '1.2' or '1.3'"),
    ("tls_min_version = '1.3'", "tls_ciphers, tls_ciphersuites and tls_min_version need "
                                "tls_certificate and tls_private_key"),
])
def test_bad_tls_option_fails_check(tmp_path, ports, option, message):
    path = tmp_path / "tls.lua"
    if "need" not in message:
        option += ", " + tls.listener_options("/nonexistent/cert.pem", "/nonexistent/key.pem")
    path.write_text(listener_policy(option).replace("{dir}", str(tmp_path))
                    .replace("{port}", str(ports[0])))
    r = run_ternd("--check", "--policy", str(path))
    assert r.returncode == 1, r.stdout
    assert f"tls.lua:4: tern.start_esmtp_listener: {message}" in r.stderr


def _pipelined_bdat(s):
    """Send MAIL, RCPT and BDAT LAST with a body in one write; return the first read's bytes
    and all three replies (more reads only if the first did not hold them)."""
    body = b"From: a@origin.test\r\nSubject: grouped\r\n\r\nhello\r\n"
    s.sendall(b"MAIL FROM:<a@origin.test>\r\nRCPT TO:<b@dest.test>\r\n"
              b"BDAT %d LAST\r\n" % len(body) + body)
    first = got = s.recv(65536)
    while got.count(b"\r\n") < 3:
        more = s.recv(65536)
        assert more, got
        got += more
    return first, got


def test_pipelined_bdat_replies_leave_together(rsa_ternd, ports):
    """The replies to a pipelined MAIL and RCPT wait for the BDAT's 250 and leave with it in one
    write, in the clear and inside TLS; the next transaction's MAIL is answered at once."""
    rsa_ternd("relay_hosts = { '127.0.0.1' }")
    plain = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
    f = plain.makefile("rb")
    assert reply(f) == 220
    plain.sendall(b"EHLO client.test\r\n")
    assert reply(f) == 250
    encrypted = starttls(ports[0], client())
    for s in (plain, encrypted):
        with s:
            first, got = _pipelined_bdat(s)
            lines = got.decode().splitlines()
            assert [x[:9] for x in lines] == ["250 2.1.0", "250 2.1.5", "250 2.0.0"], lines
            assert first == got, "the MAIL and RCPT replies left before the BDAT's 250"
            s.sendall(b"MAIL FROM:<a@origin.test>\r\n")
            assert s.recv(65536).startswith(b"250 2.1.0")
