# SPDX-License-Identifier: MIT
"""The suppression list against a real ternd and a sink answering scripted replies: a hard bounce
suppresses the recipient for its tenant only, the next message to it is refused at RCPT or dropped
with a Suppressed record as policy chose, message_bounced replaces the default, and the offline
CLI imports and exports the list."""
import csv
import json
import smtplib
import time

from conftest import run_tern
from sinks import (mta_policy, of_type, port_free_on, py_sink, read_records, send_one, ternd_sink,
                   wait_records)

__all__ = ["ternd_sink", "py_sink"]  # fixtures, used by name

# The tenant is the sender's local part, known from MAIL FROM on: on the connection (for RCPT)
# and on the message (for its queue and records).
TENANT_HOOKS = """
tern.on('smtp_server_mail_from', function(sender, conn)
  conn:set_meta('tenant', sender:match('^([^@]*)'))
end)
tern.on('smtp_server_message_received', function(msg, conn)
  msg:set_meta('tenant', conn:get_meta('tenant'))
end)
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1s', max_retry_interval = '1s', max_age = '30s' }
end)
tern.on('get_egress_path_config', function() return tern.make_egress_path { smtp_port = %d } end)
"""


def start(ternd, dns_server, ternd_sink, hooks, host):
    port = port_free_on([host])
    dns = dns_server({"r.test": {"MX": [[10, "mx.r.test."]]}, "mx.r.test": {"A": [host]}})
    ternd_sink(host, port)
    return ternd(mta_policy(dns.address, (TENANT_HOOKS % port) + hooks))


def rcpt_reply(port, sender, rcpt):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("injector.test")
        assert c.mail(sender)[0] == 250
        return c.rcpt(rcpt)


