# SPDX-License-Identifier: MIT
"""tern.http.request against a local Python HTTP server: answers, concurrency
on one shard (100 requests take about the time of one), timeouts as errors,
connection reuse, TLS verification on by default, and a slow server never
holding up the SMTP sessions of the same shard.
"""
import http.server
import socket
import ssl
import threading
import time

import pytest

from conftest import run_ternd
from tls import make_cert

SLOW = 1.0  # seconds each /slow answer takes


class Server:
    """ThreadingHTTPServer on loopback: /echo, /slow, /status/N; counts connections."""

    def __init__(self, port, tls=None):
        self.connections = 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with server.lock:
                    server.connections += 1

            def answer(self, status, body, extra=()):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Reply", "yes")
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/slow"):
                    time.sleep(float(self.path.partition("=")[2] or SLOW))
                if self.path.startswith("/status/"):
                    return self.answer(int(self.path[8:]), b"status")
                self.answer(200, f"{self.command} {self.path} {self.headers.get('X-Ask')}".encode())

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.answer(201, body, [("Content-Type", self.headers.get("Content-Type", ""))])

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.request_queue_size = 256
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(ports):
    s = Server(ports[0])
    yield s
    s.stop()


def run_script(tmp_path, body, *args):
    path = tmp_path / "http_test.lua"
    path.write_text("local t = require 'tern.testing'\n"
                    "tern.on('main', function(args)\n" + body + "\n  return t.done()\nend)\n")
    r = run_ternd("--threads", "2", "--script", str(path), "--", *map(str, args))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def test_request_answer_and_errors(server, ports, tmp_path):
    run_script(tmp_path, """
  local base = 'http://127.0.0.1:' .. args[1]
  local r, err = tern.http.request { url = base .. '/x', headers = { ['X-Ask'] = 'please' } }
  t.eq(err, nil, 'a GET succeeds')
  t.eq(r.status, 200, 'status')
  t.eq(r.body, 'GET /x please', 'body, and the header was sent')
  t.eq(r.headers['x-reply'], 'yes', 'header names are lower case')
  r = tern.http.request { method = 'POST', url = base .. '/p', body = 'a\\0b',
                          headers = { ['Content-Type'] = 'application/json' } }
  t.eq(r.status, 201, 'POST status')
  t.eq(r.body, 'a\\0b', 'the body is sent as is, NUL included')
  t.eq(r.headers['content-type'], 'application/json', 'Content-Type sent')
  t.eq(tern.http.request { url = base .. '/status/503' }.status, 503, 'an error status is an answer')
  local start = tern.now()
  r, err = tern.http.request { url = base .. '/slow?d=5', timeout = '300ms' }
  t.eq(r, nil, 'a timeout is an error')
  t.contains(err, 'Timeout', 'the error says timeout')
  t.ok(tern.now() - start < 3, 'and it comes at the deadline, not after the answer')
  r, err = tern.http.request { url = 'http://127.0.0.1:' .. args[2] .. '/' }
  t.eq(r, nil, 'a refused connection is an error')
  t.ok(err ~= nil, 'with a message: ' .. tostring(err))
  r, err = tern.http.request { url = 'ftp://127.0.0.1/' }
  t.eq(r, nil, 'only http and https')
  t.raises(function() tern.http.request { url = base, verb = 'GET' } end, "unknown option 'verb'",
           'unknown options are refused')
  t.raises(function() tern.http.request { url = base, method = 'GET /x HTTP/1.0\\r\\n' } end,
           "'method' must be", 'a method is a word')
  t.raises(function() tern.http.request { method = 'GET' } end, "'url' is required",
           'url is required')
  t.raises(function() tern.http.request { url = base, headers = { ['X'] = 'a\\r\\nB: c' } } end,
           'line break', 'header injection is refused')
""", ports[0], ports[1])


def test_hundred_concurrent_requests_take_about_one(server, ports, tmp_path):
    out = run_script(tmp_path, """
  local url = 'http://127.0.0.1:' .. args[1] .. '/slow'
  local start = tern.now()
  local tasks = {}
  for i = 1, 100 do tasks[i] = tern.spawn(function() return tern.http.request { url = url } end) end
  local ok = 0
  for i = 1, 100 do
    local _, r = tasks[i]:join()
    if r and r.status == 200 then ok = ok + 1 end
  end
  local took = tern.now() - start
  t.eq(ok, 100, 'all 100 answered')
  print(('took %.2f s'):format(took))
  t.ok(took < 3 * 1.0, ('100 requests of 1 s overlap (took %.2f s)'):format(took))
""", ports[0])
    assert "took" in out


def test_connections_are_reused(server, ports, tmp_path):
    run_script(tmp_path, """
  for i = 1, 20 do
    t.eq(tern.http.request { url = 'http://127.0.0.1:' .. args[1] .. '/n' .. i }.status, 200,
         'request ' .. i)
  end
""", ports[0])
    assert server.connections == 1


def test_tls_is_verified_by_default(ports, tmp_path):
    cert, key = make_cert(tmp_path, "localhost")
    s = Server(ports[0], tls=(cert, key))
    try:
        run_script(tmp_path, """
  local url = 'https://localhost:' .. args[1] .. '/tls'
  local r, err = tern.http.request { url = url }
  t.eq(r, nil, 'a self-signed certificate is refused')
  t.contains(err, 'certificate', 'because of the certificate: ' .. tostring(err))
  r = tern.http.request { url = url, insecure = true }
  t.eq(r and r.status, 200, 'insecure = true skips the check')
""", ports[0])
    finally:
        s.stop()


def ehlo_time(port, name):
    """Seconds from connect to the EHLO reply."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        f = c.makefile("rb")
        f.readline()
        c.sendall(f"EHLO {name}\r\n".encode())
        while not f.readline().startswith(b"250 "):
            pass
    return time.monotonic() - start


def test_slow_server_never_blocks_smtp_sessions(ternd, server, ports):
    """One shard: a hook waits 5 s for HTTP while other sessions on that shard go on."""
    ternd("tern.on('init', function()\n"
          "  tern.define_spool { path = '{dir}/spool' }\n"
          "  tern.start_esmtp_listener { listen = '127.0.0.1:{port2}', hostname = 'mx.test' }\n"
          "end)\n"
          "tern.on('smtp_server_ehlo', function(domain)\n"
          "  if domain == 'slow.test' then\n"
          "    tern.http.request { url = 'http://127.0.0.1:{port}/slow?d=5' }\n"
          "  end\n"
          "end)\n", threads=1)
    slow = {}
    th = threading.Thread(target=lambda: slow.setdefault("t", ehlo_time(ports[1], "slow.test")))
    th.start()
    time.sleep(0.3)  # let the slow session reach its hook first
    fast = [ehlo_time(ports[1], f"fast{i}.test") for i in range(5)]
    th.join()
    assert slow["t"] >= 4.5
    assert max(fast) < 2.0, fast
