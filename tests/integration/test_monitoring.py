# SPDX-License-Identifier: MIT
"""packaging/monitoring: the alert rules and the Grafana dashboard.

promtool checks and unit-tests the rules; every PromQL expression of the
dashboard is checked by promtool too (as a recording rule); and every metric
the rules and the dashboard query must be one a running ternd exposes, so
that a renamed metric cannot leave a panel empty or an alert silent. The
counters added for the alerts (bounces by source and category, failures by
category) are compared with the records of the same run.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from sinks import of_type, send_one, ternd_sink, wait_records
from test_metrics import get, scrape, start, total, wait_for

__all__ = ["ternd_sink"]  # fixture, used by name

MON = os.path.join(ROOT, "packaging", "monitoring")
RULES = os.path.join(MON, "tern-alerts.yml")
RULE_TESTS = os.path.join(MON, "tern-alerts.test.yml")
DASHBOARD = os.path.join(MON, "tern-dashboard.json")

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None,
                                    reason="promtool (Debian package prometheus) is not installed")

# Metrics Prometheus makes itself, not ternd.
EXTERNAL = {"up"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}
GRAFANA_VARS = {"$__rate_interval": "5m", "$instance": ".*", "$job": "tern"}


def metric_names(expr):
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)              # string literals
    s = re.sub(r"\{[^}]*\}", " ", s)                           # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                          # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        before = s[m.start() - 1] if m.start() else " "
        if before.isdigit() or before in ".$":                 # 1e3, 0.5e-2, Grafana variables
            continue
        if s[m.end():].lstrip().startswith("("):               # a function call
            continue
        if m.group(0).lower() not in KEYWORDS:
            names.add(m.group(0))
    return names


def test_metric_names_parser():
    e = ('sum by (instance, source) (increase(tern_a_total{category=~"x|y(z)",b="}"}[1h]))'
         ' / on (instance) group_left (source) histogram_quantile(0.9, rate(tern_b_bucket'
         '[$__rate_interval])) > 1.5e3 and bool tern_c offset 5m unless up{job="tern"} == 0'
         ' or (time() - tern_d) < 30 * 86400')
    assert metric_names(e) == {"tern_a_total", "tern_b_bucket", "tern_c", "up", "tern_d"}


def rule_exprs():
    """The expressions of the alert rules (a small YAML reader: the file is ours, its shape known)."""
    exprs, cur = [], None
    for line in open(RULES):
        m = re.match(r"^(\s*)expr:\s*(\|)?\s*(.*)$", line)
        if m:
            if cur is not None:
                exprs.append(cur)
            cur, indent = ("" if m.group(2) else m.group(3)), len(m.group(1))
            if not m.group(2):
                exprs.append(cur)
                cur = None
            continue
        if cur is not None:
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                exprs.append(cur)
                cur = None
            else:
                cur += line
    if cur is not None:
        exprs.append(cur)
    return [e.strip() for e in exprs if e.strip()]


def dashboard_exprs():
    d = json.load(open(DASHBOARD))
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        q = v.get("definition") or ""
        m = re.match(r"label_values\((.*),\s*\w+\)$", q)
        if m:
            exprs.append(m.group(1))
    return exprs


def grafana_to_promql(expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


@needs_promtool
def test_promtool_checks_the_rules():
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 8 rules found" in r.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts():
    # Cert expiry (soon and expired), a failed reload, a hard-bounce rate per source.
    r = subprocess.run([promtool, "test", "rules", os.path.basename(RULE_TESTS)], cwd=MON,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_dashboard_is_importable():
    # What Grafana needs to import it: unique panel ids, a place on the grid, a data source
    # variable every query uses.
    d = json.load(open(DASHBOARD))
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert all({"x", "y", "w", "h"} <= set(p["gridPos"]) for p in d["panels"])
    assert "datasource" in [v["name"] for v in d["templating"]["list"]]
    targets = [t for p in d["panels"] for t in p.get("targets", [])]
    assert targets and all(t["datasource"]["uid"] == "${datasource}" for t in targets)


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    exprs = dashboard_exprs()
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        lines += [f"      - record: dashboard:q{i}", "        expr: " + json.dumps(grafana_to_promql(e))]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text("\n".join(lines) + "\n")
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in r.stdout


def exposed_names(text):
    """Every sample name /metrics can show: its families, with a histogram's three series."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(m.group(1))
        if m.group(2) == "histogram":
            names |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
    return names


