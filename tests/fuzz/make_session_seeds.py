#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz_smtp_session: what the protocol dialogs of
tests/integration/dialogs send, one seed per connection (first byte 0: plain),
and AUTH exchanges inside TLS (first byte 1). Run from the repository root;
the output is committed."""
import base64
import codecs
import glob
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DIALOGS = os.path.join(HERE, "..", "integration", "dialogs")
OUT = os.path.join(HERE, "seeds", "fuzz_smtp_session")


def expand(text):
    """{N*text} stands for text repeated N times, as in the dialogs."""
    return re.sub(r"\{(\d+)\*([^}]*)\}", lambda m: m.group(2) * int(m.group(1)), text)


def connections(path):
    """The bytes sent on each connection of one dialog."""
    conns, cur = [], bytearray()
    for line in open(path):
        verb, _, arg = line.rstrip("\n").partition(" ")
        if verb == "connect" and cur:
            conns.append(bytes(cur))
            cur = bytearray()
        elif verb == "send":
            cur += expand(arg).encode() + b"\r\n"
        elif verb == "send-raw":
            cur += codecs.escape_decode(expand(arg).encode())[0]
    if cur:
        conns.append(bytes(cur))
    return conns


def b64(s):
    return base64.b64encode(s).decode()


PLAIN_OK = b64(b"\0alice\0secret")
PLAIN_EXTRA = b64(b"\0alice\0secret\0more")
PLAIN_AUTHZ = b64(b"bob\0alice\0secret")
LOGIN_USER, LOGIN_PASS, LOGIN_WRONG = b64(b"alice"), b64(b"secret"), b64(b"wrong")

TLS_SEEDS = {
    "auth_plain_ok": f"EHLO c.test\r\nAUTH PLAIN {PLAIN_OK}\r\n"
                     "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: a\r\n\r\nx\r\n.\r\n"
                     "QUIT\r\n",
    "auth_plain_extra_nul": f"EHLO c.test\r\nAUTH PLAIN {PLAIN_EXTRA}\r\nQUIT\r\n",
    "auth_plain_challenge": f"EHLO c.test\r\nAUTH PLAIN\r\n{PLAIN_AUTHZ}\r\nQUIT\r\n",
    "auth_plain_cancel": "EHLO c.test\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN =\r\nQUIT\r\n",
    "auth_login": f"EHLO c.test\r\nAUTH LOGIN\r\n{LOGIN_USER}\r\n{LOGIN_PASS}\r\nQUIT\r\n",
    "auth_login_initial": f"EHLO c.test\r\nAUTH LOGIN {LOGIN_USER}\r\n{LOGIN_WRONG}\r\n"
                          "AUTH LOGIN\r\n!!notbase64\r\nQUIT\r\n",
    "auth_bad": "EHLO c.test\r\nAUTH CRAM-MD5\r\nAUTH PLAIN a===\r\nAUTH\r\nAUTH PLAIN AA\r\nQUIT\r\n",
    "tls_bdat": "EHLO c.test\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\n"
                "BDAT 10\r\nSubject: b\r\nBDAT 5 LAST\r\n\r\nxyz\r\nQUIT\r\n",
    "tls_starttls_again": "EHLO c.test\r\nSTARTTLS\r\nQUIT\r\n",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(DIALOGS, "*.txt"))):
        name = os.path.basename(path)[:-4]
        for i, data in enumerate(connections(path)):
            with open(os.path.join(OUT, f"{name}_{i + 1}"), "wb") as f:
                f.write(b"\0" + data)
    for name, text in TLS_SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b"\1" + text.encode())


if __name__ == "__main__":
    main()
