# SPDX-License-Identifier: MIT
"""A webhook receiver for log hook tests: a ThreadingHTTPServer on loopback
that checks each POST's X-Tern-Signature (HMAC-SHA256 of the body) and keeps
the records it accepted. It can be stopped and started again on its port to
play an outage, and told to answer with an error status instead.
"""
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time


class WebhookReceiver:
    def __init__(self, port, secret):
        self.port, self.secret = port, secret.encode()
        self.lock = threading.Lock()
        self.records = []       # every record accepted, duplicates included
        self.posts = 0
        self.bad_signatures = 0
        self.status = 200       # what to answer
        self.delay = 0.0        # seconds to wait before answering
        self.server = None
        self.conns = set()      # open connections, cut at stop (ternd keeps them alive)

    def _handler(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.conns.add(self.connection)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                receiver.accept(self.headers.get("X-Tern-Signature", ""),
                                self.headers.get("Content-Type", ""), body)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    def accept(self, signature, ctype, body):
        want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        with self.lock:
            self.posts += 1
            if not hmac.compare_digest(signature, want) or ctype != "application/json":
                self.bad_signatures += 1
                return
            if self.status == 200:
                self.records.extend(json.loads(body))

    def start(self):
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            conns, self.conns = self.conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def seen(self):
        with self.lock:
            return list(self.records)
