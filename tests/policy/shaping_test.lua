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
  local s = shape:settings('gmail.com', 'ip-1', 'alt1.gmail-smtp-in.l.google.com.,gmail-smtp-in.l.google.com.')
  t.eq(s.connection_limit, 15, 'a provider matched by MX suffix overrides the defaults')
  t.eq(s.max_message_rate, '120/min', 'the provider rate applies')
  s = shape:settings('example.net', 'ip-1', 'mx.example.net.')
  t.eq(s.connection_limit, 5, 'no provider: the defaults')
  t.eq(s.enable_tls, 'required', 'a domain entry applies')
  s = shape:settings('gmail.com', 'slow', 'gmail-smtp-in.l.google.com.')
  t.eq(s.max_message_rate, '10/min', 'a source override beats the provider')
  t.eq(s.connection_limit, 1, 'a per-source entry inside the provider wins last')
  t.eq(s.mx_suffixes, nil, 'matching keys do not leak into the path config')
  local p = shape:path('gmail.com', 'ip-1', 'gmail-smtp-in.l.google.com.')
  t.eq(type(p), 'table', 'path() returns tern.make_egress_path{...}')
  local _, origins = shape:settings('gmail.com', 'slow', 'gmail-smtp-in.l.google.com.')
  t.eq(table.concat(origins.connection_limit, '.'), 'providers.google.sources.slow.connection_limit',
    'settings() names the table entry each value came from')

  -- Regression: with two providers matching one site, the winner depended on pairs() order.
  for _, names in ipairs({ { 'a', 'b' }, { 'b', 'a' } }) do
    local providers = {}
    providers[names[1]] = { mx_suffixes = { '.outlook.com' }, connection_limit = 3 }
    providers[names[2]] = { mx_suffixes = { '.protection.outlook.com' }, connection_limit = 7 }
    local s2 = shaping.new { providers = providers }
      :settings('contoso.com', 'ip-1', 'contoso-com.mail.protection.outlook.com.')
    t.eq(s2.connection_limit, 7, 'the longest MX suffix wins (' .. names[2] .. ' has it)')
  end
  local tie = shaping.new { providers = { z = { mx_suffixes = { '.mx.test' } }, y = { mx_suffixes = { '.mx.test' } } } }
  t.eq(tie:provider('a.mx.test.'), 'y', 'equal suffixes: the smaller provider name wins')
  t.raises(function() shaping.new { providers = { x = {} } } end, 'needs mx_suffixes',
    'a provider without suffixes is refused')
  t.raises(function() shaping.new { defaults = { colour = 'red' } }:path('a', 'b', 'c') end,
    "unknown option 'colour'", 'unknown settings are refused by make_egress_path')
  return t.done()
end)
