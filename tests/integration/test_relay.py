# SPDX-License-Identifier: MIT
"""Relay control: who may hand ternd mail for which domains.

A recipient is accepted when the client's address is in the listener's
relay_hosts, when the client has authenticated, or when the policy's
get_listener_domain(domain, listener, conn) says the domain is local;
otherwise RCPT gets 550 5.7.1. To be "not in relay_hosts" on loopback the
listeners here use relay_hosts = { '10.0.0.0/8' }.
"""
import base64
import json
import smtplib

import pytest

import tls
from conftest import free_port, listener_policy, run_tern

DENIED = (550, b"5.7.1 Relaying denied")

AUTH_HOOK = """
tern.on('smtp_server_auth_plain', function(authz, authc, password, conn)
  return authc == 'user' and password == 'secret'
end)
"""

DOMAIN_HOOK = """
tern.on('get_listener_domain', function(domain, listener, conn)
  if domain == 'broken.test' then error('no such table') end
  local f = assert(io.open('{dir}/domains.log', 'a'))
  f:write(domain, ' ', listener, ' ', conn:peer_address(), '\\n')
  f:close()
  return domain == 'local.test'
end)
"""


# Keep received messages in the spool for the checks: they are routed to a loopback port
# where nothing listens, fail transiently and wait an hour for their retry.
HOLD = ("tern.on('get_queue_config', function()\n"
        "  return tern.make_queue_config { retry_interval = '1h',\n"
        "                                  mx_list = { '127.0.0.1:{port9}' } }\nend)\n")


def policy(options="", hooks=""):
    return listener_policy(options, hooks + HOLD)


def spool_list(tmp_path):
    r = run_tern("spool", "list", "--spool", str(tmp_path / "spool"))
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def queued_ids(text):
    head = b"2.0.0 OK queued as "
    assert text.startswith(head), text
    return text[len(head):].decode().split()


def assert_spooled(tmp_path, ids):
    """The spool holds exactly ids: checked once, since the 250 came after the synced write."""
    assert {m["id"] for m in spool_list(tmp_path)} == set(ids)


def test_client_in_relay_hosts_may_relay(ternd, ports, tmp_path):
    ternd(policy("relay_hosts = { '127.0.0.0/8' }"))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        assert c.mail("a@client.test")[0] == 250
        assert c.rcpt("b@remote.example") == (250, b"2.1.5 Recipient OK")
        code, text = c.data(b"Subject: r\r\n\r\nx\r\n")
        assert code == 250
    assert_spooled(tmp_path, queued_ids(text))


def test_client_not_in_relay_hosts_is_denied(ternd, ports, tmp_path):
    ternd(policy("relay_hosts = { '10.0.0.0/8' }"))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        assert c.mail("a@client.test")[0] == 250
        assert c.rcpt("b@remote.example") == DENIED
        assert c.rcpt("c@other.example") == DENIED
        assert c.docmd("DATA") == (554, b"5.5.1 No valid recipients")
    assert spool_list(tmp_path) == []


def test_relay_hosts_default_is_loopback_and_empty_list_denies(ternd, ports):
    # Without the option the listener relays for loopback only (KumoMTA's default).
    ternd(policy().replace("end)", """
  tern.start_esmtp_listener { listen = '127.0.0.1:{port2}', hostname = 'mx.test', relay_hosts = {} }
end)""", 1))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example")[0] == 250
    with smtplib.SMTP("127.0.0.1", ports[1]) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example") == DENIED


def test_authenticated_client_may_relay(ternd, ports, tmp_path):
    cert, key = tls.make_cert(tmp_path)
    ternd(policy("relay_hosts = { '10.0.0.0/8' }, " + tls.listener_options(cert, key),
                          AUTH_HOOK))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.starttls(context=tls.client_context())
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example") == DENIED, "relayed before AUTH"
        c.rset()
        assert c.docmd("AUTH PLAIN " + base64.b64encode(b"\0user\0secret").decode())[0] == 235
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example") == (250, b"2.1.5 Recipient OK")
        code, text = c.data(b"Subject: r\r\n\r\nx\r\n")
        assert code == 250
    assert_spooled(tmp_path, queued_ids(text))


