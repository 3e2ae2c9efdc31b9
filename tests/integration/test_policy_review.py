# SPDX-License-Identifier: MIT
"""`tern policy explain` and `tern policy diff`: offline review of delivery rules.

explain is run on policy-examples/esp.lua and must name the right value and
the right file:line for each setting; diff runs in a temporary git repository
and must list exactly the domains a change reaches.
"""
import json
import os
import subprocess

from conftest import ROOT, TERND, run_tern

ESP = os.path.join(ROOT, "policy-examples", "esp.lua")
ESP_REL = "policy-examples/esp.lua"


def esp_line(text, after=None):
    """The 1-based line of esp.lua containing text (the first after the line containing `after`)."""
    lines = open(ESP).read().split("\n")
    start = 0
    if after is not None:
        start = next(i for i, l in enumerate(lines) if after in l) + 1
    return next(i for i, l in enumerate(lines) if i >= start and text in l) + 1


def explain(*args):
    r = run_tern("policy", "explain", "--policy", ESP_REL, *args, "--json", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_explain_gmail_by_domain_entry():
    out = explain("--domain", "gmail.com")
    assert out["queue"] == "gmail.com"
    assert out["queue_config"]["egress_pool"] == "shared"
    assert out["queue_config"]["max_age"] == "3d"
    assert out["egress_pool"] == {"name": "shared", "entries": [
        {"name": "ip-1", "weight": 4}, {"name": "ip-2", "weight": 4},
        {"name": "ip-3", "weight": 4}, {"name": "ip-4", "weight": 1}]}
    assert set(out["paths"]) == {"ip-1", "ip-2", "ip-3", "ip-4"}
    p, of = out["paths"]["ip-1"], out["sources_of"]["ip-1"]
    gmail = "%s:%d" % (ESP_REL, esp_line("['gmail.com']"))
    assert (p["max_message_rate"], of["max_message_rate"]) == ("120/min", gmail)
    assert (p["connection_limit"], of["connection_limit"]) == (15, gmail)
    assert of["max_deliveries_per_connection"] == "%s:%d" % (ESP_REL, esp_line("defaults = {"))
    assert of["smtp_port"] == "%s:%d" % (ESP_REL, esp_line("smtp_port = tonumber"))
    assert (p["data_timeout"], of["data_timeout"]) == ("5m", "default")
    assert (p["max_connection_rate"], of["max_connection_rate"]) == ("none", "default")


def test_explain_domain_matched_only_by_mx():
    google = "%s:%d" % (ESP_REL, esp_line("max_message_rate = '120/min'", after="google    ="))
    # Through the provider data (googlemail.com is in no table of esp.lua) ...
    out = explain("--domain", "googlemail.com", "--source", "ip-2")
    assert list(out["paths"]) == ["ip-2"]
    assert out["paths"]["ip-2"]["max_message_rate"] == "120/min"
    assert out["sources_of"]["ip-2"]["max_message_rate"] == google
    assert out["sources_of"]["ip-2"]["connection_limit"] == google
    # ... and through --mx for a domain nobody knows.
    out = explain("--domain", "corp.example", "--mx", "aspmx.l.google.com,alt1.aspmx.l.google.com")
    assert out["paths"]["ip-1"]["connection_limit"] == 15
    assert out["sources_of"]["ip-1"]["connection_limit"] == google
    # An unknown domain without --mx gets the defaults.
    out = explain("--domain", "corp.example")
    assert out["paths"]["ip-1"]["max_message_rate"] == "60/min"
    assert out["sources_of"]["ip-1"]["max_message_rate"] == "%s:%d" % (ESP_REL, esp_line("defaults = {"))


def test_explain_per_source_override():
    out = explain("--domain", "yahoo.com")
    ip4 = "%s:%d" % (ESP_REL, esp_line("sources = { ['ip-4']"))
    yahoo = "%s:%d" % (ESP_REL, esp_line("['yahoo.com']"))
    assert (out["paths"]["ip-4"]["max_message_rate"], out["sources_of"]["ip-4"]["max_message_rate"]) \
        == ("30/min", ip4)
    assert (out["paths"]["ip-4"]["connection_limit"], out["sources_of"]["ip-4"]["connection_limit"]) \
        == (2, ip4)
    assert (out["paths"]["ip-1"]["max_message_rate"], out["sources_of"]["ip-1"]["max_message_rate"]) \
        == ("100/min", yahoo)


def test_explain_text_and_errors(tmp_path):
    r = run_tern("policy", "explain", "--policy", ESP_REL, "--domain", "outlook.com",
                 "--tenant", "acme", "--campaign", "spring", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "queue  spring:acme@outlook.com" in r.stdout
    assert "shaping provider microsoft (by MX suffix)" in r.stdout
    assert "%s:%d" % (ESP_REL, esp_line("['outlook.com']")) in r.stdout
    bad = tmp_path / "bad.lua"
    bad.write_text("tern.on('get_queue_config', function() end)\nlocal x = = 1\n")
    r = run_tern("policy", "explain", "--policy", str(bad), "--domain", "gmail.com")
    assert r.returncode == 2 and "bad.lua:2:" in r.stderr
    r = run_tern("policy", "explain", "--domain", "gmail.com")
    assert r.returncode == 2 and "usage" in r.stderr


POLICY = """local shaping = require 'tern.shaping'
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'shared' }
end)
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { { name = 'ip-1', weight = 2 },
                                                          { name = 'ip-2', weight = 1 } } }
end)
local shape = shaping.new {
  defaults = { connection_limit = 5, max_message_rate = '60/min' },
  providers = {
    google = { mx_suffixes = { '.google.com' }, connection_limit = 15, max_message_rate = '120/min' },
    microsoft = { mx_suffixes = { '.protection.outlook.com' }, connection_limit = 25, max_message_rate = '300/min' },
    yahoo = { mx_suffixes = { '.yahoodns.net' }, connection_limit = 10, max_message_rate = '100/min' },
  },
  domains = { ['example.org'] = { connection_limit = 2 } },
}
tern.on('get_egress_path_config', function(domain, source, site)
  return shape:path(domain, source, site)
end)
"""


AUTOMATION = """local shaping = require 'tern.shaping'
local shape = shaping.new {
  automation_defaults = false,
  defaults = { connection_limit = 5,
    automation = { { regex = 'S3150', action = 'suspend_source', duration = '4h' } } },
  providers = {
    google = { mx_suffixes = { '.google.com' }, automation = {
      { regex = { '4\\\\.7\\\\.28', 'unusual rate' }, action = 'suspend', duration = '1h' },
      shaping.rule { regex = 'TSS04', action = { set = { max_message_rate = '30/min', connection_limit = 2 } },
                     duration = '30m', trigger = '3/5m', recovery = '10m' },
    } },
  },
  domains = { ['example.org'] = { automation = { { regex = 'go away', action = 'bounce' } } } },
}
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = { { name = 'ip-1' }, { name = 'ip-2' } } }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return shape:path(domain, source, site)
end)
"""


def line_of(text, needle):
    return next(i for i, l in enumerate(text.split("\n")) if needle in l) + 1


def test_explain_shows_automation_rules(tmp_path):
    # Regression: explain did not show backoff, so a reviewer could not see what a reply does.
    policy = tmp_path / "policy.lua"
    policy.write_text(AUTOMATION)
    r = run_tern("policy", "explain", "--policy", str(policy), "--domain", "gmail.com")
    assert r.returncode == 0, r.stderr
    at = lambda needle: "%s:%d" % (policy, line_of(AUTOMATION, needle))  # noqa: E731
    expected = [
        "  automation (checked in this order; the first matching rule acts)",
        "    1. on /4\\.7\\.28/ or /unusual rate/: suspend for 1h, recovery 5m",
        "       providers.google.automation[1]  " + at("unusual rate"),
        "    2. on /TSS04/ (trigger 3/5m): set max_message_rate=30/min connection_limit=2 for 30m,"
        " recovery 10m",
        "       providers.google.automation[2]  " + at("TSS04"),
        "    3. on /S3150/: suspend_source for 4h, recovery 5m",
        "       defaults.automation[1]  " + at("S3150"),
    ]
    text = r.stdout.split("\n")
    for source in ("ip-1", "ip-2"):
        start = text.index("path " + source)
        block = text[start:text.index(expected[0], start) + len(expected)]
        assert block[-len(expected):] == expected, r.stdout
    out = explain_at(policy, "example.org", "--source", "ip-2")
    rules = out["paths"]["ip-2"]["automation"]
    assert [(x["scope"], x["action"], x.get("duration"), x["at"]) for x in rules] == [
        ("domains.example.org.automation[1]", "bounce", None, at("go away")),
        ("defaults.automation[1]", "suspend_source", "4h", at("S3150"))]
    out = explain_at(policy, "gmail.com", "--source", "ip-1")
    assert out["paths"]["ip-1"]["automation"][1]["action"] == {
        "set": {"max_message_rate": "30/min", "connection_limit": 2}}


def test_diff_automation_rules(tmp_path):
    # Regression: diff compared path settings only, so a new backoff rule went unreviewed.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "policy.lua").write_text(AUTOMATION)
    git(repo, "init", "-q", ".")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    # Moving rules down the file (new lines above) changes nothing a reviewer must see.
    (repo / "policy.lua").write_text("-- Shaping.\n\n" + AUTOMATION)
    r = diff(repo, "HEAD")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    (repo / "policy.lua").write_text(AUTOMATION.replace(
        "action = 'suspend', duration = '1h' },",
        "action = 'suspend', duration = '2h' },\n"
        "      { regex = '4\\\\.7\\\\.0 .*TLS', action = { set = { connection_limit = 1 } }, duration = '10m' },"))
    r = diff(repo, "HEAD", "--json")
    assert r.returncode == 1, r.stderr
    changes = json.loads(r.stdout)["changes"]
    assert [g["group"] for g in changes] == ["google"]
    g = changes[0]
    assert set(g["domains"]) == provider_domains(tmp_path, "google")
    assert sorted((c["what"], c["old"], c["new"], c["paths"]) for c in g["changes"]) == [
        ("automation providers.google rule added", "(none)",
         "on /4\\.7\\.0 .*TLS/: set connection_limit=1 for 10m, recovery 5m", 2),
        ("automation providers.google rule changed",
         "on /4\\.7\\.28/ or /unusual rate/: suspend for 1h, recovery 5m",
         "on /4\\.7\\.28/ or /unusual rate/: suspend for 2h, recovery 5m", 2)]
    r = diff(repo, "HEAD")
    n = 2 * len(g["domains"])
    assert ("  automation providers.google rule added: (none) -> on /4\\.7\\.0 .*TLS/: set connection_limit=1"
            " for 10m, recovery 5m (affects %d paths)" % n) in r.stdout.split("\n")
    # A default rule removed reaches every domain, each named with its paths.
    (repo / "policy.lua").write_text(AUTOMATION.replace("{ { regex = 'S3150', action = 'suspend_source', "
                                                        "duration = '4h' } }", "{}"))
    r = diff(repo, "HEAD", "--markdown")
    assert r.returncode == 1
    assert ("| automation defaults rule removed (affects 2 paths) | `on /S3150/: suspend_source for 4h,"
            " recovery 5m` | `(none)` |") in r.stdout
    assert "example.org" in r.stdout
    # ... and is summed up once over all groups.
    r = diff(repo, "HEAD", "--json")
    totals = json.loads(r.stdout)["automation"]
    domains = {d for g in json.loads(r.stdout)["changes"] for d in g["domains"]}
    assert [(t["what"], t["paths"], t["domains"]) for t in totals] == [
        ("automation defaults rule removed", 2 * len(domains), len(domains))]
    r = diff(repo, "HEAD")
    assert r.stdout.split("\n")[-3:] == [
        "automation rule changes over all groups:",
        "  automation defaults rule removed: on /S3150/: suspend_source for 4h, recovery 5m -> (none)"
        " (affects %d paths in %d domains)" % (2 * len(domains), len(domains)), ""]


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test",
                    *args], check=True, capture_output=True)


