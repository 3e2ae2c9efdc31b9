# SPDX-License-Identifier: MIT
"""The SMTP client against a receiver that offers neither 8BITMIME nor
SMTPUTF8 nor PIPELINING: 8-bit bodies and UTF-8 addresses fail clearly
(Bounce, nothing sent), plain messages go through one command at a time, and
a refused RCPT bounces without DATA."""
import smtplib
import socket
import threading

from conftest import free_port
from sinks import send_one, wait_records, of_type, mta_policy


class PlainReceiver:
    """An RFC 5321 receiver with no extensions; records the commands it got."""

    def __init__(self, offer_broken_tls=False):
        self.offer_broken_tls = offer_broken_tls
        self.port = free_port()
        self.commands = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 plain.test ESMTP\r\n")
        for line in f:
            cmd = line.rstrip(b"\r\n")
            self.commands.append(cmd)
            verb = cmd[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-plain.test\r\n250 STARTTLS\r\n" if self.offer_broken_tls
                             else b"250 plain.test\r\n")
            elif verb == b"STARTTLS":
                # Claims to start TLS, then answers the handshake with plain text.
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
            elif verb == b"RCPT" and b"reject" in cmd:
                conn.sendall(b"550 5.1.1 no such user\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                break
            else:
                conn.sendall(b"250 2.0.0 ok\r\n")
        conn.close()

    def close(self):
        self.sock.close()


HOOKS = """
tern.on('get_queue_config', function()
  return tern.make_queue_config { mx_list = { '127.0.0.1:%d' }, retry_interval = '1h' }
end)
tern.on('get_egress_path_config', function()
  return tern.make_egress_path { enable_tls = 'disabled' }
end)
"""


def test_8bit_and_utf8_bounce_without_the_extensions(ternd, ports):
    rx = PlainReceiver()
    try:
        t = ternd(mta_policy("127.0.0.1:9", HOOKS % rx.port))
        send_one(ports[0], "s@origin.test", ["plain@dest.test"],
                 b"Subject: ascii\r\n\r\nplain text\r\n")
        send_one(ports[0], "s@origin.test", ["eight@dest.test"],
                 "Subject: 8bit\r\n\r\ncaf\u00e9\r\n".encode())
        send_one(ports[0], "s@origin.test", ["reject@dest.test"],
                 b"Subject: refused\r\n\r\nno\r\n")
        with smtplib.SMTP("127.0.0.1", ports[0]) as c:
            c.command_encoding = "utf-8"
            c.ehlo("injector.test")
            assert c.mail("s@origin.test", ["SMTPUTF8"])[0] == 250
            assert c.rcpt("j\u00fcrgen@dest.test")[0] == 250
            assert c.data(b"Subject: utf8\r\n\r\nascii body\r\n")[0] == 250
        delivered = wait_records(t, of_type("Delivery"), 1)
        bounced = {r["recipient"]: r for r in wait_records(t, of_type("Bounce"), 3)}
        assert delivered[0]["recipient"] == "plain@dest.test"
        eight = bounced["eight@dest.test"]["response"]
        assert eight["enhanced_code"] == "5.6.3" and "8BITMIME" in eight["content"]
        refused = bounced["reject@dest.test"]["response"]
        assert (refused["code"], refused["enhanced_code"], refused["command"]) == (550, "5.1.1", "RCPT")
        utf8 = bounced["j\u00fcrgen@dest.test"]["response"]
        assert utf8["enhanced_code"] == "5.6.7" and "SMTPUTF8" in utf8["content"]
        # Without PIPELINING each command waited for its reply, and nothing of the
        # 8-bit message was sent.
        mails = [c for c in rx.commands if c.upper().startswith(b"MAIL")]
        assert len(mails) == 2 and not any(b"BODY=8BITMIME" in m for m in mails)
        # The refused recipient's transaction was reset, and DATA never sent for it.
        assert rx.commands.count(b"RSET") == 1
        assert len([c for c in rx.commands if c.upper() == b"DATA"]) == 1
    finally:
        rx.close()


TLS_HOOKS = """
tern.on('get_queue_config', function()
  return tern.make_queue_config { mx_list = { '127.0.0.1:%d' }, retry_interval = '1h' }
end)
"""


def test_broken_opportunistic_tls_falls_back_on_the_next_connection(ternd, ports):
    rx = PlainReceiver(offer_broken_tls=True)
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
