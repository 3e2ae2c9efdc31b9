# SPDX-License-Identifier: MIT
"""`tern dkim sign` output checked by two independent verifiers.

Every message in tests/data/dkim/ is signed with rsa-sha256 and ed25519-sha256
under all four canonicalisation pairs, and verified by dkimpy and by
`opendkim -t` (Debian's 2.11 verifies ed25519-sha256 too). Both verifiers
fetch the public keys as TXT records from the loopback test DNS server
(verifiers.py): no real DNS. A one-byte change to the body or to the signed
From field must make both fail.

opendkim 2.11 answers "message not signed" for any relaxed-body signature
on a body without a final CRLF, dkimpy's own signatures included, so those
cases are checked by dkimpy alone. Its -t mode also rebuilds each header
field as "Name: value" the way a milter sees it, losing any extra WSP after
the colon, so simple header signatures on such fields are dkimpy's alone too.
"""
import os
import re
import subprocess

import dkim
import pytest

from dnsserver import DNSTestServer
from verifiers import dkimpy_dnsfunc, opendkim_conf, opendkim_verify

ROOT = os.environ.get("TERN_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("TERN_BUILD") or os.path.join(ROOT, "build", "rel")
TERN = os.path.join(BUILD, "tern")
CORPUS = os.path.join(ROOT, "tests", "data", "dkim")
MESSAGES = sorted(f for f in os.listdir(CORPUS) if f.endswith(".eml"))
ALGOS = {"rsa": "rsa2048", "ed25519": "ed25519"}
CANONS = ["simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed"]
DOMAIN = "example.com"


def txt_record(genkey_output):
    """'s._domainkey.d. IN TXT ( "a" "b" )' -> (name, 'ab')."""
    name = genkey_output.split()[0].rstrip(".")
    return name, "".join(re.findall(r'"([^"]*)"', genkey_output))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dkim")
    records = {}
    for selector, algo in ALGOS.items():
        out = subprocess.run([TERN, "dkim", "genkey", "--domain", DOMAIN, "--selector", selector,
                              "--algo", algo, "--out", str(tmp)],
                             check=True, capture_output=True, text=True).stdout
        name, value = txt_record(out)
        assert name == f"{selector}._domainkey.{DOMAIN}"
        assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', out))
        records[name] = value
        assert (tmp / f"{selector}.{DOMAIN}.key").stat().st_mode & 0o777 == 0o600
    # The keys are served by the loopback DNS server and fetched from it by both verifiers.
    server = DNSTestServer({n: {"TXT": [v]} for n, v in records.items()}).start()
    yield {"dir": tmp, "records": records, "dns": server,
           "conf": opendkim_conf(server.address, str(tmp))}
    server.stop()


def sign(keys, message, selector, canon):
    return subprocess.run([TERN, "dkim", "sign", "--domain", DOMAIN, "--selector", selector,
                           "--key", str(keys["dir"] / f"{selector}.{DOMAIN}.key"),
                           "--algo", selector, "--canon", canon],
                          input=message, check=True, capture_output=True).stdout


def dkimpy_ok(keys, signed):
    return dkim.verify(signed, dnsfunc=dkimpy_dnsfunc(keys["dns"].address))


def opendkim_ok(keys, signed, tmp_path):
    return opendkim_verify(keys["conf"], signed, str(tmp_path))


def opendkim_applies(signed, canon):
    head, _, body = signed.partition(b"\r\n\r\n")
    if canon.endswith("/relaxed") and body and not body.endswith(b"\r\n"):
        return False
    return not (canon.startswith("simple/") and re.search(rb"(?m)^[^\s:]+:(\t| [ \t])", head))


def change_body(signed):
    """Change one byte of the body (an empty body gets a line "x")."""
    head, sep, body = signed.partition(b"\r\n\r\n")
    m = re.search(rb"[A-Za-z0-9]", body)
    if m is None:
        return head + sep + body + b"x\r\n"
    i = m.start()
    return head + sep + body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]


def change_from(signed):
    """Change one byte of the From field's value (From is always signed)."""
    m = re.search(rb"(?im)^from:[^\r]*?([A-Za-z0-9])", signed)
    i = m.start(1)
    return signed[:i] + bytes([signed[i] ^ 0x01]) + signed[i + 1:]


@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("selector", list(ALGOS))
@pytest.mark.parametrize("name", MESSAGES)
def test_verifies(keys, tmp_path, name, selector, canon):
    with open(os.path.join(CORPUS, name), "rb") as f:
        message = f.read()
    signed = sign(keys, message, selector, canon)
    assert signed.endswith(message)
    header = signed[:len(signed) - len(message)]
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert f"c={canon};".encode() in header
    asked = keys["dns"].count(qtype="TXT")
    assert dkimpy_ok(keys, signed), "dkimpy rejects the signature"
    assert keys["dns"].count(qtype="TXT") > asked, "dkimpy did not ask the test DNS server"
    if opendkim_applies(signed, canon):
        asked = keys["dns"].count(qtype="TXT")
        assert opendkim_ok(keys, signed, tmp_path), "opendkim rejects the signature"
        assert keys["dns"].count(qtype="TXT") > asked, "opendkim did not ask the test DNS server"
    for tampered in (change_body(signed), change_from(signed)):
        assert tampered != signed
        assert not dkimpy_ok(keys, tampered), "dkimpy accepts a changed message"
        if opendkim_applies(tampered, canon):
            assert not opendkim_ok(keys, tampered, tmp_path), "opendkim accepts a changed message"


def test_sign_usage_errors(keys):
    for argv in (["sign"], ["sign", "--domain", DOMAIN], ["genkey", "--domain", DOMAIN],
                 ["sign", "--domain", DOMAIN, "--selector", "rsa", "--key", "k", "--canon", "loose"],
                 ["frobnicate"]):
        out = subprocess.run([TERN, "dkim"] + argv, capture_output=True, text=True)
        assert out.returncode == 2, argv
        assert "usage: tern dkim" in out.stderr


def test_genkey_refuses_to_overwrite(keys):
    out = subprocess.run([TERN, "dkim", "genkey", "--domain", DOMAIN, "--selector", "rsa",
                          "--out", str(keys["dir"])], capture_output=True, text=True)
    assert out.returncode == 1
    assert "refusing to overwrite" in out.stderr


def test_sign_bad_key_names_file(keys, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("garbage\n")
    out = subprocess.run([TERN, "dkim", "sign", "--domain", DOMAIN, "--selector", "rsa",
                          "--key", str(bad)], input=b"From: a@example.com\r\n\r\nx\r\n",
                         capture_output=True)
    assert out.returncode == 1
    assert str(bad).encode() in out.stderr


def test_lf_input_is_signed_as_crlf(keys):
    signed = sign(keys, b"From: a@example.com\nSubject: lf\n\nbody\n", "ed25519",
                  "relaxed/relaxed")
    assert b"\r\nFrom: a@example.com\r\nSubject: lf\r\n\r\nbody\r\n" in signed
    assert dkimpy_ok(keys, signed)
