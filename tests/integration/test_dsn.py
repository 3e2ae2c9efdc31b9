# SPDX-License-Identifier: MIT
"""DSNs: with dsn = true in its queue config (here for one tenant only), a message that
expires or bounces sends its sender an RFC 3464 report that Python's email parses as multipart/report
naming the recipient, the status and the diagnostic code, with the original's headers; none
for the null sender, none for a tenant that did not ask."""
import email
import email.policy
import time

from sinks import py_sink, send_one, ternd_sink, wait_records

__all__ = ["py_sink", "ternd_sink"]  # fixtures, used by name

POLICY = """
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }
  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test' }
end)
tern.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', msg:get_header('X-Tenant') or 'default')
end)
tern.on('get_queue_config', function(domain, tenant, campaign)
  if domain == 'origin.test' then  -- the senders' domain: the sink that collects DSNs
    return tern.make_queue_config { mx_list = { '127.0.0.1:{port2}' } }
  end
  if domain == 'hard.test' then  -- sink.lua: permfail...@ is refused with 550 5.1.1
    return tern.make_queue_config { mx_list = { '127.0.0.1:{port4}' }, dsn = true }
  end
  -- Everyone else is unreachable (nothing listens on {port3}): messages expire quickly.
  return tern.make_queue_config { mx_list = { '127.0.0.1:{port3}' }, retry_interval = '1s',
                                  max_age = '1s', dsn = tenant == 'acme' }
end)
"""


def message(tenant, subject):
    return (f"From: news@origin.test\r\nTo: someone@dead.test\r\nX-Tenant: {tenant}\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@origin.test>\r\n\r\nhello\r\n").encode()


def test_expired_message_yields_a_dsn_to_its_sender(ternd, ports, py_sink):
    sink = py_sink("127.0.0.1", ports[1])
    t = ternd(POLICY)
    (mid,) = send_one(ports[0], "news@origin.test", ["a@dead.test"], message("acme", "first"))
    send_one(ports[0], "<>", ["b@dead.test"], message("acme", "nullsender"))
    send_one(ports[0], "quiet@origin.test", ["c@dead.test"], message("quiet", "nodsn"))
    expired = wait_records(t, lambda r: r["type"] == "Expiration", 3, timeout=60)
    assert len(expired) == 3, expired
    (got,) = sink.wait_messages(1, timeout=30)
    assert got["mail_from"] == "<>" and got["rcpt_tos"] == ["news@origin.test"]

    dsn = email.message_from_bytes(got["data"], policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["To"] == "news@origin.test"
    assert dsn["Auto-Submitted"] == "auto-replied"
    notice, status, headers = dsn.get_payload()
    assert notice.get_content_type() == "text/plain" and "a@dead.test" in notice.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_rcpt = status.get_payload()
    assert per_message["Reporting-MTA"].startswith("dns; ")
    assert per_rcpt["Final-Recipient"] == "rfc822; a@dead.test"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.4.7"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 551 5.4.7 message expired: too old to deliver"
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Message-ID: <first@origin.test>" in headers.get_payload()

    # The DSN was received like any message: a Reception record, from the null sender (in the
    # log at the flusher's next tick, maybe after the sink has the DSN).
    (rec,) = wait_records(t, lambda r: r["type"] == "Reception" and r["listener"] == "dsn", 1)
    assert rec["sender"] == "" and rec["recipient"] == "news@origin.test"
    assert [r["recipient"] for r in expired if r["id"] == mid] == ["a@dead.test"]
    # Nothing for the null sender nor for the tenant without dsn: still one DSN a moment later.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sink.messages) == 1


def test_bounced_message_yields_a_dsn_with_the_remote_reply(ternd, ports, py_sink, ternd_sink):
    sink = py_sink("127.0.0.1", ports[1])
    ternd_sink("127.0.0.1", ports[3])
    t = ternd(POLICY)
    send_one(ports[0], "news@origin.test", ["permfail.x@hard.test"], message("any", "refused"))
    (bounce,) = wait_records(t, lambda r: r["type"] == "Bounce", 1)
    assert bounce["response"]["code"] == 550
    (got,) = sink.wait_messages(1, timeout=30)
    dsn = email.message_from_bytes(got["data"], policy=email.policy.default)
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    _, per_rcpt = dsn.get_payload()[1].get_payload()
    assert per_rcpt["Final-Recipient"] == "rfc822; permfail.x@hard.test"
    assert per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; " + bounce["site"]
    assert per_rcpt["Diagnostic-Code"] == \
        "smtp; 550 5.1.1 " + bounce["response"]["content"]
