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
    assert "warning" not in r.stderr
    limits = {"gmail.com": ("120/min", 15), "outlook.com": ("300/min", 25), "yahoo.com": ("100/min", 10),
              "example.net": ("200/min", 10)}
    for domain, (rate, conns) in limits.items():
        d = explain_at(out / "policy.lua", domain)
        for source, path in d["paths"].items():
            assert (path["max_message_rate"], path["connection_limit"]) == (rate, conns), domain
            assert path["enable_tls"] == "opportunistic"
            where = d["sources_of"][source]["max_message_rate"]
            assert where.startswith(str(out / "data" / "shaping.lua") + ":"), where
    backoff = data_table(out / "data" / "backoff.lua", "t")
    assert backoff["domains"]["gmail.com"]["max_msg_rate"] == "30/min"
    assert backoff["domains"]["outlook.com"]["max_msg_rate"] == "60/min"
    assert backoff["defaults"]["policy"] == "aggressive"
    dkim = data_table(out / "data" / "dkim.lua", "t")
    assert dkim["sign"] is True
    assert dkim["options"]["algo"] == "rsa"
    assert dkim["options"]["body_canonicalization"] == "simple"
    assert {"Feedback-ID", "List-Unsubscribe", "From"} <= set(dkim["options"]["headers"])


def test_import_pmta_large_fixture(tmp_path):
    out = tmp_path / "policy"
    r = import_pmta("large.conf", out)
    assert "warning: 5 directive(s) not imported" in r.stderr
    policy = (out / "policy.lua").read_text()
    for unmapped in ("line 4: relay-domain", "line 6: log-file", "line 12: smtp-service",
                     "max-rcpt-per-message 50", "smtp-greeting-timeout 2m"):
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


def test_import_pmta_syntax_error(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("<domain gmail.com>\n  max-msg-rate 1/min\n</virtual-mta>\n")
    r = run_tern("import", "pmta", str(bad), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "bad.conf: line 3: </virtual-mta> closes <domain> opened at line 1" in r.stderr
    assert not (tmp_path / "out").exists()
