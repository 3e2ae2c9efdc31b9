# SPDX-License-Identifier: MIT
"""The SMTP client against a receiver offering PIPELINING and CHUNKING: the
envelope and one BDAT LAST carrying the whole body leave together, the body
unstuffed and byte for byte; the BDAT reply is the outcome; a refused
recipient bounces with RCPT's reply and the transaction is reset. A
hand-written receiver sees the bytes exactly as they came."""

from sinks import ScriptedReceiver, mta_policy, of_type, send_one, wait_records


class ChunkingReceiver(ScriptedReceiver):
    """Offers PIPELINING and CHUNKING; refuses RCPT for local parts starting with 'refuse',
    and the message (at BDAT) for those starting with 'junk'.

    Keeps every command line and, per BDAT, the chunk's bytes and whether the
    BDAT line came in the same read as the MAIL before it (pipelined)."""

    def __init__(self):
        self.commands = []
        self.chunks = []
        self.pipelined = []
        super().__init__()

    def session(self, conn):
        buf = b""
        reads_at_mail = None
        reads = 0
        refused = junk = False
        conn.sendall(b"220 chunk.test ESMTP\r\n")
        while True:
            if b"\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
                reads += 1
                continue
            line, buf = buf.split(b"\r\n", 1)
            self.commands.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-chunk.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
            elif verb == b"MAIL":
                reads_at_mail, refused = reads, False
                conn.sendall(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                refused = line[9:].lower().startswith(b"refuse")
                junk = line[9:].lower().startswith(b"junk")
                conn.sendall(b"550 5.1.1 no such user\r\n" if refused else b"250 2.1.5 ok\r\n")
            elif verb == b"BDAT":
                size = int(line.split()[1])
                while len(buf) < size:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                    reads += 1
                self.chunks.append(buf[:size])
                self.pipelined.append(reads_at_mail is not None and reads == reads_at_mail)
                buf = buf[size:]
                conn.sendall(b"554 5.5.1 no valid recipients\r\n" if refused
                             else b"550 5.7.1 content refused\r\n" if junk
                             else b"250 2.0.0 chunk stored\r\n")
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


def test_bdat_carries_the_body_unstuffed_with_the_envelope(ternd, ports):
    rx = ChunkingReceiver()
    try:
        t = ternd(mta_policy("127.0.0.1:9", HOOKS % rx.port))
        body = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n"
        send_one(ports[0], "s@origin.test", ["a@dest.test"], body)
        delivered = wait_records(t, of_type("Delivery"), 1)
        resp = delivered[0]["response"]
        assert (resp["code"], resp["command"]) == (250, "BDAT"), resp
        assert len(rx.chunks) == 1
        chunk = rx.chunks[0]
        # The sending ternd's own headers come first; the rest is the message as received.
        assert chunk.endswith(b"\r\n" + body), chunk
        assert rx.pipelined == [True], rx.pipelined
        bdat = [c for c in rx.commands if c.startswith(b"BDAT")]
        assert bdat == [b"BDAT %d LAST" % len(chunk)], bdat
        assert not [c for c in rx.commands if c.upper() == b"DATA"]
    finally:
        rx.close()


def test_refused_recipient_bounces_with_rcpt_reply_and_resets(ternd, ports):
    rx = ChunkingReceiver()
    try:
        t = ternd(mta_policy("127.0.0.1:9", HOOKS % rx.port))
        send_one(ports[0], "s@origin.test", ["refuse-me@dest.test"], b"Subject: no\r\n\r\nx\r\n")
        bounced = wait_records(t, of_type("Bounce"), 1)
        resp = bounced[0]["response"]
        assert (resp["code"], resp["enhanced_code"], resp["command"]) == (550, "5.1.1", "RCPT")
        # The connection stays usable: RSET, then the next message goes through.
        send_one(ports[0], "s@origin.test", ["ok@dest.test"], b"Subject: yes\r\n\r\ny\r\n")
        wait_records(t, of_type("Delivery"), 1)
        verbs = [c.split()[0].upper() for c in rx.commands]
        assert b"RSET" in verbs, verbs
        assert verbs.index(b"RSET") > verbs.index(b"BDAT"), verbs
        assert len(rx.chunks) == 2
        assert not [r for r in t.records() if r["type"] == "TransientFailure"]
    finally:
        rx.close()


def test_bdat_reply_refusing_the_message_is_the_outcome(ternd, ports):
    rx = ChunkingReceiver()
    try:
        t = ternd(mta_policy("127.0.0.1:9", HOOKS % rx.port))
        send_one(ports[0], "s@origin.test", ["junk@dest.test"], b"Subject: j\r\n\r\nx\r\n")
        bounced = wait_records(t, of_type("Bounce"), 1)
        resp = bounced[0]["response"]
        assert (resp["code"], resp["enhanced_code"], resp["command"]) == (550, "5.7.1", "BDAT")
        send_one(ports[0], "s@origin.test", ["ok@dest.test"], b"Subject: ok\r\n\r\ny\r\n")
        wait_records(t, of_type("Delivery"), 1)
        # BDAT's reply ended each transaction: nothing to reset.
        assert b"RSET" not in [c.split()[0].upper() for c in rx.commands]
    finally:
        rx.close()
