-- SPDX-License-Identifier: MIT
-- msg:from_domain(), msg:queue_name(), Lua-owned messages and connections
-- (tern.message.new, tern.conn.new), and KumoMTA's path option spellings.
local t = require 'tern.testing'

local function msg_from(from_value)
  local headers = from_value and ('From: ' .. from_value .. '\r\n') or ''
  return tern.message.new('s@env.test', 'r@dest.test', headers .. 'Subject: x\r\n\r\nbody\r\n')
end

tern.on('main', function()
  t.eq(msg_from('a@Example.COM'):from_domain(), 'example.com', 'a bare address, lower-cased')
  t.eq(msg_from('"Bob" <bob@b.test>'):from_domain(), 'b.test', 'inside angle brackets')
  t.eq(msg_from('"x@evil.test" <bob@good.test>'):from_domain(), 'good.test',
    "an '@' in the display name does not count")
  t.eq(msg_from('bob@c.test (Bob)'):from_domain(), 'c.test', 'a trailing comment is not part of it')
  t.eq(msg_from('=?utf-8?q?B=C3=B6b?=\r\n <bob@folded.test>'):from_domain(), 'folded.test',
    'a folded value')
  t.eq(msg_from('undisclosed'):from_domain(), nil, 'no address: nil')
  t.eq(msg_from('<>'):from_domain(), nil, 'an empty address: nil')
  t.eq(msg_from(nil):from_domain(), nil, 'no From header: nil')

  local m = msg_from('a@b.test')
  t.eq(m:queue_name(), 'dest.test', 'the queue is the domain without meta')
  m:set_meta('tenant', 'acme')
  m:set_meta('campaign', 'june')
  t.eq(m:queue_name(), 'june:acme@dest.test', 'campaign:tenant@domain')
  t.eq(m:sender(), 's@env.test', 'the envelope sender')
  t.raises(function() tern.message.new('a', 'b') end, 'bad argument #3', 'data is required')

  local c = tern.conn.new { peer = '192.0.2.7', tls = { version = 'TLSv1.2', cipher = 'X' } }
  t.eq(c:peer_address(), '192.0.2.7', 'peer address')
  t.eq(c:tls().cipher, 'X', 'tls cipher')
  t.eq(tern.conn.new {}:tls(), nil, 'no tls')
  c:set_meta('k', { 1 })
  t.eq(c:get_meta('k')[1], 1, 'connection meta')
  t.raises(function() tern.conn.new { colour = 1 } end, "unknown option 'colour' for tern.conn.new",
    'unknown connection options are refused')

  local p = tern.make_egress_path { mail_from_timeout = '30s', rcpt_to_timeout = '1m',
                                    enable_tls = 'Opportunistic' }
  t.eq(p.mail_timeout, 30, 'mail_from_timeout is mail_timeout')
  t.eq(p.rcpt_timeout, 60, 'rcpt_to_timeout is rcpt_timeout')
  t.eq(p.enable_tls, 'opportunistic', 'enable_tls in any case')
  t.eq(tern.make_egress_path { enable_tls = 'REQUIRED' }.enable_tls, 'required', 'REQUIRED')
  t.raises(function() tern.make_egress_path { mail_timeout = '1s', mail_from_timeout = '2s' } end,
    "'mail_from_timeout' and 'mail_timeout' are the same option", 'both spellings at once are refused')
  t.raises(function() tern.make_egress_path { enable_tls = 'OpportunisticInsecure' } end,
    "enable_tls must be", 'other values are still refused')
  return t.done()
end)
