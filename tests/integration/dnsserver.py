#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""An authoritative-only DNS server for tests, on 127.0.0.1 over UDP and TCP.

It answers ONLY its own zones from a dict and never forwards or recurses, so
no test query can leave the machine:

    {"example.test":     {"MX": [[10, "mx1.example.test."]], "ttl": 60},
     "mx1.example.test": {"A": ["127.0.0.2"], "AAAA": ["::2"]},
     "s._domainkey.example.test": {"TXT": ["v=DKIM1; k=ed25519; p=..."]},
     "broken.test":      {"servfail": true},
     "slow.test":        {"drop": ["MX"]},
     "$zones": ["example.test", "broken.test", "slow.test"],
     "$soa_minimum": 30}

A name's records are lists per type (MX as [preference, exchange], TXT as
one string each, sent as 255-octet character-strings); "ttl"
sets their TTL (default 300); "servfail" and "drop" (true, or a list of
types) answer SERVFAIL or nothing at all. The zones are "$zones", or else the
last two labels of every name. Undefined names inside a zone get NXDOMAIN
(NODATA when they own descendants), with the zone's SOA whose minimum is
"$soa_minimum" (default 300); names outside every zone get REFUSED.

Every question is counted (`server.queries`, and with --log one "name TYPE"
line each), so tests can tell a cached answer from a fresh one.

    /usr/bin/python3 tests/integration/dnsserver.py --port N --zones FILE.json [--log FILE]

prints "ready PORT" on stdout once both sockets listen (--port 0 picks one).
"""
import argparse
import json
import socketserver
import struct
import sys
import threading

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, SOA, TXT, A, DNSRecord

DEFAULT_TTL = 300
DEFAULT_SOA_MINIMUM = 300


def _norm(name):
    return str(name).rstrip(".").lower()


class Zones:
    """The server's data: names, their records and failure modes."""

    def __init__(self, data):
        data = dict(data)
        self.soa_minimum = int(data.pop("$soa_minimum", DEFAULT_SOA_MINIMUM))
        zones = data.pop("$zones", None)
        self.names = {_norm(k): v for k, v in data.items()}
        if zones is None:
            zones = {".".join(n.split(".")[-2:]) for n in self.names}
        self.zones = {_norm(z) for z in zones}

    def zone_of(self, name):
        best = None
        for z in self.zones:
            if (name == z or name.endswith("." + z)) and (best is None or len(z) > len(best)):
                best = z
        return best

    def soa(self, zone):
        m = self.soa_minimum
        return RR(zone + ".", QTYPE.SOA, ttl=m,
                  rdata=SOA("ns." + zone + ".", "hostmaster." + zone + ".", (1, 3600, 600, 86400, m)))

    @staticmethod
    def _matches(flag, qtype):
        return flag is True or (isinstance(flag, list) and qtype in flag)

    def records(self, name, qtype, entry):
        ttl = int(entry.get("ttl", DEFAULT_TTL))
        out = []
        for value in entry.get(qtype, []):
            if qtype == "A":
                out.append(RR(name + ".", QTYPE.A, ttl=ttl, rdata=A(value)))
            elif qtype == "AAAA":
                out.append(RR(name + ".", QTYPE.AAAA, ttl=ttl, rdata=AAAA(value)))
            elif qtype == "MX":
                out.append(RR(name + ".", QTYPE.MX, ttl=ttl, rdata=MX(value[1], value[0])))
            elif qtype == "CNAME":
                out.append(RR(name + ".", QTYPE.CNAME, ttl=ttl, rdata=CNAME(value)))
            elif qtype == "TXT":
                raw = value.encode()
                out.append(RR(name + ".", QTYPE.TXT, ttl=ttl,
                              rdata=TXT([raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""])))
        return out

    def answer(self, request):
        """The reply to request, or None to drop it."""
        q = request.q
        name, qtype = _norm(q.qname), QTYPE[q.qtype]
        reply = request.reply(ra=0)
        zone = self.zone_of(name)
        if zone is None:
            reply.header.rcode = RCODE.REFUSED
            reply.header.aa = 0
            return reply
        entry = self.names.get(name)
        if entry is not None and self._matches(entry.get("drop"), qtype):
            return None
        if entry is not None and self._matches(entry.get("servfail"), qtype):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if qtype == "SOA" and name == zone:
            reply.add_answer(self.soa(zone))
            return reply
        if entry is not None:
            for rr in self.records(name, qtype, entry) or self.records(name, "CNAME", entry):
                reply.add_answer(rr)
        elif not any(n.endswith("." + name) for n in self.names) and name != zone:
            reply.header.rcode = RCODE.NXDOMAIN
        if not reply.rr:
            reply.add_auth(self.soa(zone))
        return reply