def test_failed_auth_does_not_open_relay(ternd, ports, tmp_path):
    cert, key = tls.make_cert(tmp_path)
    ternd(policy("relay_hosts = { '10.0.0.0/8' }, " + tls.listener_options(cert, key),
                          AUTH_HOOK))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.starttls(context=tls.client_context())
        c.ehlo("client.test")
        assert c.docmd("AUTH PLAIN " + base64.b64encode(b"\0user\0guess").decode())[0] == 535
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example") == DENIED


def test_get_listener_domain_decides_for_outsiders(ternd, ports, tmp_path):
    ternd(policy("relay_hosts = { '10.0.0.0/8' }", DOMAIN_HOOK))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("postmaster@local.test") == (250, b"2.1.5 Recipient OK")
        assert c.rcpt("b@remote.example") == DENIED
        code, text = c.data(b"Subject: r\r\n\r\nx\r\n")
        assert code == 250
    ids = queued_ids(text)
    assert len(ids) == 1, "the denied recipient got a message"
    assert_spooled(tmp_path, ids)
    assert [m["recipient"] for m in spool_list(tmp_path)] == ["postmaster@local.test"]
    listener = f"127.0.0.1:{ports[0]}"
    assert (tmp_path / "domains.log").read_text() == (
        f"local.test {listener} 127.0.0.1\nremote.example {listener} 127.0.0.1\n")


def test_get_listener_domain_not_asked_for_relay_hosts(ternd, ports, tmp_path):
    ternd(policy("relay_hosts = { '127.0.0.1' }", DOMAIN_HOOK))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example")[0] == 250
    assert not (tmp_path / "domains.log").exists()


def test_get_listener_domain_error_is_temporary(ternd, ports):
    t = ternd(policy("relay_hosts = { '10.0.0.0/8' }", DOMAIN_HOOK))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("x@broken.test") == (451, b"4.3.0 Temporary policy failure, try again later")
        assert c.rcpt("y@local.test")[0] == 250
    assert "hook get_listener_domain failed" in t.stderr()


IPV6_POLICY = """
tern.on('init', function()
  tern.define_spool { path = '{dir}/spool' }
  tern.start_esmtp_listener { listen = '[::1]:%d', hostname = 'mx.test', relay_hosts = { '::1' } }
  tern.start_esmtp_listener { listen = '[::1]:%d', hostname = 'mx.test',
                              relay_hosts = { '127.0.0.1' } }
end)
""" + HOLD


def test_ipv6_relay_hosts(ternd, tmp_path):
    allow, deny = free_port("::1"), free_port("::1")
    ternd(IPV6_POLICY % (allow, deny))
    with smtplib.SMTP("::1", allow) as c:
        code, caps = c.ehlo("client.test")
        assert b"[::1]" in caps.split(b"\n")[0]
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example") == (250, b"2.1.5 Recipient OK")
        code, text = c.data(b"Subject: v6\r\n\r\nx\r\n")
        assert code == 250
    assert_spooled(tmp_path, queued_ids(text))
    with smtplib.SMTP("::1", deny) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example") == DENIED


@pytest.mark.parametrize("cidr", ["::1/128", "::/0"])
def test_ipv6_cidr_ranges(ternd, tmp_path, cidr):
    port = free_port("::1")
    ternd(IPV6_POLICY.replace("{ '::1' }", "{ '%s' }" % cidr) % (port, free_port("::1")))
    with smtplib.SMTP("::1", port) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example")[0] == 250


def test_ipv4_range_does_not_match_ipv6_peer(ternd, tmp_path):
    port = free_port("::1")
    ternd(IPV6_POLICY.replace("{ '::1' }", "{ '0.0.0.0/0' }") % (port, free_port("::1")))
    with smtplib.SMTP("::1", port) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        assert c.rcpt("b@remote.example") == DENIED
