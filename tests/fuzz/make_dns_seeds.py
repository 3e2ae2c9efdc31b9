#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz_dns: DNS replies as a resolver sees them
(MX, A, AAAA, CNAME chains, NXDOMAIN with SOA, truncated, compressed names).
Run from the repository root; the output is committed."""
import os

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, SOA, TXT, A, DNSRecord

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "fuzz_dns")


def reply(name, qtype, answers=(), auth=(), rcode=RCODE.NOERROR, tc=False):
    r = DNSRecord.question(name, qtype).reply()
    r.header.rcode = rcode
    r.header.tc = int(tc)
    for rr in answers:
        r.add_answer(rr)
    for rr in auth:
        r.add_auth(rr)
    return r.pack()


def soa(zone):
    return RR(zone, QTYPE.SOA, ttl=300, rdata=SOA("ns1." + zone, "hostmaster." + zone,
                                                  (2026113001, 3600, 600, 86400, 300)))


SEEDS = {
    "mx_two": reply("example.com", "MX", [
        RR("example.com", QTYPE.MX, ttl=3600, rdata=MX("mx1.example.com", 10)),
        RR("example.com", QTYPE.MX, ttl=3600, rdata=MX("mx2.example.com", 20))]),
    "mx_null": reply("nomail.example", "MX", [
        RR("nomail.example", QTYPE.MX, ttl=3600, rdata=MX(".", 0))]),
    "mx_cname": reply("alias.example", "MX", [
        RR("alias.example", QTYPE.CNAME, ttl=60, rdata=CNAME("real.example")),
        RR("real.example", QTYPE.MX, ttl=60, rdata=MX("mx.real.example", 5))]),
    "a_three": reply("mx1.example.com", "A", [
        RR("mx1.example.com", QTYPE.A, ttl=300, rdata=A("192.0.2.%d" % i)) for i in (1, 2, 3)]),
    "a_cname_chain": reply("www.example", "A", [
        RR("www.example", QTYPE.CNAME, ttl=60, rdata=CNAME("a.example")),
        RR("a.example", QTYPE.CNAME, ttl=60, rdata=CNAME("b.example")),
        RR("b.example", QTYPE.A, ttl=60, rdata=A("198.51.100.7"))]),
    "aaaa_one": reply("mx1.example.com", "AAAA", [
        RR("mx1.example.com", QTYPE.AAAA, ttl=300, rdata=AAAA("2001:db8::25"))]),
    "nxdomain_soa": reply("missing.example", "MX", auth=[soa("example")], rcode=RCODE.NXDOMAIN),
    "nodata_soa": reply("mx1.example.com", "AAAA", auth=[soa("example.com")]),
    "servfail": reply("broken.example", "A", rcode=RCODE.SERVFAIL),
    "truncated": reply("big.example", "MX", tc=True),
    "wrong_type_txt": reply("example.com", "MX", [
        RR("example.com", QTYPE.TXT, ttl=60, rdata=TXT("v=spf1 -all"))]),
    "mx_ttl_zero": reply("example.org", "MX", [
        RR("example.org", QTYPE.MX, ttl=0, rdata=MX("mail.example.org", 0))]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        # The same reply cut short: a parser must refuse it, not read past the end.
        with open(os.path.join(OUT, name + "_cut"), "wb") as f:
            f.write(data[:len(data) * 2 // 3])


if __name__ == "__main__":
    main()