class DNSTestServer:
    """Both listeners on one port; start() in threads, stop() to close them."""

    def __init__(self, zones, port=0, host="127.0.0.1", log_path=None):
        self.zones = Zones(zones)
        self.host = host
        self.port = port
        self.log_path = log_path
        self.queries = []
        self._lock = threading.Lock()
        self._servers = []
        self._threads = []

    def set_zones(self, zones):
        self.zones = Zones(zones)

    def count(self, name=None, qtype=None):
        """How many questions were asked, for one name and/or type."""
        with self._lock:
            return sum(1 for n, t in self.queries
                       if (name is None or n == _norm(name)) and (qtype is None or t == qtype))

    def reset(self):
        with self._lock:
            self.queries.clear()

    def handle(self, data):
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return None
        name, qtype = _norm(request.q.qname), QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((name, qtype))
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(f"{name} {qtype}\n")
        reply = self.zones.answer(request)
        return reply.pack() if reply is not None else None

    def _bind(self):
        outer = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                out = outer.handle(data)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    head = self._read(2)
                    if head is None:
                        return
                    data = self._read(struct.unpack("!H", head)[0])
                    if data is None:
                        return
                    out = outer.handle(data)
                    if out is not None:
                        self.request.sendall(struct.pack("!H", len(out)) + out)

            def _read(self, n):
                buf = b""
                while len(buf) < n:
                    chunk = self.request.recv(n - len(buf))
                    if not chunk:
                        return None
                    buf += chunk
                return buf

        class UDP(socketserver.ThreadingUDPServer):
            daemon_threads = True

        class TCP(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        udp = UDP((self.host, self.port), UDPHandler)
        try:
            tcp = TCP((self.host, udp.server_address[1]), TCPHandler)
        except OSError:
            udp.server_close()
            raise
        return udp, tcp

    def start(self):
        for attempt in range(20):
            try:
                udp, tcp = self._bind()
                break
            except OSError:
                if self.port != 0 or attempt == 19:
                    raise
        self.port = udp.server_address[1]
        self._servers = [udp, tcp]
        for s in self._servers:
            t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        for s in self._servers:
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join()
        self._servers, self._threads = [], []

    @property
    def address(self):
        return f"{self.host}:{self.port}"


def txt_lookup(address, name, timeout=5):
    """The TXT record of name from the server at "host:port", its strings joined; None if none.

    A real query over UDP (TCP when truncated), for verifiers such as dkimpy's dnsfunc.
    """
    host, port = address.rsplit(":", 1)
    q = DNSRecord.question(name.rstrip(".") + ".", "TXT")
    reply = DNSRecord.parse(q.send(host, int(port), timeout=timeout))
    if reply.header.tc:
        reply = DNSRecord.parse(q.send(host, int(port), tcp=True, timeout=timeout))
    texts = [b"".join(rr.rdata.data) for rr in reply.rr if rr.rtype == QTYPE.TXT]
    return texts[0] if texts else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--zones", required=True, help="JSON file with the zone data")
    ap.add_argument("--log", help="append one 'name TYPE' line per question")
    a = ap.parse_args()
    with open(a.zones) as f:
        zones = json.load(f)
    server = DNSTestServer(zones, port=a.port, log_path=a.log).start()
    print(f"ready {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