def provider_domains(tmp_path, name):
    script = tmp_path / "domains.lua"
    script.write_text("tern.on('main', function()\n"
                      "  print(tern.json.encode(require('tern.data.providers')['%s'].domains))\n"
                      "  return 0\nend)\n" % name)
    r = subprocess.run([TERND, "--threads", "1", "--script", str(script)], capture_output=True,
                       text=True, timeout=60)
    return set(json.loads(r.stdout))


def diff(repo, *args):
    return run_tern("policy", "diff", *args, cwd=str(repo))


def test_diff_lists_exactly_the_provider_domains(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "policy.lua").write_text(POLICY)
    git(repo, "init", "-q", ".")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    (repo / "policy.lua").write_text(POLICY.replace("max_message_rate = '300/min'",
                                                    "max_message_rate = '200/min'"))
    git(repo, "commit", "-qam", "slower at Microsoft")
    r = diff(repo, "HEAD~1", "HEAD", "--json")
    assert r.returncode == 1, r.stderr
    changes = json.loads(r.stdout)["changes"]
    domains = {d for g in changes for d in g["domains"]}
    assert domains == provider_domains(tmp_path, "microsoft")
    assert len(domains) > 40
    for g in changes:
        assert g["group"] == "microsoft"
        assert sorted((c["what"], c["old"], c["new"]) for c in g["changes"]) == [
            ("ip-1 max_message_rate", "300/min", "200/min"),
            ("ip-2 max_message_rate", "300/min", "200/min")]
    r = diff(repo, "HEAD~1", "--markdown")  # REV2 defaults to the work tree
    assert r.returncode == 1
    assert "| ip-1 max_message_rate | `300/min` | `200/min` |" in r.stdout
    assert "hotmail.com" in r.stdout and "gmail.com" not in r.stdout
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True)
    assert len(listed.stdout.strip().split("\n")) == 1, "temporary worktrees are removed"


