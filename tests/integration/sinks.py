# SPDX-License-Identifier: MIT
"""Receivers for delivery tests, and the helpers that feed and watch ternd.

Three kinds of sink, all on loopback, each started by a fixture that stops it
at the end of the test:

- `ternd_sink`: policy-examples/sink.lua run as shipped (settings through
  TERN_SINK_LISTEN / TERN_SINK_DIR / TERN_SINK_HOSTNAME); its Reception
  records carry the sending peer's address. With tls=(cert, key) the same
  file runs behind a listener that offers STARTTLS.
- `py_sink`: an aiosmtpd server that records every session (peer, EHLO name,
  start and end) and every message (bytes included), and the most sessions
  it ever saw at once from each peer IP.
- `postfix_sink`: Postfix's smtp-sink, dumping each transaction to a file
  whose X-Client-Addr / X-Helo-Args headers say who sent it.
"""
import asyncio
import json
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from conftest import ROOT, Ternd, free_port

SINK_POLICY = os.path.join(ROOT, "policy-examples", "sink.lua")
SMTP_SINK = "/usr/sbin/smtp-sink"


# ---- ports and time ----------------------------------------------------------------------------

def port_free_on(hosts):
    """One TCP port that is free on every address in hosts."""
    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for h in hosts[1:]:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no port free on all of {hosts}")