def wait_for(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_hard_bounce_refused_at_rcpt_for_its_tenant(ternd, ports, dns_server, ternd_sink):
    """No message_bounced handler: bad-mailbox suppresses for the tenant; quota-issues does not."""
    t = start(ternd, dns_server, ternd_sink, "", "127.0.0.31")
    send_one(ports[0], "acme@origin.test", ["permfail-1@r.test", "code-552-5.2.2@r.test"],
             b"Subject: s\r\n\r\nx\r\n")
    bounces = wait_records(t, of_type("Bounce"), 2)
    assert {b["bounce_classification"] for b in bounces} == {"bad-mailbox", "quota-issues"}
    # The suppression follows its Bounce record on the same shard; allow for the gap.
    refused = wait_for(lambda: rcpt_reply(ports[0], "acme@origin.test", "PermFail-1@R.test")[0] == 550)
    assert refused
    code, text = rcpt_reply(ports[0], "acme@origin.test", "permfail-1@r.test")
    assert (code, text) == (550, b"5.7.1 Recipient address is on the suppression list")
    # Another tenant, and a category that says nothing about the mailbox, go on.
    assert rcpt_reply(ports[0], "beta@origin.test", "permfail-1@r.test")[0] == 250
    assert rcpt_reply(ports[0], "acme@origin.test", "code-552-5.2.2@r.test")[0] == 250
    assert not [r for r in read_records(t) if r["type"] == "Suppressed"]


DROP_HOOKS = """
tern.suppress.configure { action = 'drop', text = 'do not mail' }
tern.on('message_bounced', function(msg, record)
  -- Policy decides: every bounce suppresses, with its own reason; the default does not run.
  assert(msg:get_meta('tenant') == record.tenant)
  assert(record.response.code >= 500 and record.bounce_classification)
  local ok, err = tern.suppress.add { address = record.recipient, tenant = record.tenant,
    reason = 'routed: ' .. record.bounce_classification, category = record.bounce_classification,
    source = record.id, expires_in = '1h' }
  assert(ok, err)
end)
"""


def test_drop_with_suppressed_record_and_handler(ternd, ports, dns_server, ternd_sink):
    t = start(ternd, dns_server, ternd_sink, DROP_HOOKS, "127.0.0.32")
    send_one(ports[0], "acme@origin.test", ["code-552-5.2.2@r.test"], b"Subject: s\r\n\r\nx\r\n")
    bounce = wait_records(t, of_type("Bounce"), 1)[0]
    assert bounce["bounce_classification"] == "quota-issues"

    def dropped():
        send_one(ports[0], "acme@origin.test", ["code-552-5.2.2@r.test", "ok@r.test"],
                 b"Subject: again\r\n\r\nx\r\n")
        time.sleep(0.2)
        return [r for r in read_records(t) if r["type"] == "Suppressed"]

    sup = wait_for(dropped)
    assert sup, "no Suppressed record"
    s = sup[0]
    assert s["recipient"] == "code-552-5.2.2@r.test"
    assert s["response"] == {"code": 550, "enhanced_code": "5.7.1", "content": "do not mail",
                             "command": None}
    assert s["suppression"]["tenant"] == "acme"
    assert s["suppression"]["reason"] == "routed: quota-issues"
    assert s["suppression"]["source"] == bounce["id"]
    assert s["suppression"]["expires"] > s["suppression"]["time"] + 3500
    # The dropped message was never received, queued or tried; its sibling was.
    recs = read_records(t)
    assert not [r for r in recs if r["id"] == s["id"] and r["type"] != "Suppressed"]
    assert wait_records(t, lambda r: r["type"] == "Delivery" and r["recipient"] == "ok@r.test", 1)
    # For another tenant the address is not suppressed.
    send_one(ports[0], "beta@origin.test", ["code-552-5.2.2@r.test"], b"Subject: b\r\n\r\nx\r\n")
    assert wait_records(t, lambda r: r["type"] == "Bounce" and r["meta"].get("tenant") == "beta", 1)


POLICY_API = """
tern.on('smtp_server_ehlo', function(domain)
  if domain ~= 'api.test' then return end
  assert(tern.suppress.add { address = 'X@Y.test', tenant = 'acme', reason = 'manual' })
  local e = tern.suppress.check('x@y.test', 'acme')
  assert(e.tenant == 'acme' and e.address == 'x@y.test' and e.reason == 'manual', 'check')
  assert(tern.suppress.check('x@y.test', 'beta') == nil, 'other tenant')
  assert(tern.suppress.remove('x@y.test', 'acme'))
  local ok, err = tern.suppress.remove('x@y.test', 'acme')
  assert(ok == nil and err:find('not suppressed'), 'second remove')
  local bad = pcall(tern.suppress.add, { address = 'nope' })
  assert(not bad, 'bad address')
  local bad2, why = pcall(tern.suppress.add, { address = 'a@b.test', tenent = 'x' })
  assert(not bad2 and why:find("unknown option 'tenent'"), why)
end)
"""


def test_policy_api(ternd, ports, dns_server, ternd_sink):
    start(ternd, dns_server, ternd_sink, POLICY_API, "127.0.0.33")
    with smtplib.SMTP("127.0.0.1", ports[0], timeout=30) as c:
        code, text = c.ehlo("api.test")
    # Any failed assertion raises in the hook, which answers EHLO with 451.
    assert code == 250, (code, text)


def test_cli_import_export_round_trip(tmp_path):
    spool = tmp_path / "spool"
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["address", "tenant", "reason", "category", "expires"])
        for i in range(2000):
            w.writerow(["User%d@Example.test" % i, "acme" if i % 2 else "*", "list, \"import\"",
                        "bad-mailbox", ""])
        w.writerow(["late@example.test", "beta", "", "", "4102444800"])
    r = run_tern("suppress", "import", "--spool", str(spool), str(src))
    assert r.returncode == 0, r.stderr
    assert "imported 2001" in r.stdout
    r = run_tern("suppress", "add", "--spool", str(spool), "--tenant", "beta", "--reason", "manual",
                 "one@example.test")
    assert r.returncode == 0, r.stderr
    r = run_tern("suppress", "remove", "--spool", str(spool), "--tenant", "acme", "user1@example.test")
    assert r.returncode == 0, r.stderr
    r = run_tern("suppress", "remove", "--spool", str(spool), "--tenant", "acme", "user1@example.test")
    assert r.returncode == 1 and "not suppressed" in r.stderr
    out = tmp_path / "out.csv"
    r = run_tern("suppress", "export", "--spool", str(spool), str(out))
    assert r.returncode == 0, r.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2001
    by = {(x["tenant"], x["address"]): x for x in rows}
    assert by[("*", "user0@example.test")]["reason"] == "list, \"import\""
    assert by[("acme", "user3@example.test")]["category"] == "bad-mailbox"
    assert ("acme", "user1@example.test") not in by
    assert by[("beta", "late@example.test")]["expires"] == "4102444800"
    assert by[("beta", "one@example.test")]["reason"] == "manual"
    # The export imports again into another spool, identically.
    spool2 = tmp_path / "spool2"
    assert run_tern("suppress", "import", "--spool", str(spool2), str(out)).returncode == 0
    out2 = tmp_path / "out2.csv"
    assert run_tern("suppress", "export", "--spool", str(spool2), str(out2)).returncode == 0
    assert out.read_text() == out2.read_text()
    r = run_tern("suppress", "list", "--spool", str(spool), "--tenant", "beta", "--json")
    assert r.returncode == 0, r.stderr
    listed = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["address"] for x in listed] == ["late@example.test", "one@example.test"]


