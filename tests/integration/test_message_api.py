# SPDX-License-Identifier: MIT
"""The message and connection objects as policy hooks see them.

There is no reader for spooled bodies in the CLI, so hooks write what they
saw (as JSON lines, via tern.json) into files under the test directory; the
tests compare that with what the client sent, with the Reception records and
with `tern spool list`.
"""
import json
import smtplib
import time

from conftest import listener_policy, run_tern

DUMP = """
local function dump(name, value)
  local f = assert(io.open('{dir}/' .. name, 'a'))
  f:write(tern.json.encode(value), '\\n')
  f:close()
end
"""


# Keep received messages in the spool for the checks: they are routed to a loopback port
# where nothing listens, fail transiently and wait an hour for their retry.
HOLD = ("tern.on('get_queue_config', function()\n"
        "  return tern.make_queue_config { retry_interval = '1h',\n"
        "                                  mx_list = { '127.0.0.1:{port9}' } }\nend)\n")


def policy(hooks):
    return listener_policy("relay_hosts = { '127.0.0.1' }", DUMP + hooks + HOLD)


def dumped(tmp_path, name):
    path = tmp_path / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def queued_ids(text):
    head = b"2.0.0 OK queued as "
    assert text.startswith(head), text
    return text[len(head):].decode().split()


def send(c, sender, rcpts, body):
    assert c.mail(sender)[0] == 250
    for r in rcpts:
        assert c.rcpt(r)[0] == 250
    code, text = c.data(body)
    assert code == 250, text
    return queued_ids(text)


def spool_list(tmp_path):
    r = run_tern("spool", "list", "--spool", str(tmp_path / "spool"))
    assert r.returncode == 0, r.stderr
    return {m["id"]: m for m in map(json.loads, r.stdout.splitlines())}


