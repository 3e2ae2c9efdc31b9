# SPDX-License-Identifier: MIT
"""Regression: listener certificates were read once at start, so a renewed
certificate was served only after a restart, and nothing warned before one
expired. Now the files are checked every tls_reload_interval: a changed pair
is served from the next STARTTLS on while sessions already on the old one
finish, a pair that does not load keeps the old one (and says why), and a
certificate within 30 days of expiry is warned about."""
import os
import re
import socket
import ssl
import time

import tls
from conftest import listener_policy, run_tern


def reply(f):
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line[3:4] != b"-":
            return int(line[:3])


def starttls(port):
    """A session inside TLS after EHLO; returns (socket, reader)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    assert reply(f) == 220
    raw.sendall(b"EHLO client.test\r\n")
    assert reply(f) == 250
    raw.sendall(b"STARTTLS\r\n")
    assert reply(f) == 220
    s = tls.client_context().wrap_socket(raw)
    fs = s.makefile("rb")
    s.sendall(b"EHLO client.test\r\n")
    assert reply(fs) == 250
    return s, fs


def served_der(port):
    s, _ = starttls(port)
    der = s.getpeercert(binary_form=True)
    s.close()
    return der


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def install(src_dir, cert, key):
    """Replace the served pair the way certbot does: write aside, then rename over."""
    for name, dst in (("cert.pem", cert), ("key.pem", key)):
        os.replace(os.path.join(src_dir, name), dst)


def wait_for(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_changed_certificate_is_served_next_and_bad_one_is_refused(ternd, ports, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    cert, key = tls.make_cert(live)
    old_der = der_of(cert)
    t = ternd(listener_policy(tls.listener_options(cert, key) + ", tls_reload_interval = '1s'"))
    assert "certificate %s expires in" % cert in t.stderr()  # 2-day certificate: warned at once

    old_session, old_f = starttls(ports[0])
    assert old_session.getpeercert(binary_form=True) == old_der

    new_dir = tmp_path / "new"
    new_dir.mkdir()
    tls.make_cert(new_dir, common_name="mx2.test")
    new_der = der_of(new_dir / "cert.pem")
    install(new_dir, cert, key)
    assert wait_for(lambda: served_der(ports[0]) == new_der), "new certificate never served"
    # Logged just after the swap, which another shard may serve first.
    assert wait_for(lambda: "certificate %s reloaded" % cert in t.stderr())

    # The session on the old certificate goes on: a whole transaction on it.
    for cmd, code in ((b"MAIL FROM:<a@client.test>", 250), (b"RCPT TO:<b@example.net>", 250),
                      (b"DATA", 354), (b"Subject: old\r\n\r\nbody\r\n.", 250), (b"QUIT", 221)):
        old_session.sendall(cmd + b"\r\n")
        assert reply(old_f) == code, cmd
    assert old_session.getpeercert(binary_form=True) == old_der
    old_session.close()

    # A corrupt replacement: the last good certificate stays, and the log says why.
    with open(cert + ".tmp", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    os.replace(cert + ".tmp", cert)
    assert wait_for(lambda: "certificate reload failed, keeping the old one" in t.stderr())
    assert served_der(ports[0]) == new_der
    assert t.stop() == 0


def make_cert_days(directory, name, days):
    import subprocess
    cert, key = os.path.join(str(directory), "cert.pem"), os.path.join(str(directory), "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", str(days), "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name], check=True, capture_output=True,
                   timeout=60)
    return cert, key


def test_tls_check_prints_certificate_and_alarms_under_30_days(ternd, ports, tmp_path):
    # A 2-day certificate: exit 1, the cron alarm. A 90-day one: exit 0.
    short = tmp_path / "short"
    short.mkdir()
    cert, key = make_cert_days(short, "mx.test", 2)
    first = ternd(listener_policy(tls.listener_options(cert, key)))
    r = run_tern("tls", "check", "127.0.0.1:%d" % ports[0], "--starttls")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CN=mx.test" in r.stdout and "DNS:mx.test" in r.stdout, r.stdout
    assert re.search(r"days left: [12]\n", r.stdout), r.stdout
    assert "verified:  no" in r.stdout, r.stdout  # self-signed: said, but not the alarm

    assert first.stop() == 0  # the next one takes over the spool

    long = tmp_path / "long"
    long.mkdir()
    cert90, key90 = make_cert_days(long, "mx.test", 90)
    ternd(listener_policy(tls.listener_options(cert90, key90)).replace("{port}", "{port2}"))
    r = run_tern("tls", "check", "127.0.0.1:%d" % ports[1], "--starttls", "--ca-file", cert90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"days left: (89|90)\n", r.stdout), r.stdout
    assert "verified:  no (certificate verify failed for 127.0.0.1: hostname mismatch)" \
        in r.stdout, r.stdout


def test_tls_check_without_starttls_offered_exits_2(ternd, ports):
    ternd(listener_policy())
    r = run_tern("tls", "check", "127.0.0.1:%d" % ports[0], "--starttls")
    assert r.returncode == 2
    assert "STARTTLS not offered" in r.stderr, r.stderr