def test_diff_reformat_only_and_domains_file(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "policy.lua").write_text(POLICY)
    git(repo, "init", "-q", ".")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    reformatted = ("-- Shaping for the big providers.\n" + POLICY
                   .replace("connection_limit = 15, max_message_rate",
                            "\n               connection_limit = 15,\n               max_message_rate")
                   .replace("['example.org'] = { connection_limit = 2 }",
                            "[\"example.org\"]={connection_limit=2;}"))
    (repo / "policy.lua").write_text(reformatted)
    git(repo, "commit", "-qam", "reformat")
    r = diff(repo, "HEAD~1", "HEAD")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    # A sender's own domains (--domains) are evaluated too.
    (repo / "policy.lua").write_text(reformatted.replace("connection_limit = 5,", "connection_limit = 6,"))
    (repo / "top.txt").write_text("# our top domains\nshop.example\n")
    r = diff(repo, "HEAD", "--domains", str(repo / "top.txt"), "--json")
    assert r.returncode == 1
    changes = json.loads(r.stdout)["changes"]
    domains = {d for g in changes for d in g["domains"]}
    assert "shop.example" in domains and "example.org" not in domains and "gmail.com" not in domains


def test_diff_domain_named_only_in_the_policy(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "policy.lua").write_text(POLICY)
    git(repo, "init", "-q", ".")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    (repo / "policy.lua").write_text(POLICY.replace("connection_limit = 2 }", "connection_limit = 3 }"))
    r = diff(repo, "HEAD")
    assert r.returncode == 1, r.stderr
    assert r.stdout == ("no known provider (1 domain): example.org\n"
                        "  ip-1 connection_limit: 2 -> 3\n  ip-2 connection_limit: 2 -> 3\n")


