# SPDX-License-Identifier: MIT
"""SMTP conversations as data: one runner for every dialogs/*.txt.

A dialog file is a list of directives, one per line; blank lines and lines
starting with '#' are ignored:

  option <lua>         a tern.start_esmtp_listener option ("max_recipients_per_message = 2");
                       {dir}, {cert} and {key} are replaced (a self-signed pair is made for {cert})
  hooks <file>         a Lua file beside the dialog, appended to the policy ({dir} replaced).
                       Unless the hooks define get_queue_config, every received message is
                       routed to a closed loopback port and stays in the spool for a retry
  connect              close the connection and open a new one (the first one is implicit)
  send <line>          send the line with CRLF appended
  send-raw <bytes>     send Python-escaped bytes as they are ("MAIL FROM:<a@b>\\r\\nRSET\\r\\n")
  expect <code> [<enhanced>] [<text>]
                       read one complete reply (all its lines): the code, the enhanced
                       status code on every line, and a substring of the text. Without an
                       enhanced code the reply must carry none, which RFC 2034 allows only
                       for the greeting and the HELO/EHLO replies (and 354, 334)
  expect-close         the server closes the connection, having sent nothing more
  tls                  TLS handshake on the connection (after "expect 220 2.0.0")
  sleep <seconds>
  spool <n>            after the dialog: the spool holds exactly n messages
  spool-has <bytes>    after the dialog: some stored message (its metadata JSON or its
                       data) contains these escaped bytes
  spool-lacks <bytes>  after the dialog: no stored message contains them

In send, send-raw, spool-has and spool-lacks, {N*text} stands for text
repeated N times. Every connection starts by reading nothing: the dialog
expects the greeting itself. After the dialog ternd must still be running and
stop cleanly; the spool checks run on the stopped spool.
"""
import codecs
import ctypes
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import listener_policy

DIALOGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dialogs")
READ_TIMEOUT = 5.0
NO_ENHANCED_OK = {220, 250, 334, 354}
ENHANCED_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
# Keep received messages in the spool for the checks: they are routed to a loopback
# port where nothing listens, fail transiently and wait an hour for their retry.
HOLD = ("tern.on('get_queue_config', function()\n"
        "  return tern.make_queue_config { retry_interval = '1h',\n"
        "                                  mx_list = { '127.0.0.1:{port2}' } }\nend)\n")


def dialog_files():
    return sorted(n for n in os.listdir(DIALOGS) if n.endswith(".txt"))


class DialogError(AssertionError):
    pass


class Dialog:
    """A parsed dialog file: listener options, hook files, steps, spool checks."""

    def __init__(self, path):
        self.path = path
        self.options, self.hooks, self.steps, self.checks = [], [], [], []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                self._parse(lineno, line.rstrip("\r\n"))

    def _parse(self, lineno, line):
        if not line.strip() or line.lstrip().startswith("#"):
            return
        verb, _, arg = line.partition(" ")
        if verb == "option":
            self.options.append(arg)
        elif verb == "hooks":
            self.hooks.append(arg.strip())
        elif verb in ("spool", "spool-has", "spool-lacks"):
            self.checks.append((lineno, verb, arg))
        elif verb in ("connect", "send", "send-raw", "expect", "expect-close", "tls", "sleep"):
            self.steps.append((lineno, verb, arg))
        else:
            raise DialogError(f"{self.path}:{lineno}: unknown directive {verb!r}")

    def policy(self, tmp_path, cert):
        def subst(text):
            return (text.replace("{dir}", str(tmp_path)).replace("{cert}", cert[0])
                    .replace("{key}", cert[1]))
        hooks = ""
        for name in self.hooks:
            with open(os.path.join(DIALOGS, name)) as f:
                hooks += subst(f.read())
        if "get_queue_config" not in hooks:
            hooks += HOLD
        return listener_policy(", ".join(subst(o) for o in self.options), hooks)


def expand(text):
    """{N*text} -> text repeated N times."""
    return re.sub(r"\{(\d+)\*([^}]*)\}", lambda m: m.group(2) * int(m.group(1)), text)


def unescape(text):
    return codecs.escape_decode(expand(text).encode())[0]


