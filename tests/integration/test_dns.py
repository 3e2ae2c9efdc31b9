# SPDX-License-Identifier: MIT
"""tern.dns against the test DNS server: MX sets, implicit and null MX, failures, caches.

Each test runs `ternd --script` whose policy points tern.dns at a dnsserver.py
on loopback; the script prints one JSON line per lookup.
"""
import json
import time

from conftest import run_ternd

ZONES = {
    "example.test": {"MX": [[20, "mx2.example.test."], [10, "mx1.example.test."]], "ttl": 60},
    "mx1.example.test": {"A": ["127.0.0.2"], "AAAA": ["::2"]},
    "mx2.example.test": {"AAAA": ["::3"], "A": ["127.0.0.3"]},
    "plain.test": {"A": ["127.0.0.9"], "AAAA": ["::9"]},
    "nullmx.test": {"MX": [[0, "."]]},
    "dead.test": {"MX": [[10, "nowhere.dead.test."]]},
    "broken.test": {"servfail": True},
    "slow.test": {"drop": True},
    "zero.test": {"MX": [[10, "mx1.example.test."]], "ttl": 0},
    "$soa_minimum": 60,
}

SCRIPT = """
tern.dns.configure { servers = { '%(addr)s' }, timeout = '%(timeout)s', attempts = 2 }

local function show(domain)
  local t0 = tern.now()
  local mx, err, status = tern.dns.lookup_mx(domain)
  local hosts = {}
  for i, h in ipairs(mx or {}) do hosts[i] = h end
  print(tern.json.encode({ domain = domain, n = #hosts, hosts = hosts,
                           implicit = mx ~= nil and mx.implicit == true,
                           err = err or '', status = status or 'OK',
                           elapsed = tern.now() - t0 }))
end

tern.on('main', function(args)
%(body)s
end)
"""


def run(tmp_path, server, body, timeout="2s", threads=1):
    path = tmp_path / "dns_script.lua"
    path.write_text(SCRIPT % {"addr": server.address, "timeout": timeout, "body": body})
    r = run_ternd("--threads", str(threads), "--script", str(path))
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def lookups(tmp_path, server, *domains, **kw):
    return run(tmp_path, server, "\n".join(f"  show('{d}')" for d in domains), **kw)


def test_mx_sorted_by_preference_with_a_and_aaaa(tmp_path, dns_server):
    server = dns_server(ZONES)
    [r] = lookups(tmp_path, server, "example.test")
    assert r["status"] == "OK" and not r["implicit"]
    assert [(h["host"], h["preference"]) for h in r["hosts"]] == [
        ("mx1.example.test.", 10), ("mx2.example.test.", 20)]
    assert r["hosts"][0]["addresses"] == ["127.0.0.2", "::2"]
    assert r["hosts"][1]["addresses"] == ["127.0.0.3", "::3"]  # IPv4 first


def test_no_mx_means_the_domains_own_addresses(tmp_path, dns_server):
    server = dns_server(ZONES)
    [r] = lookups(tmp_path, server, "plain.test")
    assert r["status"] == "OK" and r["implicit"]
    assert r["hosts"] == [{"host": "plain.test.", "preference": 0,
                           "addresses": ["127.0.0.9", "::9"]}]


def test_null_mx_is_a_permanent_failure(tmp_path, dns_server):
    server = dns_server(ZONES)
    [r] = lookups(tmp_path, server, "nullmx.test")
    assert (r["n"], r["err"], r["status"]) == (0, "null MX", "NULL_MX")
    assert server.count("nullmx.test", "A") == 0  # no address lookups for a null MX


def test_nxdomain_is_permanent_and_cached(tmp_path, dns_server):
    server = dns_server(ZONES)
    a, b = lookups(tmp_path, server, "nosuch.example.test", "nosuch.example.test")
    assert (a["err"], a["status"]) == ("NXDOMAIN", "NXDOMAIN")
    assert b["status"] == "NXDOMAIN"
    assert server.count("nosuch.example.test") == 1


def test_mx_hosts_without_address(tmp_path, dns_server):
    server = dns_server(ZONES)
    [r] = lookups(tmp_path, server, "dead.test")
    assert (r["n"], r["status"]) == (0, "NO_ADDRESS")


def test_servfail_is_transient(tmp_path, dns_server):
    server = dns_server(ZONES)
    [r] = lookups(tmp_path, server, "broken.test")
    assert (r["err"], r["status"]) == ("SERVFAIL", "TEMPFAIL")


def test_timeout_is_transient_within_the_configured_timeout(tmp_path, dns_server):
    server = dns_server(ZONES)
    start = time.monotonic()
    [r] = lookups(tmp_path, server, "slow.test", timeout="1s")
    assert (r["err"], r["status"]) == ("timed out", "TEMPFAIL")
    assert 0.9 <= r["elapsed"] < 1.3
    assert time.monotonic() - start < 5
    assert server.count("slow.test", "MX") >= 2  # the attempts


def test_answers_are_cached_for_their_ttl(tmp_path, dns_server):
    server = dns_server(ZONES)
    a, b = lookups(tmp_path, server, "example.test", "example.test")
    assert a == dict(b, elapsed=a["elapsed"])
    assert server.count("example.test", "MX") == 1
    assert server.count("mx1.example.test", "A") == 1
    assert b["elapsed"] < 0.01


def test_zero_ttl_is_floored(tmp_path, dns_server):
    server = dns_server(ZONES)
    a, b = lookups(tmp_path, server, "zero.test", "zero.test")
    assert a["status"] == b["status"] == "OK"
    assert server.count("zero.test", "MX") == 1


def test_concurrent_lookups_coalesce(tmp_path, dns_server):
    server = dns_server(ZONES)
    rs = run(tmp_path, server, """
  local tasks = {}
  for i = 1, 5 do tasks[i] = tern.spawn(show, 'example.test') end
  for i = 1, 5 do tasks[i]:join() end
""")
    assert len(rs) == 5 and all(r["n"] == 2 for r in rs)
    assert server.count("example.test", "MX") == 1
    assert server.count("mx2.example.test", "AAAA") == 1


def test_each_shard_resolves_on_its_own_loop(tmp_path, dns_server):
    server = dns_server(ZONES)
    (tmp_path / "dnsmod.lua").write_text(
        "return { mx = function(d) local mx, err = tern.dns.lookup_mx(d)"
        " return mx and mx[1].host or err end }\n")
    rs = run(tmp_path, server, f"""
  package.path = '{tmp_path}/?.lua;' .. package.path
  for shard = 0, 1 do
    local ok, host = tern.shard.call(shard, 'dnsmod', 'mx', 'example.test')
    print(tern.json.encode({{ shard = shard, ok = ok, host = host }}))
  end
""", threads=2)
    assert [(r["shard"], r["ok"], r["host"]) for r in rs] == [
        (0, True, "mx1.example.test."), (1, True, "mx1.example.test.")]


def test_configure_rejects_unknown_options_and_bad_servers(tmp_path):
    for text, want in [
        ("tern.dns.configure { servers = {'127.0.0.1:53'}, colour = 'blue' }",
         "unknown option 'colour' for tern.dns.configure"),
        ("tern.dns.configure { servers = {'dns.example.com'} }", "is not a server address"),
        ("tern.dns.configure { timeout = 'soon' }", "'soon' is not a duration"),
    ]:
        path = tmp_path / "p.lua"
        path.write_text(text + "\n")
        r = run_ternd("--check", "--policy", str(path))
        assert r.returncode == 1 and want in r.stderr, r.stderr
        assert "p.lua:1:" in r.stderr