def wait_listening(host, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def record_time(rec):
    """A record's timestamp ("2024-01-02T03:04:05.678Z") in seconds since the epoch."""
    return datetime.strptime(rec["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


# ---- records -----------------------------------------------------------------------------------

def read_records(t, log_dir="log"):
    """t.records(), retried while a line is caught half-written or a segment being renamed."""
    for _ in range(20):
        try:
            return t.records(log_dir)
        except (json.JSONDecodeError, FileNotFoundError):
            time.sleep(0.05)
    return t.records(log_dir)


def wait_records(t, pred, n, timeout=20.0, log_dir="log"):
    """Wait until at least n records satisfy pred; return all of them that do."""
    deadline = time.monotonic() + timeout
    while True:
        recs = [r for r in read_records(t, log_dir) if pred(r)]
        if len(recs) >= n or time.monotonic() > deadline:
            return recs
        time.sleep(0.1)


def of_type(kind):
    return lambda r: r["type"] == kind


# ---- injection ---------------------------------------------------------------------------------

def queued_ids(text):
    """The ids in a 250 reply (several lines when there are many)."""
    head = b"2.0.0 OK queued as "
    assert text.startswith(head), text
    # Ten ids a line, each line after the first led by "2.0.0 ".
    return text[len(head):].replace(b"\n2.0.0 ", b" ").decode().split()


def send_one(port, sender, recipients, body, host="127.0.0.1"):
    """One SMTP transaction; returns the spool ids of its recipients."""
    with smtplib.SMTP(host, port, timeout=60) as c:
        c.ehlo("injector.test")
        assert c.mail(sender)[0] == 250
        for r in recipients:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(body)
        assert code == 250, (code, text)
    ids = queued_ids(text)
    assert len(ids) == len(recipients), text
    return ids


def inject(port, batches, threads=4, sender="sender@origin.test", body=None):
    """Send each list of recipients in batches as one message, from several threads.

    Returns every spool id, in no particular order.
    """
    body = body or b"From: sender@origin.test\r\nSubject: delivery test\r\n\r\nhello\r\n"
    with ThreadPoolExecutor(threads) as ex:
        results = list(ex.map(lambda rcpts: send_one(port, sender, rcpts, body), batches))
    return [i for ids in results for i in ids]


def received_ids(t):
    """The id of every message t's listener accepted (its Reception records)."""
    return [r["id"] for r in read_records(t) if r["type"] == "Reception"]


def chunks(items, n):
    return [items[i:i + n] for i in range(0, len(items), n)]


# ---- the MTA under test ------------------------------------------------------------------------

def mta_policy(dns_address, hooks):
    """A relaying ternd on 127.0.0.1:{port} using the test DNS server, plus hooks."""
    return ("tern.dns.configure { servers = { '%s' }, timeout = '1s', attempts = 1 }\n"
            "tern.on('init', function()\n"
            "  tern.define_spool { path = '{dir}/spool' }\n"
            "  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }\n"
            "  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',\n"
            "                              relay_hosts = { '127.0.0.0/8' } }\n"
            "end)\n" % dns_address) + hooks


# ---- ternd running sink.lua --------------------------------------------------------------------

# sink.lua as shipped, loaded from the sink's own directory so that ternd's
# stderr (kept next to the policy file) lands there and not in the source tree.
SINK_WRAPPER = "dofile('%s')\n"

# The same behind a listener that offers STARTTLS with a test certificate.
TLS_WRAPPER = """
local start = tern.start_esmtp_listener
tern.start_esmtp_listener = function(opts)
  opts.tls_certificate = '%s'
  opts.tls_private_key = '%s'
  return start(opts)
end
"""


class ScriptedReceiver:
    """A raw TCP peer on 127.0.0.1 for tests that need an MX to misbehave as no real server
    does: each accepted connection runs self.session(conn) on a thread of its own."""

    def __init__(self):
        self.port = free_port()
        self.sessions = 0
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        raise NotImplementedError

    def close(self):
        self.stop.set()
        self.sock.close()


class TerndSink:
    """sink.lua in its own directory; .records() are its Reception records."""

    def __init__(self, workdir, host, port, hostname, tls=None):
        self.host, self.port = host, port
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        policy = os.path.join(self.dir, "sink.lua")
        with open(policy, "w") as f:
            f.write((TLS_WRAPPER % tls if tls else "") + SINK_WRAPPER % SINK_POLICY)
        self.env = {"TERN_SINK_LISTEN": f"{host}:{port}", "TERN_SINK_DIR": self.dir,
                    "TERN_SINK_HOSTNAME": hostname}
        self.ternd = Ternd(self.dir, policy)

    def start(self):
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            self.ternd.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return self

    def receptions(self):
        return [r for r in read_records(self.ternd, "log") if r["type"] == "Reception"]

    def wait_receptions(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            recs = self.receptions()
            if len(recs) >= n or time.monotonic() > deadline:
                return recs
            time.sleep(0.1)

    def stop(self):
        if self.ternd.proc is not None and self.ternd.proc.poll() is None:
            self.ternd.proc.kill()
            self.ternd.proc.wait()


@pytest.fixture
def ternd_sink(tmp_path, request):
    """Factory: ternd_sink(host, port, hostname='sink.test', tls=None) -> a started TerndSink."""
    started = []

    def make(host, port, hostname="sink.test", tls=None):
        s = TerndSink(tmp_path / f"sink{len(started)}", host, port, hostname, tls)
        started.append(s)
        return s.start()

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for s in started:
        s.stop()
        if failed:
            print(f"--- sink {s.host}:{s.port} stderr ---\n{s.ternd.stderr()[-3000:]}")


# ---- aiosmtpd ----------------------------------------------------------------------------------

class PySink:
    """An aiosmtpd receiver that remembers sessions, messages and concurrency per peer IP."""

    def __init__(self, host, port, data_delay=0.0, hostname="pysink.test"):
        self.host, self.port = host, port
        self.data_delay = data_delay
        self.lock = threading.Lock()
        self.sessions = []          # {"peer", "ehlo", "start", "end"}
        self.messages = []          # {"peer", "ehlo", "mail_from", "rcpt_tos", "data", "time"}
        self.current = {}           # peer IP -> open sessions now
        self.max_concurrency = {}   # peer IP -> most open sessions at once
        # Scripting: reply(peer IP, recipients) -> None to accept, or a reply line ("421 4.7.28 ...")
        # to refuse the DATA; every transaction lands in attempts, refused ones too.
        self.reply = None
        self.attempts = []          # {"peer", "time", "reply"}
        self.controller = _Controller(self, _Handler(self), hostname=host, port=port,
                                      server_hostname=hostname)

    def start(self):
        self.controller.start()
        # Forget aiosmtpd's own readiness probe once it has hung up.
        deadline = time.monotonic() + 5
        while any(s["end"] is None for s in self.sessions) and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            self.sessions.clear()
            self.max_concurrency.clear()
        return self

    def stop(self):
        self.controller.stop()

    def session_started(self, peer):
        with self.lock:
            s = {"peer": peer[0], "ehlo": None, "start": time.time(), "end": None}
            self.sessions.append(s)
            self.current[peer[0]] = self.current.get(peer[0], 0) + 1
            self.max_concurrency[peer[0]] = max(self.max_concurrency.get(peer[0], 0),
                                                self.current[peer[0]])
            return s

    def session_ended(self, s):
        with self.lock:
            if s["end"] is None:
                s["end"] = time.time()
                self.current[s["peer"]] -= 1

    def wait_messages(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)


class _Session(SMTP):
    """aiosmtpd's protocol, telling the sink when a session opens and closes.

    A session ends at QUIT already: the client may open its next connection
    as soon as it reads the 221, before this side has seen the close.
    """

    def __init__(self, sink, *args, **kw):
        super().__init__(*args, **kw)
        self._sink = sink
        self._record = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._record = self._sink.session_started(transport.get_extra_info("peername"))

    def connection_lost(self, exc):
        if self._record is not None:
            self._sink.session_ended(self._record)
        super().connection_lost(exc)

    async def smtp_QUIT(self, arg):
        if self._record is not None:
            self._sink.session_ended(self._record)
        await super().smtp_QUIT(arg)

    async def smtp_EHLO(self, hostname):
        if self._record is not None:
            self._record["ehlo"] = hostname
        await super().smtp_EHLO(hostname)


class _Controller(Controller):
    def __init__(self, sink, handler, **kw):
        self._sink = sink
        super().__init__(handler, **kw)

    def factory(self):
        return _Session(self._sink, self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        if self.sink.data_delay:
            await asyncio.sleep(self.sink.data_delay)
        refusal = (self.sink.reply(session.peer[0], list(envelope.rcpt_tos))
                   if self.sink.reply else None)
        with self.sink.lock:
            self.sink.attempts.append({"peer": session.peer[0], "time": time.time(),
                                       "reply": refusal})
        if refusal:
            return refusal
        with self.sink.lock:
            self.sink.messages.append({"peer": session.peer[0], "ehlo": session.host_name,
                                       "mail_from": envelope.mail_from,
                                       "rcpt_tos": list(envelope.rcpt_tos),
                                       "data": envelope.original_content, "time": time.time()})
        return "250 2.0.0 OK"


@pytest.fixture
def py_sink():
    """Factory: py_sink(host, port, data_delay=0) -> a started PySink."""
    started = []

    def make(host, port, data_delay=0.0):
        s = PySink(host, port, data_delay).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


# ---- Postfix smtp-sink -------------------------------------------------------------------------

class PostfixSink:
    """smtp-sink dumping every transaction to a file in its own directory.

    options are more smtp-sink flags (-e: no ESMTP, so no extension at all; -f RCPT with
    -B "550 ...": refuse every recipient); with -v among them, commands() lists what the
    client sent.
    """

    def __init__(self, host, port, hostname="postfix-sink.test", options=()):
        self.host, self.port = host, port
        # It drops to user postfix, which must reach the dump directory: not under tmp_path (0700).
        self.dir = tempfile.mkdtemp(prefix="tern-smtp-sink-")
        os.chmod(self.dir, 0o777)
        self.log_path = self.dir + ".log"
        self.argv = [SMTP_SINK, "-u", "postfix", "-h", hostname, *options, "-d",
                     os.path.join(self.dir, "m."), f"{host}:{port}", "1000"]
        self.proc = None

    def start(self):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log)
        wait_listening(self.host, self.port)
        return self

    def commands(self):
        """The SMTP commands received, in order, verbs upper-cased ("MAIL FROM:<a@b>")."""
        verbs = {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "QUIT", "STARTTLS",
                 "NOOP", "VRFY"}
        out = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                words = line.rstrip("\n").split(": ", 1)[-1].split(" ", 1)
                if words[0].upper() in verbs:
                    out.append(" ".join([words[0].upper()] + words[1:]))
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)

    def transactions(self):
        """One {"client_addr", "helo", "rcpts"} per dumped transaction."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, name), "rb") as f:
                head = f.read().split(b"\n\n", 1)[0].decode(errors="replace")
            fields = [line.split(": ", 1) for line in head.splitlines() if ": " in line]
            out.append({"client_addr": next((v for k, v in fields if k == "X-Client-Addr"), None),
                        "helo": next((v for k, v in fields if k == "X-Helo-Args"), None),
                        "rcpts": [v.strip() for k, v in fields if k == "X-Rcpt-Args"]})
        return out

    def wait_transactions(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while len(os.listdir(self.dir)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.transactions()


@pytest.fixture
def postfix_sink():
    """Factory: postfix_sink(host, port, options=()) -> a started PostfixSink."""
    started = []

    def make(host, port, options=()):
        s = PostfixSink(host, port, options=options)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()
