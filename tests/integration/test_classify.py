# SPDX-License-Identifier: MIT
"""`tern classify` and the default bounce rules: every category on replies of its own, the
agreement with real providers' replies (tests/data), operators' overrides from policy, and rule errors
named by file:line."""
import collections
import json
import os
import re

import pytest

from conftest import ROOT, free_port, listener_policy, run_tern
from sinks import mta_policy, of_type, port_free_on, read_records, send_one, ternd_sink, wait_records

__all__ = ["ternd_sink"]  # a fixture, used by name

DATA = os.path.join(ROOT, "tests", "data")
RULES_FILE = os.path.join(ROOT, "lua", "tern", "bounce_rules.lua")

# At least three replies for every category (checked by test_every_category_has_three_cases).
CASES = [
    ("550 5.1.1 <a@x.example>: Recipient address rejected: User unknown in local recipient table", "bad-mailbox"),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "bad-mailbox"),
    ("550 No such user here", "bad-mailbox"),
    ("553 5.1.2 We weren't able to find the recipient domain.", "bad-domain"),
    ("550 5.4.4 Invalid domain", "bad-domain"),
    ("554 Host or domain name not found. Name service error for name=x.example type=MX", "bad-domain"),
    ("550 5.2.1 The email account that you tried to reach is disabled.", "inactive-mailbox"),
    ("550 5.1.1 <a@icloud.com>: inactive email address", "inactive-mailbox"),
    ("554 delivery error: dd This account has been disabled or discontinued [#102].", "inactive-mailbox"),
    ("554 5.4.6 Hop count exceeded - possible mail loop", "routing-errors"),
    ("550 mail for example.com loops back to myself", "routing-errors"),
    ("451 4.4.0 MX points to CNAME x.example", "routing-errors"),
    ("451 4.4.1 connect to 192.0.2.1:25: Connection refused", "no-answer-from-host"),
    ("451 4.4.1 connection timed out", "no-answer-from-host"),
    ("421 No answer from host", "no-answer-from-host"),
    ("551 5.4.7 message expired: too old to deliver", "message-expired"),
    ("450 4.4.7 Delivery time expired", "message-expired"),
    ("Message expired after 5 days in queue", "message-expired"),
    ("451 4.4.2 connection lost", "bad-connection"),
    ("lost connection with mx.example[192.0.2.1] while receiving the initial server greeting", "bad-connection"),
    ("421 TLS handshake failed", "bad-connection"),
    ("501 Syntax error in parameters or arguments", "bad-configuration"),
    ("554 5.3.5 System incorrectly configured", "bad-configuration"),
    ("451 Server misconfiguration", "bad-configuration"),
    ("552 5.2.2 Mailbox full", "quota-issues"),
    ("452 4.2.2 The email account that you tried to reach is over quota.", "quota-issues"),
    ("450 4.2.1 The user you are trying to contact is receiving mail too quickly.", "quota-issues"),
    ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "spam-related"),
    ("550 5.7.1 Message content rejected, UBE, id=00000-22-225", "spam-related"),
    ("421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
     "spam-related"),
    ("421 4.7.0 TLS required for RCPT domain, closing connection.", "policy-related"),
    ("554 5.7.9 Message not accepted for policy reasons.", "policy-related"),
    ("550 5.7.25 The IP address sending this message does not have a PTR record setup", "policy-related"),
    ("550 Rejected", "policy-related"),
    ("550 5.7.1 This message is not RFC 5322 compliant.", "content-related"),
    ("554 Transaction failed: Duplicate header 'DKIM-Signature'.", "content-related"),
    ("552 5.3.4 Message size exceeds fixed limit", "content-related"),
    ("550 Virus Detected; Content Rejected", "virus-related"),
    ("552 5.7.0 This message was blocked because its content presents a potential security issue.", "virus-related"),
    ("554 5.7.1 Message infected with Eicar-Test-Signature", "virus-related"),
    ("503 5.5.1 EHLO/HELO first.", "protocol-errors"),
    ("451 4.5.0 SMTP protocol violation", "protocol-errors"),
    ("500 5.5.2 Syntax error, command unrecognized", "protocol-errors"),
    ("554 5.7.1 <a@b.example>: Relay access denied", "relaying-issues"),
    ("550 5.7.1 Unable to relay for a@b.example", "relaying-issues"),
    ("550 5.7.64 TenantAttribution; Relay Access Denied", "relaying-issues"),
    ("501 5.1.0 Emetteur invalide. Invalid Sender.", "invalid-sender"),
    ("553 5.1.8 <a@nx.example>... Domain of sender address a@nx.example does not exist", "invalid-sender"),
    ("450 4.1.8 <a@nx.example>: Sender address rejected: Domain not found", "invalid-sender"),
    ("421 4.4.5 Server busy, try again later.", "other"),
    ("554 Transaction failed", "other"),
    ("451 Could not load DRD for domain", "other"),
    # Regression: Gmail's "did not pass authentication" replies were filed as spam (PowerMTA's
    # dated patterns); they are authentication failures.
    ("550-5.7.26 This mail has been blocked because the sender is unauthenticated.", "authentication-failure"),
    ("550 5.7.509 Access denied, sending domain [EXAMPLE.JP] does not pass DMARC verification",
     "authentication-failure"),
    ("421 4.7.30 Your email has been rate limited because DKIM authentication didn't pass for this message.",
     "authentication-failure"),
    ("550 5.7.23 The message was rejected because of Sender Policy Framework violation", "authentication-failure"),
    ("452 4.3.2 Connection rate limit exceeded.", "rate-limited"),
    ("421 4.7.0 Too many concurrent SMTP connections from this IP", "rate-limited"),
    ("421 Max message per connection reached, closing transmission channel", "rate-limited"),
    ("450 4.7.1 Throttled: try again later", "rate-limited"),
]