class Client:
    """One SMTP connection with a reply reader that keeps what it over-reads."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return False
        self.buf += data
        return True

    def line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise DialogError(f"connection closed; unread: {self.buf!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def closed(self):
        if self.buf or self._fill():
            raise DialogError(f"expected close, got {self.buf!r}")

    def starttls(self):
        if self.buf:
            raise DialogError(f"data before the TLS handshake: {self.buf!r}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)


def check_reply(lines, arg):
    """Compare one reply with "code [enhanced] [text]"."""
    words = arg.split(" ", 2)
    code = words[0]
    enhanced = words[1] if len(words) > 1 and ENHANCED_RE.match(words[1]) else None
    text = " ".join(words[2:] if enhanced else words[1:])
    shown = "\n".join(lines)
    body = []
    for line in lines:
        if line[:3] != code or len(line) > 3 and line[3] not in " -":
            raise DialogError(f"expected {arg!r}, got:\n{shown}")
        first = line[4:].split(" ", 1)[0]
        if enhanced is None and ENHANCED_RE.match(first) and first[0] == code[0]:
            raise DialogError(f"unexpected enhanced status code in:\n{shown}")
        if enhanced is not None and first != enhanced:
            raise DialogError(f"expected enhanced status {enhanced} on every line of:\n{shown}")
        body.append(line[4 + len(enhanced) + 1:] if enhanced else line[4:])
    if enhanced is None and int(code) not in NO_ENHANCED_OK:
        raise DialogError(f"reply {code} must carry an enhanced status code (RFC 2034)")
    if text not in "\n".join(body):
        raise DialogError(f"expected text {text!r} in:\n{shown}")


def run_steps(dialog, port):
    client = Client(port)
    try:
        for lineno, verb, arg in dialog.steps:
            try:
                client = run_step(client, port, verb, arg)
            except (DialogError, OSError) as e:
                raise DialogError(f"{os.path.basename(dialog.path)}:{lineno}: {verb} {arg}: {e}")
    finally:
        client.close()


def run_step(client, port, verb, arg):
    if verb == "connect":
        client.close()
        return Client(port)
    if verb == "send":
        client.send(expand(arg).encode() + b"\r\n")
    elif verb == "send-raw":
        client.send(unescape(arg))
    elif verb == "expect":
        check_reply(client.reply(), arg)
    elif verb == "expect-close":
        client.closed()
    elif verb == "tls":
        client.starttls()
    elif verb == "sleep":
        time.sleep(float(arg))
    return client


# ---- the stored messages, read straight from RocksDB ------------------------------------

def _rocksdb():
    lib = ctypes.CDLL("librocksdb.so.7.8")
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    cpp = ctypes.POINTER(ctypes.c_char_p)
    errp = ctypes.POINTER(ctypes.c_char_p)
    sigs = {
        "rocksdb_options_create": (vp, []),
        "rocksdb_options_destroy": (None, [vp]),
        "rocksdb_list_column_families": (cpp, [vp, ctypes.c_char_p, ctypes.POINTER(sz), errp]),
        "rocksdb_list_column_families_destroy": (None, [cpp, sz]),
        "rocksdb_open_for_read_only_column_families":
            (vp, [vp, ctypes.c_char_p, ctypes.c_int, cpp, ctypes.POINTER(vp), ctypes.POINTER(vp),
                  ctypes.c_ubyte, errp]),
        "rocksdb_column_family_handle_destroy": (None, [vp]),
        "rocksdb_close": (None, [vp]),
        "rocksdb_readoptions_create": (vp, []),
        "rocksdb_readoptions_destroy": (None, [vp]),
        "rocksdb_create_iterator_cf": (vp, [vp, vp, vp]),
        "rocksdb_iter_seek_to_first": (None, [vp]),
        "rocksdb_iter_valid": (ctypes.c_ubyte, [vp]),
        "rocksdb_iter_next": (None, [vp]),
        "rocksdb_iter_key": (ctypes.POINTER(ctypes.c_char), [vp, ctypes.POINTER(sz)]),
        "rocksdb_iter_value": (ctypes.POINTER(ctypes.c_char), [vp, ctypes.POINTER(sz)]),
        "rocksdb_iter_destroy": (None, [vp]),
    }
    for name, (res, args) in sigs.items():
        getattr(lib, name).restype = res
        getattr(lib, name).argtypes = args
    return lib


def _column(lib, db, handle):
    """Every (key, value) of one column family, as a dict (ids sort by creation time)."""
    ro = lib.rocksdb_readoptions_create()
    it = lib.rocksdb_create_iterator_cf(db, ro, handle)
    out = {}
    lib.rocksdb_iter_seek_to_first(it)
    while lib.rocksdb_iter_valid(it):
        klen, vlen = ctypes.c_size_t(), ctypes.c_size_t()
        key = lib.rocksdb_iter_key(it, ctypes.byref(klen))
        value = lib.rocksdb_iter_value(it, ctypes.byref(vlen))
        out[ctypes.string_at(key, klen.value)] = ctypes.string_at(value, vlen.value)
        lib.rocksdb_iter_next(it)
    lib.rocksdb_iter_destroy(it)
    lib.rocksdb_readoptions_destroy(ro)
    return out


def spool_messages(path):
    """Each stored message as its metadata JSON, a newline, and its bytes."""
    lib = _rocksdb()
    err = ctypes.c_char_p()
    opts = lib.rocksdb_options_create()
    n = ctypes.c_size_t()
    names = lib.rocksdb_list_column_families(opts, path.encode(), ctypes.byref(n), ctypes.byref(err))
    assert not err.value, err.value
    cf_opts = (ctypes.c_void_p * n.value)(*([opts] * n.value))
    handles = (ctypes.c_void_p * n.value)()
    db = lib.rocksdb_open_for_read_only_column_families(opts, path.encode(), n.value, names, cf_opts,
                                                        handles, 0, ctypes.byref(err))
    assert not err.value, err.value
    cf = {names[i]: handles[i] for i in range(n.value)}
    meta, data = _column(lib, db, cf[b"meta"]), _column(lib, db, cf[b"data"])
    # Paired by id, not by position: a message with metadata but no bytes (or the reverse)
    # is a broken spool, not one message fewer.
    assert meta.keys() == data.keys(), (sorted(meta.keys() ^ data.keys()))
    out = [meta[k] + b"\n" + data[k] for k in sorted(meta)]
    for i in range(n.value):
        lib.rocksdb_column_family_handle_destroy(handles[i])
    lib.rocksdb_close(db)
    lib.rocksdb_list_column_families_destroy(names, n)
    lib.rocksdb_options_destroy(opts)
    return out


def run_checks(dialog, spool_dir):
    if not dialog.checks:
        return
    # Every dialog's policy defines the spool: a missing directory is a failure, not "empty".
    assert os.path.isdir(spool_dir), f"{os.path.basename(dialog.path)}: no spool at {spool_dir}"
    msgs = spool_messages(spool_dir)
    shown = "\n".join(repr(m) for m in msgs)
    for lineno, verb, arg in dialog.checks:
        where = f"{os.path.basename(dialog.path)}:{lineno}: {verb} {arg}"
        if verb == "spool":
            assert len(msgs) == int(arg), f"{where}: {len(msgs)} stored:\n{shown}"
        elif verb == "spool-has":
            assert any(unescape(arg) in m for m in msgs), f"{where}: stored:\n{shown}"
        else:
            assert not any(unescape(arg) in m for m in msgs), f"{where}: stored:\n{shown}"


# ---- the tests --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    crt, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=mx.test",
                    "-keyout", key, "-out", crt], check=True, capture_output=True, timeout=30)
    return crt, key


@pytest.mark.parametrize("name", dialog_files())
def test_dialog(name, ternd, ports, tmp_path, cert):
    dialog = Dialog(os.path.join(DIALOGS, name))
    t = ternd(dialog.policy(tmp_path, cert))
    try:
        run_steps(dialog, ports[0])
    finally:
        assert t.proc.poll() is None, f"ternd died (status {t.proc.returncode}) during {name}"
    assert t.stop(signal.SIGTERM) == 0
    run_checks(dialog, str(tmp_path / "spool"))


def test_too_many_connections(ternd, ports):
    """The connection over max_connections gets 421 4.7.0 and is closed; a freed slot is reused."""
    ternd(listener_policy("max_connections = 1"))
    first = Client(ports[0])
    check_reply(first.reply(), "220 mx.test")
    for early in (b"", b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\n"):
        second = Client(ports[0])
        second.send(early)
        check_reply(second.reply(), "421 4.7.0 Too many connections")
        second.closed()
        second.close()
    first.send(b"QUIT\r\n")
    check_reply(first.reply(), "221 2.0.0")
    first.closed()
    first.close()
    deadline = time.monotonic() + 2
    while True:
        third = Client(ports[0])
        lines = third.reply()
        third.close()
        if lines[0].startswith("220") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check_reply(lines, "220 mx.test")
