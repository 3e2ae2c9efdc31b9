# SPDX-License-Identifier: MIT
"""The SMTP client against receivers without extensions: Postfix's smtp-sink
without ESMTP (-e: EHLO refused, so HELO and no 8BITMIME, SMTPUTF8 or
PIPELINING). 8-bit bodies and UTF-8 addresses fail clearly (Bounce, nothing
sent), plain messages go through one command at a time, and a refused RCPT
bounces, resets and sends no DATA. A hand-written receiver plays a peer whose
STARTTLS is broken."""
import smtplib
import time

from conftest import free_port
from sinks import ScriptedReceiver, mta_policy, of_type, postfix_sink, send_one, wait_records

__all__ = ["postfix_sink"]  # a fixture, used by name


class BrokenTlsReceiver(ScriptedReceiver):
    """Offers STARTTLS, says 220 to it, then answers the handshake with plain text."""

    def __init__(self):
        self.commands = []
        super().__init__()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 plain.test ESMTP\r\n")
        for line in f:
            cmd = line.rstrip(b"\r\n")
            self.commands.append(cmd)
            verb = cmd[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-plain.test\r\n250 STARTTLS\r\n")
            elif verb == b"STARTTLS":
                conn.sendall(b"220 2.0.0 go ahead\r\n")
                conn.recv(4096)
                conn.sendall(b"this is not TLS\r\n")
                break
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                for body_line in f:
                    if body_line == b".\r\n":
                        break
                conn.sendall(b"250 2.0.0 stored\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                break
            else:
                conn.sendall(b"250 2.0.0 ok\r\n")
        conn.close()

    def close(self):
        self.sock.close()


# dest.test goes to the plain sink, refuse.test to the one that refuses every recipient.
HOOKS = """
tern.on('get_queue_config', function(domain)
  local port = domain == 'refuse.test' and %d or %d
  return tern.make_queue_config { mx_list = { '127.0.0.1:' .. port }, retry_interval = '1h' }
end)
tern.on('get_egress_path_config', function()
  return tern.make_egress_path { enable_tls = 'disabled' }
end)
"""


def test_8bit_and_utf8_bounce_without_the_extensions(ternd, ports, postfix_sink):
    plain = postfix_sink("127.0.0.1", free_port(), options=("-v", "-e"))
    refusing = postfix_sink("127.0.0.1", free_port(),
                            options=("-v", "-e", "-f", "RCPT", "-B", "550 5.1.1 no such user"))
    t = ternd(mta_policy("127.0.0.1:9", HOOKS % (refusing.port, plain.port)))
    send_one(ports[0], "s@origin.test", ["plain@dest.test"], b"Subject: ascii\r\n\r\nplain text\r\n")
    send_one(ports[0], "s@origin.test", ["eight@dest.test"],
             "Subject: 8bit\r\n\r\ncaf\u00e9\r\n".encode())
    send_one(ports[0], "s@origin.test", ["reject@refuse.test"], b"Subject: refused\r\n\r\nno\r\n")
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.command_encoding = "utf-8"
        c.ehlo("injector.test")
        assert c.mail("s@origin.test", ["SMTPUTF8"])[0] == 250
        assert c.rcpt("j\u00fcrgen@dest.test")[0] == 250
        assert c.data(b"Subject: utf8\r\n\r\nascii body\r\n")[0] == 250
    delivered = wait_records(t, of_type("Delivery"), 1)
    bounced = {r["recipient"]: r for r in wait_records(t, of_type("Bounce"), 3)}
    assert [r["recipient"] for r in delivered] == ["plain@dest.test"]
    eight = bounced["eight@dest.test"]["response"]
    assert eight["enhanced_code"] == "5.6.3" and "8BITMIME" in eight["content"]
    refused = bounced["reject@refuse.test"]["response"]
    assert (refused["code"], refused["enhanced_code"], refused["command"]) == (550, "5.1.1", "RCPT")
    utf8 = bounced["j\u00fcrgen@dest.test"]["response"]
    assert utf8["enhanced_code"] == "5.6.7" and "SMTPUTF8" in utf8["content"]
    assert [x["rcpts"] for x in plain.wait_transactions(1)] == [["<plain@dest.test>"]]
    # EHLO was refused, so HELO, on each connection (messages queued while one connection is
    # busy may open another, and the sink's log interleaves them: every HELO follows an EHLO
    # of its own); of the 8-bit and UTF-8 messages nothing was sent, and the plain one went
    # without BODY=8BITMIME.
    sent = plain.commands()
    greetings = [c.split()[0] for c in sent if c.split()[0] in ("EHLO", "HELO")]
    assert greetings and greetings.count("EHLO") == greetings.count("HELO"), greetings
    assert all(greetings[:i].count("HELO") <= greetings[:i].count("EHLO")
               for i in range(len(greetings) + 1)), greetings
    mails = [c for c in sent if c.startswith("MAIL")]
    assert len(mails) == 1 and "BODY=8BITMIME" not in mails[0].upper(), sent
    # The refused recipient's transaction was reset, and DATA never sent for it. The Bounce
    # record is written when the 550 arrives, the RSET goes out just after: wait for it.
    deadline = time.monotonic() + 10
    while "RSET" not in (verbs := [c.split()[0] for c in refusing.commands()]) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "RSET" in verbs and "DATA" not in verbs, verbs
    assert verbs.index("RSET") > verbs.index("RCPT")
    assert refusing.transactions() == []


TLS_HOOKS = """
tern.on('get_queue_config', function()
  return tern.make_queue_config { mx_list = { '127.0.0.1:%d' }, retry_interval = '1h' }
end)
"""


def test_broken_opportunistic_tls_falls_back_on_the_next_connection(ternd, ports):
    rx = BrokenTlsReceiver()
    try:
        t = ternd(mta_policy("127.0.0.1:9", TLS_HOOKS % rx.port))
        send_one(ports[0], "s@origin.test", ["a@dest.test"], b"Subject: a\r\n\r\nfirst\r\n")
        delivered = wait_records(t, of_type("Delivery"), 1)
        assert delivered[0]["tls"] is None
        assert not [r for r in t.records() if r["type"] == "TransientFailure"]
        send_one(ports[0], "s@origin.test", ["b@dest.test"], b"Subject: b\r\n\r\nsecond\r\n")
        wait_records(t, of_type("Delivery"), 2)
        # STARTTLS was tried once; the broken handshake is remembered for the next sessions.
        assert rx.commands.count(b"STARTTLS") == 1
    finally:
        rx.close()