CATEGORIES = ["bad-mailbox", "bad-domain", "inactive-mailbox", "routing-errors", "no-answer-from-host",
              "message-expired", "bad-connection", "bad-configuration", "quota-issues", "spam-related",
              "policy-related", "content-related", "virus-related", "protocol-errors", "relaying-issues",
              "invalid-sender", "other", "authentication-failure", "rate-limited"]

# Where the suggested category of provider-responses.tsv is wrong, by the start of the reply,
# with the reason; the rules are not bent to the data.
PROVIDER_CORRECTIONS = {
    # SPF, DKIM and DMARC failures are authentication failures (the category exists so that
    # they are told apart from other policy blocks: a different team fixes them).
    "550-5.7.26 This mail has been blocked because the sender is unauthenticated": "authentication-failure",
    "550-5.7.26 The MAIL FROM domain [mail4.example.com] has an SPF record": "authentication-failure",
    "550-5.7.26 Unauthenticated email from libsisimai.org": "authentication-failure",
    "421 4.7.30 Your email has been rate limited because DKIM authentication": "authentication-failure",
    "421 4.7.32 Your email has been rate limited because the From: header": "authentication-failure",
    "421 4.7.40 Your email has been rate limited because the sending domain doesn't have a DMARC":
        "authentication-failure",
    "550 5.7.509 Access denied, sending domain [EXAMPLE.JP] does not pass DMARC": "authentication-failure",
    "550 5.7.515 Access denied, sending domain <domain> does not meet the required authentication":
        "authentication-failure",
    "554 5.7.1 Your message was rejected due to libsisimai.org's DMARC policy": "authentication-failure",
    "550 <example@example.com>: Reject due to SPF policy": "authentication-failure",
    # Throttling of the sender (too many messages per connection, too many connections,
    # excessive volume to one recipient) is rate-limited, not quota or "other".
    "421 Max message per connection reached": "rate-limited",
    "421 mwinf5c79 ME Trop de connexions": "rate-limited",
    "421 4.7.1 Messages to example@icloud.com deferred due to excessive volume": "rate-limited",
}

# The same for bounce-mail/expected.tsv.
EXPECTED_CORRECTIONS = {
    # The data lists quota-issues/inactive-mailbox, but the reply says "User Unknown" with
    # 5.1.1: an unknown mailbox.
    "550 5.1.1 <userunknown@bouncehammer.jp>... User Unknown": "bad-mailbox",
}


def classify(replies, *args):
    r = run_tern("classify", *args, input="".join(x + "\n" for x in replies))
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip() and not line.startswith("#")]


def corrected(reply, suggested, corrections):
    for prefix, category in corrections.items():
        if reply.startswith(prefix):
            return category
    return suggested


def test_every_category_has_three_cases():
    counts = collections.Counter(c for _, c in CASES)
    assert set(counts) == set(CATEGORIES)
    assert all(counts[c] >= 3 for c in CATEGORIES), counts


def test_categories_of_cases():
    got = classify([r for r, _ in CASES])
    wrong = [(r, want, g) for (r, want), g in zip(CASES, got) if g != want]
    assert not wrong, "\n".join("%s: want %s, got %s" % w for w in wrong)


