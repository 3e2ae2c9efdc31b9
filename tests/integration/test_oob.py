# SPDX-License-Identifier: MIT
"""Incoming bounces and feedback reports: for a domain that get_listener_domain marks
{ oob = true, arf = true }, every message of tests/data/bounce-mail/ (real DSNs, providers'
own bounce formats, ARF reports) sent over SMTP gives its record: each bounce an OOB record
with the failed recipient and a bounce classification, each feedback report a Feedback record
and a message_complained call, the one ordinary message neither. A report on a message tern
sent is linked to it through the X-Tern-Ref trace header; a forged ref is logged and ignored."""
import collections
import email
import email.policy
import glob
import json
import os
import re
import smtplib
import time
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.message import MIMEMessage

from conftest import ROOT, run_tern
from sinks import py_sink, read_records, send_one, wait_records

__all__ = ["py_sink"]  # a fixture, used by name

DATA = os.path.join(ROOT, "tests", "data", "bounce-mail")
SECRET = "test-secret-0123456789abcdef"

POLICY = """
tern.configure_trace_header { secret = '%s' }
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }
  -- {port}: where tern's own clients inject; {port2}: the MX of the bounce and FBL domains
  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',
                              relay_hosts = { '127.0.0.0/8' }, long_lines = 'wrap' }
  -- (get_listener_domain is asked for clients outside relay_hosts: none here)
  tern.start_esmtp_listener { listen = '127.0.0.1:{port2}', hostname = 'mta.test',
                              relay_hosts = {}, long_lines = 'wrap' }
end)
tern.on('get_listener_domain', function(domain, listener, conn)
  if domain == 'bounces.test' then return { oob = true, arf = true } end
  return false
end)
tern.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', msg:get_header('X-Tenant') or 'default')
  msg:set_meta('campaign', 'spring')
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { mx_list = { '127.0.0.1:{port3}' }, retry_interval = '1h' }
end)
tern.on('message_complained', function(record)
  local f = io.open('{dir}/complaints', 'a')
  f:write(tern.json.encode({ recipient = record.recipient, tenant = record.report.tenant,
                             ref = record.report.ref }), '\\n')
  f:close()
end)
""" % SECRET


def send_report(port, sender, rcpt, data):
    # The data files keep their LF line ends; SMTP wants CRLF (smtplib leaves bytes alone).
    data = re.sub(rb"\r?\n", b"\r\n", data)
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
        c.ehlo("reporter.test")
        assert c.mail(sender)[0] == 250
        code, text = c.rcpt(rcpt)
        assert code == 250, (rcpt, code, text)
        code, text = c.data(data)
        assert code == 250, (code, text)
        return text


def wait_complaints(t, n, timeout=20.0):
    """The message_complained calls the policy wrote down, once there are n (it is not waited for)."""
    path = os.path.join(t.workdir, "complaints")
    deadline = time.monotonic() + timeout
    while True:
        lines = open(path).read().splitlines() if os.path.exists(path) else []
        if len(lines) >= n or time.monotonic() > deadline:
            return [json.loads(line) for line in lines if line.endswith("}")]
        time.sleep(0.05)


def expected_kind(name):
    if name.startswith("arf-"):
        return "Feedback"
    if name.startswith("not-bounce"):
        return None
    return "OOB"


