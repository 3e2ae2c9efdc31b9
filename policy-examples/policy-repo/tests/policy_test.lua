-- SPDX-License-Identifier: MIT
-- What this repository's policy decides, one test per decision a reviewer cares about.
local t = require 'tern.testing'

local p = t.policy('../policy.lua')

t.dns {
  ['gmail.com'] = { mx = { 'gmail-smtp-in.l.google.com', 'alt1.gmail-smtp-in.l.google.com' } },
  ['hosted.example'] = { mx = { 'aspmx.l.google.com' } },
  ['outlook.com'] = { mx = { 'outlook-com.olc.protection.outlook.com' } },
  ['yahoo.com'] = { mx = { 'mta7.am0.yahoodns.net' } },
  ['example-bank.com'] = { mx = { 'mx1.example-bank.com' } },
  ['small.example'] = { mx = { 'mail.small.example' } },
}

local function path(domain, source)
  return p:fire('get_egress_path_config', domain, source, t.site(domain))
end

t.test('google: 15 connections, 120/min per source, also for domains it hosts', function()
  for _, domain in ipairs { 'gmail.com', 'hosted.example' } do
    local c = path(domain, 'ip-1')
    t.eq(c.connection_limit, 15, domain .. ' connection_limit')
    t.eq(c.max_message_rate, 2, domain .. ' max_message_rate 120/min')
  end
end)

t.test('microsoft and yahoo', function()
  t.eq(path('outlook.com', 'ip-2').max_message_rate, 5, 'outlook 300/min')
  t.eq(path('yahoo.com', 'ip-2').connection_limit, 10, 'yahoo connection_limit')
end)

t.test('the warming source ip-9 stays slow everywhere', function()
  t.eq(path('gmail.com', 'ip-9').connection_limit, 2, 'gmail')
  t.eq(path('small.example', 'ip-9').max_message_rate, 20 / 60, 'others')
end)

t.test('the bank requires TLS, others use it when offered', function()
  t.eq(path('example-bank.com', 'ip-1').enable_tls, 'required', 'bank')
  t.eq(path('small.example', 'ip-1').enable_tls, 'opportunistic', 'others')
end)

t.test('billing uses the transactional pool and expires after a day', function()
  local q = p:fire('get_queue_config', 'gmail.com', 'billing', '')
  t.eq(q.egress_pool, 'transactional', 'pool')
  t.eq(q.max_age, 86400, 'max_age')
  local pool = p:fire('get_egress_pool', 'transactional')
  t.eq(#pool.entries, 2, 'two sources')
  t.eq(p:fire('get_egress_source', 'ip-9').source_address, '192.0.2.9', 'ip-9 address')
end)

t.test('a known tenant joins its queue; an unknown one is refused', function()
  local msg = t.message { from = 'a@acme.example', to = 'u@gmail.com',
                          headers = { ['X-Tenant'] = 'acme', ['X-Campaign'] = 'may' } }
  p:fire('smtp_server_message_received', msg)
  t.eq(msg:queue_name(), 'may:acme@gmail.com', 'queue')
  t.eq(msg:get_header('X-Tenant'), nil, 'X-Tenant removed')
  t.rejects(function()
    p:fire('smtp_server_message_received',
           t.message { from = 'a@b.example', to = 'u@gmail.com', headers = { ['X-Tenant'] = 'acme2' } })
  end, 550, 'unknown tenant acme2')
end)