def test_cli_bad_rows_named_by_line(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("address,tenant\nok@example.test,acme\nnot-an-address,acme\n")
    r = run_tern("suppress", "import", "--spool", str(tmp_path / "spool"), str(src))
    assert r.returncode == 1
    assert "bad.csv:3:" in r.stderr and "not-an-address" in r.stderr, r.stderr
    r = run_tern("suppress", "frobnicate")
    assert r.returncode == 2 and "usage" in r.stderr


REWRITE_HOOKS = """
tern.on('smtp_client_rewrite_delivery_status', function(response, domain, tenant, campaign)
  if response:find('^452 4%.2%.2') then
    assert(domain == 'r.test' and tenant == 'acme' and campaign == '', 'arguments')
    return 552, '5.2.2', 'mailbox full for too long: ' .. response
  elseif response:find('^451 4%.3%.0') then
    return 'garbage'
  end
end)
"""


def test_rewrite_turns_452_into_bounce(ternd, ports, dns_server, ternd_sink):
    """A 452 rewritten by policy becomes a Bounce (and, as bad replies go, is classified and
    suppressed by what it became); a hook answer that is not a reply keeps the original."""
    t = start(ternd, dns_server, ternd_sink, REWRITE_HOOKS, "127.0.0.34")
    send_one(ports[0], "acme@origin.test", ["code-452-4.2.2@r.test", "tempfail-1@r.test"],
             b"Subject: r\r\n\r\nx\r\n")
    b = wait_records(t, of_type("Bounce"), 1)[0]
    assert b["recipient"] == "code-452-4.2.2@r.test"
    assert b["response"]["code"] == 552 and b["response"]["enhanced_code"] == "5.2.2"
    assert b["response"]["content"].startswith("mailbox full for too long: 452 4.2.2 scripted reply")
    assert b["bounce_classification"] == "quota-issues"
    tf = wait_records(t, lambda r: r["type"] == "TransientFailure" and
                      r["recipient"] == "tempfail-1@r.test", 1)[0]
    assert tf["response"]["code"] == 451
    assert "smtp_client_rewrite_delivery_status must return nil or code" in t.stderr()
    assert not [r for r in read_records(t) if r["type"] == "TransientFailure" and
                r["recipient"] == "code-452-4.2.2@r.test"]


HTTP_TENANT = """
tern.on('http_message_generated', function(msg)
  msg:set_meta('tenant', msg:sender():match('^([^@]*)'))
end)
"""


def test_http_admin_and_injection_refusal(ternd, ports, py_sink):
    """The admin API adds, looks up, lists and removes entries; an injection's recipient
    suppressed for the message's tenant is refused in the answer, and delivered once removed."""
    from test_http_inject import http_policy, post
    sink = py_sink("127.0.0.1", ports[1])
    ternd(http_policy(hooks=HTTP_TENANT))
    path = "/api/admin/suppression/v1"
    status, reply = post(ports[0], {"address": "Gone@Example.test", "tenant": "acme",
                                    "reason": "api", "expires_in": "1d"}, path=path)
    assert (status, reply) == (200, {}), reply
    status, e = post(ports[0], b"", path=path + "?address=gone@example.test&tenant=acme",
                     method="GET")
    assert status == 200 and e["tenant"] == "acme" and e["reason"] == "api", e
    assert e["expires"] - e["time"] == 86400
    status, _ = post(ports[0], b"", path=path + "?address=gone@example.test&tenant=beta",
                     method="GET")
    assert status == 404
    status, listed = post(ports[0], b"", path=path + "?tenant=acme&limit=5", method="GET")
    assert status == 200 and [x["address"] for x in listed["entries"]] == ["gone@example.test"]
    assert listed["truncated"] is False
    status, reply = post(ports[0], {"address": "nope"}, path=path)
    assert status == 422 and "nope" in reply["error"], reply
    status, reply = post(ports[0], {"address": "a@b.test", "expires_in": -3}, path=path)
    assert status == 422, reply

    def inject(sender):
        return post(ports[0], {"envelope_sender": sender,
                               "recipients": [{"email": "gone@example.test"},
                                              {"email": "kept@example.test"}],
                               "content": "Subject: hi\r\n\r\nhello\r\n"})

    status, reply = inject("acme@sender.test")
    assert status == 200 and reply["success_count"] == 1, reply
    assert reply["failed_recipients"] == ["gone@example.test"]
    assert "550 5.7.1 Recipient address is on the suppression list" in reply["errors"][0]
    status, reply = inject("beta@sender.test")
    assert status == 200 and reply["success_count"] == 2, reply
    status, reply = post(ports[0], {"address": "gone@example.test", "tenant": "acme"}, path=path,
                         method="DELETE")
    assert (status, reply) == (200, {}), reply
    status, reply = post(ports[0], {"address": "gone@example.test", "tenant": "acme"}, path=path,
                         method="DELETE")
    assert status == 404, reply
    status, reply = inject("acme@sender.test")
    assert status == 200 and reply["success_count"] == 2, reply
    assert len(sink.wait_messages(5, timeout=20)) == 5