def agreement(by_file):
    """How many DSNs of expected.tsv got one of the categories listed for their reply."""
    agree, disagree = 0, []
    with open(os.path.join(DATA, "expected.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            reply, cats, name, _ = line.rstrip("\n").split("\t")
            got = [r["bounce_classification"] for r in by_file.get(name, [])]
            if got and got[0] in cats.split(","):
                agree += 1
            else:
                disagree.append((name, got, cats, reply))
    return agree, disagree


def test_every_message_of_the_data_gives_its_record(ternd, ports):
    t = ternd(POLICY)
    files = sorted(glob.glob(os.path.join(DATA, "*.eml")))
    assert len(files) >= 140
    sender_of = {}
    for i, path in enumerate(files):
        name = os.path.basename(path)[:-4]
        sender = f"r{i}@reporter.test"
        sender_of[sender] = name
        with open(path, "rb") as f:
            text = send_report(ports[1], sender, "bounce@bounces.test", f.read())
        assert text == b"2.0.0 OK report received", (name, text)
    # The records are in the log before each 250.
    recs = [r for r in read_records(t) if r["type"] in ("OOB", "Feedback", "Reception")]
    by_file = collections.defaultdict(list)
    for r in recs:
        by_file[sender_of.get(r["sender"])].append(r)
    assert None not in by_file, by_file.get(None)  # nothing else was recorded (no Reception)
    counts = collections.Counter()
    wrong = []
    for path in files:
        name = os.path.basename(path)[:-4]
        kind = expected_kind(name)
        got = by_file.get(name, [])
        if kind is None:
            ok = got == []
        elif kind == "Feedback":
            ok = len(got) == 1 and got[0]["type"] == "Feedback" and got[0]["report"]["feedback_type"]
            counts["Feedback/" + (got[0]["report"]["feedback_type"] if got else "?")] += 1
        else:
            ok = got and all(r["type"] == "OOB" and r["recipient"] and "@" in r["recipient"]
                             and r["bounce_classification"] for r in got)
            for r in got:
                counts[r["bounce_classification"]] += 1
        if not ok:
            wrong.append((name, got))
    print("\nrecords by classification / feedback type:")
    for k, n in sorted(counts.items()):
        print(f"  {k:28} {n}")
    print(f"  files: {len(files)}, OOB records: {sum(len(v) for k, v in by_file.items() if not k.startswith('arf-'))}")
    assert wrong == [], wrong
    agree, disagree = agreement(by_file)
    print(f"  classification within expected.tsv's categories: {agree}/{agree + len(disagree)}")
    for name, got, want, reply in disagree:
        print(f"    {name}: {got} not in {want}: {reply[:100]}")
    assert agree >= 0.9 * (agree + len(disagree))
    # Every ARF report reached message_complained.
    n_arf = sum(1 for p in files if "/arf-" in p)
    assert len(wait_complaints(t, n_arf)) == n_arf


def test_dsn_recipient_and_reply_are_read(ternd, ports):
    """The fields of a standard DSN land where the record schema says."""
    t = ternd(POLICY)
    with open(os.path.join(DATA, "lhost-postfix-05.eml"), "rb") as f:
        send_report(ports[1], "", "bounce@bounces.test", f.read())
    (rec,) = [r for r in read_records(t) if r["type"] == "OOB"]
    assert rec["recipient"] == "kijitora@example.org"
    assert rec["response"]["code"] == 450 and rec["response"]["enhanced_code"] == "4.1.1"
    assert "User unknown" in rec["response"]["content"]
    assert rec["bounce_classification"] == "bad-mailbox"
    assert rec["report"]["action"] in ("failed", "delayed")
    assert rec["report"]["ref"] is None and rec["report"]["original_id"] is None


def arf_for(original, ref_override=None):
    """An RFC 5965 report about original (bytes) as a provider would send it."""
    orig = email.message_from_bytes(original, policy=email.policy.compat32)
    if ref_override is not None:
        orig.replace_header("X-Tern-Ref", ref_override)
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@fbl.provider.test"
    report["To"] = "fbl@bounces.test"
    report["Subject"] = "FW: complaint"
    report.attach(MIMEText("This is an email abuse report.\n"))
    fields = email.message.Message()
    fields.set_type("message/feedback-report")
    fields.set_payload("Feedback-Type: abuse\nUser-Agent: TestFBL/1.0\nVersion: 1\n"
                       "Source-IP: 127.0.0.1\nArrival-Date: Thu, 8 Mar 2026 14:00:00 +0000\n")
    report.attach(fields)
    report.attach(MIMEMessage(orig))
    return report.as_bytes()


def test_complaint_about_a_sent_message_is_linked_and_forgery_ignored(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[2])
    t = ternd(POLICY)
    (mid,) = send_one(ports[0], "news@origin.test", ["reader@dest.test"],
                      b"From: news@origin.test\r\nTo: reader@dest.test\r\nX-Tenant: acme\r\n"
                      b"Subject: news\r\nMessage-ID: <n1@origin.test>\r\n\r\nhello\r\n")
    (got,) = sink.wait_messages(1)
    m = re.search(rb"^X-Tern-Ref: (\S+)\r?\n", got["data"], re.M)
    assert m, got["data"][:500]
    ref = m.group(1).decode()
    assert ref.startswith("1." + mid + ".")

    send_report(ports[1], "", "fbl@bounces.test", arf_for(got["data"]))
    (rec,) = wait_records(t, lambda r: r["type"] == "Feedback", 1)
    assert rec["recipient"] == "reader@dest.test"
    rep = rec["report"]
    assert (rep["ref"], rep["original_id"], rep["tenant"], rep["campaign"]) == \
        ("verified", mid, "acme", "spring")
    assert (rep["feedback_type"], rep["user_agent"], rep["source_ip"]) == ("abuse", "TestFBL/1.0", "127.0.0.1")
    assert rep["arrival_date"] == "Thu, 8 Mar 2026 14:00:00 +0000"
    assert rep["original_message_id"] == "<n1@origin.test>"

    # The same report naming another tenant: the mac no longer matches.
    parts = ref.split(".")
    parts[2] = "ZXZpbA"  # base64url("evil")
    send_report(ports[1], "", "fbl@bounces.test", arf_for(got["data"], ".".join(parts)))
    recs = wait_records(t, lambda r: r["type"] == "Feedback", 2)
    forged = recs[-1]["report"]
    assert (forged["ref"], forged["original_id"], forged["tenant"]) == ("invalid", None, None)
    deadline = time.monotonic() + 10
    while "X-Tern-Ref ignored" not in t.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "forged (or foreign) X-Tern-Ref ignored" in t.stderr()
    calls = wait_complaints(t, 2)
    assert calls[0] == {"recipient": "reader@dest.test", "tenant": "acme", "ref": "verified"}
    assert calls[1]["ref"] == "invalid" and calls[1]["tenant"] is None


def test_a_verified_complaint_suppresses_the_recipient_for_its_tenant(ternd, ports, py_sink):
    """With no message_complained handler, a complaint about a copy tern sent suppresses that
    recipient for that tenant within a minute; a forged one suppresses nobody."""
    sink = py_sink("127.0.0.1", ports[2])
    policy = POLICY[:POLICY.index("tern.on('message_complained'")]
    t = ternd(policy)
    send_one(ports[0], "news@origin.test", ["victim@dest.test"],
             b"From: news@origin.test\r\nTo: victim@dest.test\r\nX-Tenant: beta\r\n"
             b"Subject: news\r\n\r\nhello\r\n")
    send_one(ports[0], "news@origin.test", ["reader@dest.test"],
             b"From: news@origin.test\r\nTo: reader@dest.test\r\nX-Tenant: acme\r\n"
             b"Subject: news\r\n\r\nhello\r\n")
    got = {m["rcpt_tos"][0]: m for m in sink.wait_messages(2)}
    forged = got["victim@dest.test"]["data"]
    ref = re.search(rb"^X-Tern-Ref: (\S+)\r?\n", forged, re.M).group(1).decode().split(".")
    ref[2] = "ZXZpbA"  # another tenant: the mac no longer matches
    send_report(ports[1], "", "fbl@bounces.test", arf_for(forged, ".".join(ref)))
    start = time.monotonic()
    send_report(ports[1], "", "fbl@bounces.test", arf_for(got["reader@dest.test"]["data"]))
    wait_records(t, lambda r: r["type"] == "Feedback", 2)

    def listed():
        r = run_tern("suppress", "list", "--spool", os.path.join(t.workdir, "spool"))
        assert r.returncode == 0, r.stderr
        return [line.split("\t") for line in r.stdout.splitlines() if "@" in line]

    entries = []
    while time.monotonic() - start < 60 and not entries:
        entries = listed()
        time.sleep(0.2)
    print(f"complaint suppressed after {time.monotonic() - start:.2f} s: {entries}")
    assert len(entries) == 1, entries
    assert entries[0][:3] == ["acme", "reader@dest.test", "complaint"], entries


def verp_dsn(return_path, recipient):
    """A bare DSN, as many MTAs send them: no copy of the original, so no X-Tern-Ref."""
    return (f"From: MAILER-DAEMON@mx.dest.test\r\nTo: {return_path}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.dest.test\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--B--\r\n").encode()


def test_a_bounce_to_a_verp_return_path_names_the_original(ternd, ports, py_sink):
    """With verp = true each copy leaves with a return path carrying a token for its recipient;
    a bare DSN sent back to it is linked to the message, and a changed token or a DSN about
    another recipient is logged and linked to nothing."""
    sink = py_sink("127.0.0.1", ports[2])
    t = ternd(POLICY.replace("secret = '%s' }" % SECRET, "secret = '%s', verp = true }" % SECRET))
    (mid,) = send_one(ports[0], "news@bounces.test", ["Reader@dest.test"],
                      b"From: news@bounces.test\r\nTo: reader@dest.test\r\nSubject: news\r\n\r\nhi\r\n")
    (got,) = sink.wait_messages(1)
    rp = got["mail_from"]
    local, _, domain = rp.partition("@")
    assert domain == "bounces.test" and local.startswith("news+") and len(local) == 45, rp
    assert len(local) <= 64

    send_report(ports[1], "", rp, verp_dsn(rp, "reader@dest.test"))
    (rec,) = wait_records(t, lambda r: r["type"] == "OOB", 1)
    assert rec["recipient"] == "reader@dest.test"
    assert (rec["report"]["ref"], rec["report"]["original_id"]) == ("verified", mid)
    assert rec["report"]["tenant"] is None  # a token carries no tenant
    assert rec["bounce_classification"] == "bad-mailbox"

    # The same token, read by a mailer that upper-cased it, still holds.
    send_report(ports[1], "", rp.upper(), verp_dsn(rp.upper(), "reader@dest.test"))
    recs = wait_records(t, lambda r: r["type"] == "OOB", 2)
    assert (recs[-1]["report"]["ref"], recs[-1]["report"]["original_id"]) == ("verified", mid)

    # A DSN about someone else, and a token with one character changed: neither links.
    send_report(ports[1], "", rp, verp_dsn(rp, "victim@dest.test"))
    flipped = local[:10] + ("a" if local[10] != "a" else "b") + local[11:] + "@" + domain
    send_report(ports[1], "", flipped, verp_dsn(flipped, "reader@dest.test"))
    recs = wait_records(t, lambda r: r["type"] == "OOB", 4)
    for r in recs[2:]:
        assert (r["report"]["ref"], r["report"]["original_id"]) == ("invalid", None), r
    deadline = time.monotonic() + 10
    while t.stderr().count("VERP token ignored") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert t.stderr().count("forged (or foreign) VERP token ignored") == 2