def receptions(t, n, timeout=5.0):
    """Reception records by id once there are n of them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            recs = [r for r in t.records() if r["type"] == "Reception"]
        except json.JSONDecodeError:
            recs = []  # a line caught half-written
        if len(recs) >= n or time.monotonic() > deadline:
            assert len(recs) == n, f"{len(recs)} Reception records, wanted {n}"
            return {r["id"]: r for r in recs}
        time.sleep(0.05)


ENVELOPE = """
tern.on('smtp_server_data', function(msg, conn)
  dump('data.jsonl', { id = msg:id(), sender = msg:sender(), recipient = msg:recipient() })
  msg:set_meta('from_data', 'yes')
end)
tern.on('smtp_server_message_received', function(msg, conn)
  dump('received.jsonl', { id = msg:id(), sender = msg:sender(), recipient = msg:recipient(),
                           from_data = msg:get_meta('from_data'), only = msg:get_meta('only') })
  msg:set_meta('only', msg:recipient())
end)
"""


def test_one_message_per_recipient_and_data_hook_once(ternd, ports, tmp_path):
    t = ternd(policy(ENVELOPE))
    rcpts = ["a@one.example", "b@two.example", "c@three.example"]
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        ids = send(c, "s@client.test", rcpts, b"Subject: x\r\n\r\nbody\r\n")
        ids2 = send(c, "s2@client.test", ["d@four.example"], b"Subject: y\r\n\r\nbody\r\n")
    assert len(set(ids)) == 3 and len(ids2) == 1 and ids2[0] not in ids

    data = dumped(tmp_path, "data.jsonl")
    assert len(data) == 2, "smtp_server_data must run once per transaction"
    assert data[0]["sender"] == "s@client.test" and data[0]["id"] in ids
    assert data[1] == {"id": ids2[0], "sender": "s2@client.test", "recipient": "d@four.example"}

    seen = dumped(tmp_path, "received.jsonl")
    assert [s["id"] for s in seen] == ids + ids2
    assert [s["recipient"] for s in seen] == rcpts + ["d@four.example"]
    # Meta set before the split reaches every copy; meta set on one copy stays there.
    assert all(s["from_data"] == "yes" and "only" not in s for s in seen)

    recs = receptions(t, 4)
    spooled = spool_list(tmp_path)
    assert set(spooled) == set(recs) == set(ids + ids2)
    for i, r in zip(ids, rcpts):
        assert spooled[i]["recipient"] == r and recs[i]["recipient"] == r
        assert recs[i]["meta"] == {"from_data": "yes", "only": r}


META = """
local values = {
  str = 'hello', empty = '', int = 42, neg = -7, float = 1.5, yes = true, no = false,
  arr = { 'x', 'y', 'z' }, nums = { 1, 2, 3 },
  nested = { a = { b = { 1, 2, { c = 'deep' } } }, flag = false },
}
tern.on('smtp_server_message_received', function(msg)
  for k, v in pairs(values) do msg:set_meta(k, v) end
  msg:set_meta('over', 'first')
  msg:set_meta('over', 'second')
  local back = {}
  for k in pairs(values) do back[k] = msg:get_meta(k) end
  back.over = msg:get_meta('over')
  dump('meta.jsonl', { back = back, missing = msg:get_meta('missing') == nil,
                       types = { int = type(msg:get_meta('int')), yes = type(msg:get_meta('yes')),
                                 arr = type(msg:get_meta('arr')) } })
end)
"""

META_VALUES = {
    "str": "hello", "empty": "", "int": 42, "neg": -7, "float": 1.5, "yes": True, "no": False,
    "arr": ["x", "y", "z"], "nums": [1, 2, 3],
    "nested": {"a": {"b": [1, 2, {"c": "deep"}]}, "flag": False},
}


def test_meta_round_trips_every_type(ternd, ports, tmp_path):
    t = ternd(policy(META))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        [mid] = send(c, "s@client.test", ["r@example.net"], b"Subject: m\r\n\r\nx\r\n")
    [seen] = dumped(tmp_path, "meta.jsonl")
    assert seen["back"] == {**META_VALUES, "over": "second"}
    assert seen["missing"] is True
    assert seen["types"] == {"int": "number", "yes": "boolean", "arr": "table"}
    rec = receptions(t, 1)[mid]
    assert rec["meta"] == {**META_VALUES, "over": "second"}


QUEUES = """
tern.on('smtp_server_message_received', function(msg)
  msg:import_x_headers()
  for _, key in ipairs { 'tenant', 'campaign', 'queue' } do
    local v = msg:get_meta('x-' .. key)
    if v then msg:set_meta(key, v) end
  end
end)
"""


def test_queue_names_from_meta(ternd, ports, tmp_path):
    t = ternd(policy(QUEUES))
    cases = [
        ("", "example.net"),
        ("X-Tenant: acme\r\n", "acme@example.net"),
        ("X-Campaign: spring\r\n", "spring:example.net"),
        ("X-Tenant: acme\r\nX-Campaign: spring\r\n", "spring:acme@example.net"),
        ("X-Tenant: acme\r\nX-Campaign: spring\r\nX-Queue: custom-q\r\n", "custom-q"),
    ]
    want = {}
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        for headers, queue in cases:
            body = f"Subject: q\r\nX-Other: o\r\n{headers}\r\nx\r\n".encode()
            [mid] = send(c, "s@client.test", ["r@Example.NET"], body)
            want[mid] = queue
    spooled = spool_list(tmp_path)
    assert {i: m["queue"] for i, m in spooled.items()} == want
    recs = receptions(t, len(cases))
    assert {i: r["queue"] for i, r in recs.items()} == want
    # import_x_headers() takes every X- field, lower-cased, and nothing else.
    for i, r in recs.items():
        assert r["meta"]["x-other"] == "o"
        assert "subject" not in r["meta"]
    full = [i for i, q in want.items() if q == "custom-q"][0]
    assert recs[full]["meta"] == {"x-other": "o", "x-tenant": "acme", "x-campaign": "spring",
                                  "x-queue": "custom-q", "tenant": "acme",
                                  "campaign": "spring", "queue": "custom-q"}


HEADERS = """
tern.on('smtp_server_message_received', function(msg)
  local seen = {
    size0 = msg:body_size(),
    id = msg:id(),
    received = msg:get_headers('Received'),
    subject = msg:get_header('Subject'),
    subject_lower = msg:get_header('sUBJECT'),
    reps = msg:get_headers('X-Rep'),
    n_none = #msg:get_headers('X-None'),
    missing = msg:get_header('X-None') == nil,
  }
  msg:import_x_headers { 'X-Set' }
  msg:prepend_header('X-Pre', 'v')
  seen.prepend_grew = msg:body_size() - seen.size0
  msg:set_header('X-Set', 'new')
  msg:set_header('X-Added', 'added')
  msg:set_header('X-Multi', 'line one\\nline two')
  seen.removed = msg:remove_header('X-Drop')
  seen.removed_absent = msg:remove_header('X-Absent')
  seen.after = {
    pre = msg:get_header('X-Pre'), set = msg:get_headers('X-Set'), added = msg:get_header('X-Added'),
    multi = msg:get_header('X-Multi'), drop = msg:get_header('X-Drop') == nil,
    from = msg:get_header('From'), reps = #msg:get_headers('X-Rep'),
  }
  seen.bad_name = select(2, pcall(msg.set_header, msg, 'Bad Name', 'v'))
  seen.size1 = msg:body_size()
  dump('headers.jsonl', seen)
end)
"""

HEADER_MESSAGE = (b"Subject: first line\r\n continued\r\n\tand more\r\n"
                  b"X-Rep: one\r\nX-Rep: two\r\nx-rep: three\r\n"
                  b"X-Drop: a\r\nX-Set: old\r\nX-Drop: b\r\n"
                  b"From: Alice <a@client.test>\r\n"
                  b"\r\nbody line\r\n")


def test_header_access_and_edits(ternd, ports, tmp_path):
    t = ternd(policy(HEADERS))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        [mid] = send(c, "s@client.test", ["r@example.net"], HEADER_MESSAGE)
    [seen] = dumped(tmp_path, "headers.jsonl")
    assert seen["subject"] == "first line continued\tand more", "folding not undone"
    assert seen["subject_lower"] == seen["subject"]
    assert seen["reps"] == ["one", "two", "three"]
    assert seen["n_none"] == 0 and seen["missing"] is True

    # tern prepended exactly one Received header naming this message; nothing else was added.
    [received] = seen["received"]
    assert received.startswith("from client.test ([127.0.0.1])")
    assert "by mx.test (tern) with ESMTP" in received
    assert f"id {mid}" in received and f"id {seen['id']}" in received
    assert "for <r@example.net>;" in received
    folds = received.count("\t")
    assert seen["size0"] == len(HEADER_MESSAGE) + len("Received: ") + len(received) + 2 * folds + 2

    assert seen["prepend_grew"] == len(b"X-Pre: v\r\n")
    assert seen["removed"] == 2 and seen["removed_absent"] == 0
    assert seen["after"] == {"pre": "v", "set": ["new"], "added": "added",
                             "multi": "line one\tline two", "drop": True,
                             "from": "Alice <a@client.test>", "reps": 3}
    assert "invalid header name" in seen["bad_name"]
    rec = receptions(t, 1)[mid]
    assert rec["size"] == seen["size1"]
    assert rec["meta"] == {"x-set": "old"}
    assert spool_list(tmp_path)[mid]["size"] == seen["size1"]


NULL_QUEUE = """
tern.on('smtp_server_message_received', function(msg)
  if msg:recipient():find('^drop') then msg:set_meta('queue', 'null') end
end)
"""


def test_null_queue_discards_but_logs(ternd, ports, tmp_path):
    t = ternd(policy(NULL_QUEUE))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        keep, drop = send(c, "s@client.test", ["keep@example.net", "drop@example.net"],
                          b"Subject: n\r\n\r\nx\r\n")
        [drop2] = send(c, "s@client.test", ["drop2@example.net"], b"Subject: n\r\n\r\nx\r\n")
    recs = receptions(t, 3)
    assert recs[drop]["queue"] == "null" and recs[drop2]["queue"] == "null"
    assert recs[keep]["queue"] == "example.net"
    assert set(spool_list(tmp_path)) == {keep}


STALE = """
tern.on('smtp_server_message_received', function(msg)
  stale = msg
end)
tern.on('smtp_server_mail_from', function(sender)
  if stale then
    local ok, err = pcall(function() return stale:id() end)
    dump('stale.jsonl', { ok = ok, err = tostring(err) })
  end
end)
tern.on('smtp_server_rcpt_to', function(rcpt)
  if rcpt:find('^raise') then return stale:sender() end
end)
"""


def test_stale_message_handle_raises(ternd, ports, tmp_path):
    t = ternd(policy(STALE))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("client.test")
        send(c, "s@client.test", ["r@example.net"], b"Subject: s\r\n\r\nx\r\n")
        assert c.mail("s@client.test")[0] == 250
        assert c.rcpt("raise@example.net") == (451, b"4.3.0 Temporary policy failure, try again later")
        assert c.rcpt("fine@example.net")[0] == 250
    [seen] = dumped(tmp_path, "stale.jsonl")
    assert seen["ok"] is False and "message is no longer valid" in seen["err"]
    assert "message is no longer valid" in t.stderr()


CONN = """
tern.on('smtp_server_connection_accepted', function(conn)
  conn:set_meta('count', 0)
  conn:set_meta('table', { peer = conn:peer_address() })
end)
tern.on('smtp_server_ehlo', function(domain, conn)
  dump('ehlo.jsonl', { arg = domain, name = conn:ehlo_name() })
end)
tern.on('smtp_server_mail_from', function(sender, conn)
  conn:set_meta('count', conn:get_meta('count') + 1)
  kept_conn = conn
end)
tern.on('smtp_server_message_received', function(msg, conn)
  dump('conn.jsonl', {
    peer = conn:peer_address(), ['local'] = conn:local_address(), ehlo = conn:ehlo_name(),
    listener = conn:listener(), count = conn:get_meta('count'),
    table_peer = conn:get_meta('table').peer, unset = conn:get_meta('unset') == nil,
    tls = conn:tls() == nil, auth = conn:auth_id() == nil,
  })
end)
tern.on('smtp_server_rcpt_to', function(rcpt, conn)
  if rcpt:find('^old') then
    local ok, err = pcall(function() return kept_conn:peer_address() end)
    dump('stale_conn.jsonl', { same = rawequal(kept_conn, conn), ok = ok, err = tostring(err) })
  end
end)
"""


def test_connection_object_and_meta_across_hooks(ternd, ports, tmp_path):
    ternd(policy(CONN))
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("first.client.test")
        send(c, "s@client.test", ["r@example.net"], b"Subject: c\r\n\r\nx\r\n")
        send(c, "s@client.test", ["r@example.net"], b"Subject: c\r\n\r\nx\r\n")
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.helo("second.client.test")
        assert c.mail("s@client.test")[0] == 250
        assert c.rcpt("old@example.net")[0] == 250
        code, _ = c.data(b"Subject: c\r\n\r\nx\r\n")
        assert code == 250
    assert dumped(tmp_path, "ehlo.jsonl") == [
        {"arg": "first.client.test", "name": "first.client.test"},
        {"arg": "second.client.test", "name": "second.client.test"}]
    common = {"peer": "127.0.0.1", "local": "127.0.0.1", "listener": f"127.0.0.1:{ports[0]}",
              "table_peer": "127.0.0.1", "unset": True, "tls": True, "auth": True}
    assert dumped(tmp_path, "conn.jsonl") == [
        {**common, "ehlo": "first.client.test", "count": 1},
        {**common, "ehlo": "first.client.test", "count": 2},
        {**common, "ehlo": "second.client.test", "count": 1}]
    # kept_conn was replaced by this connection's MAIL hook: same object, still valid.
    [same] = dumped(tmp_path, "stale_conn.jsonl")
    assert same == {"same": True, "ok": True, "err": "127.0.0.1"}


STALE_CONN = """
tern.on('smtp_server_ehlo', function(domain, conn)
  if domain == 'first.test' then kept_conn = conn; return end
  local ok, err = pcall(function() return kept_conn:peer_address() end)
  dump('stale_conn.jsonl', { ok = ok, err = tostring(err) })
end)
"""


def test_stale_connection_handle_raises(ternd, ports, tmp_path):
    # One shard: globals live in a shard's Lua state, and both sessions must meet there.
    ternd(policy(STALE_CONN), threads=1)
    with smtplib.SMTP("127.0.0.1", ports[0]) as c:
        c.ehlo("first.test")
    deadline = time.monotonic() + 5
    while True:
        with smtplib.SMTP("127.0.0.1", ports[0]) as c:
            c.ehlo("second.test")
        seen = dumped(tmp_path, "stale_conn.jsonl")
        # The first session is freed when ternd sees the close; QUIT makes that prompt.
        if seen[-1]["ok"] is False or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert seen[-1]["ok"] is False and "connection is no longer valid" in seen[-1]["err"]