def test_arguments_and_multi_line_reply():
    r = run_tern("classify", "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
                 "550 5.1.1 Please try double-checking", "421 4.4.5 Server busy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["bad-mailbox", "other"]


def test_provider_responses_agreement():
    rows = read_tsv(os.path.join(DATA, "provider-responses.tsv"))[1:]
    got = classify([row[1] for row in rows])
    raw = sum(g == row[2] for row, g in zip(rows, got))
    agree, report = 0, []
    for row, g in zip(rows, got):
        want = corrected(row[1], row[2], PROVIDER_CORRECTIONS)
        if g == want:
            agree += 1
        if g != row[2]:
            report.append("%-8s %s -> %s (data: %s): %s" % ("fixed" if g == want else "WRONG", row[0],
                                                            g, row[2], row[1][:100]))
    print("\nprovider-responses.tsv: %d/%d agree with the data as given, %d/%d after the corrections"
          % (raw, len(rows), agree, len(rows)))
    print("\n".join(report))
    assert agree >= 0.95 * len(rows)
    # A correction that no longer differs from what is classified is stale.
    assert raw + len(PROVIDER_CORRECTIONS) >= agree


def test_bounce_mail_expected_agreement():
    rows = read_tsv(os.path.join(DATA, "bounce-mail", "expected.tsv"))
    got = classify([row[0] for row in rows])
    agree, report = 0, []
    for row, g in zip(rows, got):
        ok = g in row[1].split(",")
        fixed = g == corrected(row[0], None, EXPECTED_CORRECTIONS)
        agree += ok or fixed
        if not ok:
            report.append("%-8s %s -> %s (data: %s): %s" % ("fixed" if fixed else "WRONG", row[2], g,
                                                            row[1], row[0][:100]))
    print("\nbounce-mail/expected.tsv: %d/%d pick a listed category (or a documented correction)"
          % (agree, len(rows)))
    print("\n".join(report))
    assert agree >= 0.90 * len(rows)


def rule_line(rule):
    with open(RULES_FILE, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if re.search(r"name = '%s'" % re.escape(rule), line):
                return n
    raise AssertionError("no rule %s" % rule)


def test_json_names_rule_and_file_line():
    r = run_tern("classify", "--json", "550 5.1.1 user unknown", "250 2.0.0 OK")
    assert r.returncode == 0, r.stderr
    hit, miss = [json.loads(x) for x in r.stdout.splitlines()]
    assert hit["category"] == "bad-mailbox" and hit["rule"] == "unknown-recipient"
    assert hit["at"] == "lua/tern/bounce_rules.lua:%d" % rule_line("unknown-recipient")
    assert hit["reply"] == "550 5.1.1 user unknown"
    assert miss == {"category": "other", "rule": None, "at": None, "reply": "250 2.0.0 OK"}


OVERRIDE = """\
tern.on('init', function() end)
tern.bounce.configure {
  extra = {
    tern.bounce.rule { name = 'acme-slow', category = 'rate-limited', pattern = [[acme says slow down]] },
    tern.bounce.rule { name = 'unknown-recipient', category = 'policy-related', pattern = [[user unknown]] },
    { name = 'quota', remove = true },
    tern.bounce.rule { name = 'outlook-s3150', category = 'spam-related', pattern = [[\\(S3150\\)]],
                       site = [[outlook\\.com\\.$]] },
  },
}
"""


def test_policy_adds_overrides_removes_and_scopes(tmp_path):
    policy = tmp_path / "policy.lua"
    policy.write_text(OVERRIDE)
    replies = ["451 acme says slow down", "550 5.1.1 User unknown", "552 5.2.2 Mailbox full",
               "550 5.7.1 part of their network is on our block list (S3150)", "550 5.1.2 no such domain"]
    assert classify(replies, "--policy", str(policy)) == [
        "rate-limited", "policy-related", "quota-issues", "spam-related", "bad-domain"]
    # The removed text rule leaves the enhanced-code fallback; the scoped rule needs its site.
    r = run_tern("classify", "--json", "--policy", str(policy), "552 5.2.2 Mailbox full",
                 "550 5.7.1 (S3150)", "550 5.7.1 (S3150)", "--site", "mx1.outlook.com.")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[0]["rule"] == "code-quota"
    assert lines[1]["rule"] == "outlook-s3150" and lines[1]["at"] == "%s:7" % policy
    r = run_tern("classify", "--json", "--policy", str(policy), "451 acme says slow down")
    assert json.loads(r.stdout)["at"] == "%s:4" % policy
    r = run_tern("classify", "--json", "--policy", str(policy), "550 5.7.1 (S3150)")
    assert json.loads(r.stdout)["rule"] == "code-policy"  # no site: the scoped rule does not apply


def test_policy_replaces_rules(tmp_path):
    policy = tmp_path / "policy.lua"
    policy.write_text("tern.bounce.configure { rules = {\n"
                      "  { name = 'only', category = 'bad-domain', pattern = 'nope' },\n} }\n")
    assert classify(["550 nope", "550 5.1.1 user unknown"], "--policy", str(policy)) == ["bad-domain", "other"]
    r = run_tern("classify", "--json", "--policy", str(policy), "550 nope")
    assert json.loads(r.stdout)["at"] == "%s:1" % policy  # a plain table: where configure was called


@pytest.mark.parametrize("rule,message", [
    ("tern.bounce.rule { name = 'bad', category = 'spam-related', pattern = [[user (unknown]] }",
     r"policy\.lua:3: bounce rule 'bad': bad pattern at offset 13: missing closing parenthesis"),
    ("tern.bounce.rule { name = 'bad', category = 'spam', pattern = 'x' }",
     r"policy\.lua:3: bounce rule 'bad': unknown category 'spam'"),
    ("tern.bounce.rule { name = 'bad', category = 'other' }",
     r"policy\.lua:3: bounce rule 'bad': name, category and pattern are required"),
    ("{ name = 'nothing-here', remove = true }",
     r"policy\.lua:1: extra removes 'nothing-here', but no rule has that name"),
    ("tern.bounce.rule { name = 'bad', category = 'other', pattern = 'x', sight = 'y' }",
     r"unknown option 'sight' for bounce rule"),
])
def test_bad_rules_named_by_file_line(tmp_path, rule, message):
    policy = tmp_path / "policy.lua"
    policy.write_text("tern.bounce.configure {\n  extra = {\n    %s,\n  },\n}\n" % rule)
    r = run_tern("classify", "--policy", str(policy), "550 x")
    assert r.returncode == 1
    assert re.search(message, r.stderr), r.stderr


def test_failure_records_carry_classification(ternd, ports, dns_server, ternd_sink):
    """A sink answering scripted replies: TransientFailure, Bounce and Expiration records name the
    reply's category; Reception and Delivery records have no such field."""
    addr = "127.0.0.21"
    port = port_free_on([addr])
    dns = dns_server({"r.test": {"MX": [[10, "mx.r.test."]]}, "mx.r.test": {"A": [addr]}})
    ternd_sink(addr, port)
    t = ternd(mta_policy(dns.address, """
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1s', max_retry_interval = '1s', max_age = '3s' }
end)
tern.on('get_egress_path_config', function() return tern.make_egress_path { smtp_port = %d } end)
""" % port))
    send_one(ports[0], "s@origin.test", ["permfail-1@r.test", "code-552-5.2.2@r.test",
                                         "code-421-4.7.0@r.test", "tempfail-1@r.test", "ok@r.test"],
             b"Subject: c\r\n\r\nx\r\n")
    wait_records(t, of_type("Expiration"), 2, timeout=15)
    recs = read_records(t)
    got = {(r["type"], r["recipient"]): r.get("bounce_classification", "absent") for r in recs}
    assert got[("Bounce", "permfail-1@r.test")] == "bad-mailbox"
    assert got[("Bounce", "code-552-5.2.2@r.test")] == "quota-issues"
    assert got[("TransientFailure", "code-421-4.7.0@r.test")] == "policy-related"
    assert got[("TransientFailure", "tempfail-1@r.test")] == "other"
    assert got[("Expiration", "tempfail-1@r.test")] == "message-expired"
    assert got[("Delivery", "ok@r.test")] == "absent"
    assert all("bounce_classification" not in r for r in recs if r["type"] == "Reception")


def test_configure_needs_lists(tmp_path):
    policy = tmp_path / "policy.lua"
    policy.write_text("tern.bounce.configure { extra = 'x' }\n")
    r = run_tern("classify", "--policy", str(policy), "550 x")
    assert r.returncode == 1
    assert "policy.lua:1: tern.bounce.configure: extra must be a list of rules" in r.stderr, r.stderr


def test_failures_classified_on_the_shard_that_saw_them(ternd, ports):
    """Regression: a failure record was classified with the Lua state of the shard owning the
    message's queue, from the egress shard's thread (two threads in one Lua state: PANIC or
    SIGSEGV under load). Queues of 40 domains spread over both shards; one closed MX port."""
    closed = free_port()
    t = ternd(listener_policy("relay_hosts = { '127.0.0.1' }",
                              "tern.on('get_queue_config', function()\n"
                              "  return tern.make_queue_config { retry_interval = '1s',\n"
                              "    max_retry_interval = '1s', mx_list = { '127.0.0.1:%d' } }\n"
                              "end)\n" % closed), threads=2)
    for i in range(40):
        send_one(ports[0], "s@origin.test", ["a@d%d.test" % i, "b@d%d.test" % i], b"Subject: x\r\n\r\nx\r\n")
    fails = wait_records(t, of_type("TransientFailure"), 160, timeout=30)
    assert t.proc.poll() is None, "ternd died"
    assert {r["bounce_classification"] for r in fails} == {"no-answer-from-host"}, fails[0]
