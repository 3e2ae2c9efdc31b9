-- SPDX-License-Identifier: MIT
-- tern.shaping merges defaults, provider (by MX suffix), domain and source settings.
local t = require 'tern.testing'
local shaping = require 'tern.shaping'

tern.on('main', function()
  local shape = shaping.new {
    defaults = { connection_limit = 5, max_message_rate = '60/min' },
    providers = { google = { mx_suffixes = { '.google.com' }, connection_limit = 15,
                             max_message_rate = '120/min', sources = { slow = { connection_limit = 1 } } } },
    domains = { ['example.net'] = { enable_tls = 'required' } },
    sources = { slow = { max_message_rate = '10/min' } },
  }
  local s = shape:settings('gmail.com', 'alt1.gmail-smtp-in.l.google.com.,gmail-smtp-in.l.google.com.', 'ip-1')
  t.eq(s.connection_limit, 15, 'a provider matched by MX suffix overrides the defaults')
  t.eq(s.max_message_rate, '120/min', 'the provider rate applies')
  s = shape:settings('example.net', 'mx.example.net.', 'ip-1')
  t.eq(s.connection_limit, 5, 'no provider: the defaults')
  t.eq(s.enable_tls, 'required', 'a domain entry applies')
  s = shape:settings('gmail.com', 'gmail-smtp-in.l.google.com.', 'slow')
  t.eq(s.max_message_rate, '10/min', 'a source override beats the provider')
  t.eq(s.connection_limit, 1, 'a per-source entry inside the provider wins last')
  t.eq(s.mx_suffixes, nil, 'matching keys do not leak into the path config')
  local p = shape:path('gmail.com', 'gmail-smtp-in.l.google.com.', 'ip-1')
  t.eq(type(p), 'table', 'path() returns tern.make_egress_path{...}')
  t.raises(function() shaping.new { providers = { x = {} } } end, 'needs mx_suffixes',
    'a provider without suffixes is refused')
  t.raises(function() shaping.new { defaults = { colour = 'red' } }:path('a', 'b', 'c') end,
    "unknown option 'colour'", 'unknown settings are refused by make_egress_path')
  return t.done()
end)