def test_diff_errors(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "policy.lua").write_text(POLICY)
    git(repo, "init", "-q", ".")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    (repo / "policy.lua").write_text(POLICY + "local broken = \n")
    r = diff(repo, "HEAD")
    assert r.returncode == 2 and "work tree: policy.lua:22:" in r.stderr, r.stderr
    r = diff(repo, "no-such-rev")
    assert r.returncode == 2 and "no-such-rev" in r.stderr


PMTA = os.path.join(ROOT, "tests", "integration", "pmta")


def import_pmta(conf, out):
    r = run_tern("import", "pmta", os.path.join(PMTA, conf), "--out", str(out))
    assert r.returncode == 0, r.stderr
    check = subprocess.run([TERND, "--check", "--policy", str(out / "policy.lua")], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    return r


def explain_at(policy, domain, *args):
    r = run_tern("policy", "explain", "--policy", str(policy), "--domain", domain, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def data_table(path, expr):
    """Evaluate expr on the table a generated data file returns, inside ternd's Lua."""
    script = path.parent / "probe.lua"
    script.write_text("tern.on('main', function()\n  local t = dofile(%r)\n"
                      "  print(tern.json.encode(%s))\n  return 0\nend)\n" % (str(path), expr))
    r = subprocess.run([TERND, "--threads", "1", "--script", str(script)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_import_pmta_seed(tmp_path):
    out = tmp_path / "policy"
    r = import_pmta("seed.conf", out)
    # Its backoff rates have no smtp-pattern-list to put a domain in backoff mode.
    assert "warning: 3 directive(s) not imported" in r.stderr
    limits = {"gmail.com": ("120/min", 15), "outlook.com": ("300/min", 25), "yahoo.com": ("100/min", 10),
              "example.net": ("200/min", 10)}
    for domain, (rate, conns) in limits.items():
        d = explain_at(out / "policy.lua", domain)
        for source, path in d["paths"].items():
            assert (path["max_message_rate"], path["connection_limit"]) == (rate, conns), domain
            assert path["enable_tls"] == "opportunistic"
            where = d["sources_of"][source]["max_message_rate"]
            assert where.startswith(str(out / "data" / "shaping.lua") + ":"), where
    policy = (out / "policy.lua").read_text()
    assert "line 14: backoff-max-msg-rate 30/min  (no smtp-pattern-list puts this domain in backoff mode)" \
        in policy
    assert "line 9: backoff-policy aggressive\n" in policy
    dkim = data_table(out / "data" / "dkim.lua", "t")
    assert dkim["sign"] is True
    assert dkim["options"]["algo"] == "rsa"
    assert dkim["options"]["body_canonicalization"] == "simple"
    assert {"Feedback-ID", "List-Unsubscribe", "From"} <= set(dkim["options"]["headers"])


def test_import_pmta_large_fixture(tmp_path):
    out = tmp_path / "policy"
    r = import_pmta("large.conf", out)
    assert "warning: 14 directive(s) not imported" in r.stderr
    policy = (out / "policy.lua").read_text()
    for unmapped in ("line 4: relay-domain", "line 6: log-file", "line 12: smtp-service",
                     "max-rcpt-per-message 50", "smtp-greeting-timeout 2m",
                     "line 21: <smtp-pattern-list> blocking  (no <domain> names it with smtp-pattern-list)",
                     "line 85: backoff-retry-after 30m  (tern keeps its retry schedule"):
        assert unmapped in policy
    assert len(data_table(out / "data" / "sources.lua", "t")) == 8
    assert sorted(data_table(out / "data" / "pools.lua", "t")) == ["marketing", "transactional", "warmup"]
    # The default pool comes from default-virtual-mta; X-Virtual-MTA picks another (tenant).
    d = explain_at(out / "policy.lua", "gmail.com")
    assert d["egress_pool"]["name"] == "marketing"
    assert [e["name"] for e in d["egress_pool"]["entries"]] == ["mta3", "mta4", "mta5", "mta6"]
    assert d["queue_config"]["retry_interval"] == "10m" and d["queue_config"]["max_age"] == "4d"
    assert {(p["max_message_rate"], p["connection_limit"]) for p in d["paths"].values()} == {("120/min", 15)}
    # A <domain> inside a <virtual-mta> is a per-source override.
    d = explain_at(out / "policy.lua", "gmail.com", "--tenant", "warmup")
    assert (d["paths"]["mta8"]["max_message_rate"], d["paths"]["mta8"]["connection_limit"]) == ("20/min", 2)
    assert (d["paths"]["mta7"]["max_message_rate"], d["paths"]["mta7"]["connection_limit"]) == ("120/min", 15)
    d = explain_at(out / "policy.lua", "partner.example")
    assert d["queue_config"]["mx_list"] == ["192.0.2.200:2525"]
    assert d["queue_config"]["retry_interval"] == "5m"
    assert all(p["enable_tls"] == "required" for p in d["paths"].values())
    d = explain_at(out / "policy.lua", "unknown.example")
    assert {(p["max_message_rate"], p["connection_limit"]) for p in d["paths"].values()} == {("200/min", 10)}


def test_import_pmta_backoff(tmp_path):
    # Regression: backoff-* directives and smtp-pattern-lists were kept aside, not acted on.
    out = tmp_path / "policy"
    r = import_pmta("backoff.conf", out)
    assert "warning: 6 directive(s) not imported" in r.stderr
    policy = (out / "policy.lua").read_text()
    for unmapped in ("line 16: reply /blocked.*spamhaus/ mode=normal  (only mode=backoff",
                     "line 18: <smtp-pattern-list> unused  (no <domain> names it",
                     "line 32: backoff-to-normal-after-delivery yes  (tern ends a backoff",
                     "line 36: backoff-notify postmaster@example.com",
                     "line 39: smtp-pattern-list nosuch  (no such <smtp-pattern-list>)",
                     "line 40: backoff-max-msg-rate 60/min  (no smtp-pattern-list"):
        assert unmapped in policy
    shaping = str(out / "data" / "shaping.lua")
    errors = ["421 .*too many errors", "4\\.7\\.28"]

    def rules(domain):
        d = explain_at(out / "policy.lua", domain)
        assert set(d["paths"]) == {"mta1", "mta2"}
        got = [[(x["scope"], x["regex"], x["action"], x["duration"]) for x in p["automation"]]
               for p in d["paths"].values()]
        assert got[0] == got[1]
        for p in d["paths"].values():
            assert all(x["at"].startswith(shaping + ":") for x in p["automation"])
        return got[0]
    default = ("defaults.automation[1]", errors, "suspend", "20m")
    # A reduced rate: a set override for backoff-to-normal-after, per VirtualMTA (source).
    assert rules("gmail.com") == [
        ("domains.gmail.com.automation[1]", errors, {"set": {"max_message_rate": "30/min"}}, "2h"), default]
    assert rules("yahoo.com") == [
        ("domains.yahoo.com.automation[1]", errors, {"set": {"max_message_rate": "500/h"}}, "1h"), default]
    # Without one, backoff mode only waits for backoff-retry-after: the path is suspended that long.
    assert rules("example.net") == [default]
    assert rules("outlook.com") == [default]
    r = run_tern("policy", "explain", "--policy", str(out / "policy.lua"), "--domain", "gmail.com")
    assert "    1. on /421 .*too many errors/ or /4\\.7\\.28/: set max_message_rate=30/min for 2h," \
        " recovery 5m" in r.stdout.split("\n")


def test_import_pmta_syntax_error(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("<domain gmail.com>\n  max-msg-rate 1/min\n</virtual-mta>\n")
    r = run_tern("import", "pmta", str(bad), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "bad.conf: line 3: </virtual-mta> closes <domain> opened at line 1" in r.stderr
    assert not (tmp_path / "out").exists()
