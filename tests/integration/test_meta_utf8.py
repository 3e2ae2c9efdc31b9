# SPDX-License-Identifier: MIT
"""Regression (found by fuzz_lua_json): a Lua string with invalid UTF-8 was
encoded into JSON byte for byte. A policy copying a header of 8-bit junk into
meta wrote spool metadata that the recovery scan could not parse, so after a
restart the acknowledged message was quarantined instead of queued, and the
Reception record was not valid JSON. Invalid UTF-8 now becomes U+FFFD."""
import json
import os
import smtplib

from conftest import listener_policy

HOOKS = """
tern.on('smtp_server_message_received', function(msg, conn)
  msg:set_meta('subject', msg:get_header('Subject'))
end)
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1h', mx_list = { '127.0.0.1:{port9}' } }
end)
"""


def reception_lines(tmp_path):
    lines = []
    for name in sorted(os.listdir(tmp_path / "log")):
        with open(tmp_path / "log" / name, "rb") as f:
            lines += [line for line in f if b'"Reception"' in line]
    return lines


def test_invalid_utf8_meta_survives_restart(ternd, ports, tmp_path):
    policy = listener_policy("relay_hosts = { '127.0.0.1' }", HOOKS)
    t = ternd(policy)
    body = b"Subject: caf\xe9 \xff\xfe \xed\xa0\x80 ok \xc3\xa9\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        c.sendmail("a@client.test", ["b@example.net"], body)
    assert t.stop() == 0
    assert "cannot be loaded" not in t.stderr(), t.stderr()
    [line] = reception_lines(tmp_path)
    rec = json.loads(line.decode("utf-8"))  # strict: valid UTF-8, valid JSON
    assert rec["meta"]["subject"] == "caf\ufffd \ufffd\ufffd \ufffd\ufffd\ufffd ok \u00e9"
    again = ternd(policy)
    again.stop()
    err = again.stderr()
    assert "1 messages, 0 quarantined" in err, err
    assert "recovered 1 messages" in err, err