def test_every_queried_metric_is_exposed(ternd, ports, dns_server, ternd_sink, tmp_path):
    # A relaying ternd with an HTTP listener ({port3}) and a TLS ESMTP listener ({port2}),
    # so that the certificate's expiry gauge exists too.
    t, _ = start(ternd, dns_server, ternd_sink, tmp_path)
    send_one(ports[0], "s@origin.test", ["ok-1@r.test", "permfail-1@r.test", "tempfail-1@r.test"],
             b"Subject: m\r\n\r\nx\r\n")
    wait_records(t, of_type("TransientFailure"), 1)
    status, _, body = get(ports[2], "/metrics")
    assert status == 200
    exposed = exposed_names(body.decode())
    assert "tern_tls_certificate_expiry_timestamp_seconds" in exposed
    queried = {}
    for where, exprs in (("rules", rule_exprs()), ("dashboard", dashboard_exprs())):
        assert exprs, where
        for e in exprs:
            names = metric_names(e)
            assert names, (where, e)
            for n in names:
                queried.setdefault(n, where)
    assert len(rule_exprs()) == 8
    missing = {n: w for n, w in queried.items() if n not in exposed and n not in EXTERNAL}
    assert missing == {}, missing
    # The dashboard covers what the issue asks of it.
    for n in ("tern_outcomes_by_site_total", "tern_outcomes_by_source_total",
              "tern_outcomes_by_category_total", "tern_scheduled_messages",
              "tern_delivery_latency_seconds_bucket", "tern_spool_disk_free_bytes",
              "tern_tls_certificate_expiry_timestamp_seconds",
              "tern_policy_reload_failures_total"):
        assert queried.get(n) in ("rules", "dashboard"), n


def test_bounces_by_source_and_category(ternd, ports, dns_server, ternd_sink, tmp_path):
    # The hard-bounce alert's numerator: Bounce records by egress source and category.
    t, _ = start(ternd, dns_server, ternd_sink, tmp_path)
    send_one(ports[0], "s@origin.test",
             [f"ok-{i}@r.test" for i in range(4)] + [f"permfail-{i}@r.test" for i in range(3)]
             + ["tempfail-1@r.test"], b"Subject: m\r\n\r\nx\r\n")
    wait_records(t, of_type("Delivery"), 4)
    bounces = wait_records(t, of_type("Bounce"), 3)
    deferrals = wait_records(t, of_type("TransientFailure"), 1)
    cats = {r["bounce_classification"] for r in bounces}
    assert cats == {"bad-mailbox"}, cats
    m = wait_for(lambda: (lambda m: m if total(m, "tern_scheduled_messages") == 1 else None)(
        scrape(ports[2])))
    assert m
    assert total(m, "tern_bounces_by_source_total", source="ip-a", category="bad-mailbox") == 3
    assert total(m, "tern_bounces_by_source_total") == 3
    assert total(m, "tern_outcomes_by_category_total", category="bad-mailbox",
                 outcome="bounced") == 3
    dcat = deferrals[0]["bounce_classification"] or "unclassified"
    assert total(m, "tern_outcomes_by_category_total", category=dcat,
                 outcome="transient_failure") == 1
    assert total(m, "tern_outcomes_by_category_total", outcome="delivered") == 0
    # No complaint yet: the family is there, empty.
    assert "tern_complaints_by_source_total" in exposed_names(get(ports[2], "/metrics")[2].decode())
    assert 0 < total(m, "tern_spool_disk_free_bytes") <= total(m, "tern_spool_disk_size_bytes")
    # The deferred message was created moments ago; the age gauge is refreshed every 15 s.
    age = wait_for(lambda: total(scrape(ports[2]), "tern_scheduled_oldest_message_age_seconds"),
                   timeout=40)
    assert 0 < age < 120
