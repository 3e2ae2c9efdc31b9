-- SPDX-License-Identifier: MIT
-- policy-examples/esp.lua as a reviewer reads it: which limits each provider
-- and source gets, which queue a message joins, and who signs it. Run by
-- `tern policy test policy-examples/tests` (and `make test`).
local t = require 'tern.testing'

local fixture = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/') .. '/esp-fixture'
local p = t.policy('../esp.lua', { env = { TERN_ESP_DIR = fixture } })

t.dns {
  ['gmail.com'] = { mx = { 'gmail-smtp-in.l.google.com', 'alt1.gmail-smtp-in.l.google.com' } },
  ['googlemail.com'] = { mx = { 'gmail-smtp-in.l.google.com' } },
  ['hosted-by-google.test'] = { mx = { 'aspmx.l.google.com' } },
  ['outlook.com'] = { mx = { 'outlook-com.olc.protection.outlook.com' } },
  ['yahoo.com'] = { mx = { 'mta5.am0.yahoodns.net' } },
  ['example.net'] = { mx = { 'mx.example.net' } },
}

local function path(domain, source)
  return p:fire('get_egress_path_config', domain, source, t.site(domain))
end

t.test('gmail.com: 15 connections and 120/min per source', function()
  local c = path('gmail.com', 'ip-1')
  t.eq(c.connection_limit, 15, 'connection_limit')
  t.eq(c.max_message_rate, 120 / 60, 'max_message_rate (per second)')
  t.eq(c.enable_tls, 'opportunistic', 'enable_tls from the defaults')
end)

t.test('a domain hosted by Google gets the google limits by MX', function()
  local c = path('hosted-by-google.test', 'ip-2')
  t.eq(c.connection_limit, 15, 'connection_limit')
  t.eq(c.max_message_rate, 2, 'max_message_rate')
end)

t.test('outlook.com and yahoo.com', function()
  t.eq(path('outlook.com', 'ip-1').connection_limit, 25, 'outlook connection_limit')
  t.eq(path('outlook.com', 'ip-1').max_message_rate, 5, 'outlook 300/min')
  t.eq(path('yahoo.com', 'ip-3').connection_limit, 10, 'yahoo connection_limit')
end)

t.test('ip-4 is warming up: its own override beats the provider', function()
  local c = path('gmail.com', 'ip-4')
  t.eq(c.max_message_rate, 30 / 60, '30/min')
  t.eq(c.connection_limit, 2, 'two connections')
end)

t.test('an unknown provider gets the defaults', function()
  local c = path('example.net', 'ip-1')
  t.eq(c.connection_limit, 5, 'connection_limit')
  t.eq(c.max_message_rate, 1, '60/min')
  t.eq(c.max_deliveries_per_connection, 100, 'max_deliveries_per_connection')
end)

t.test('the pool weighs ip-4 at a quarter of the others', function()
  local pool = p:fire('get_egress_pool', 'shared')
  local weights = {}
  for _, e in ipairs(pool.entries) do weights[e.name] = e.weight end
  t.eq(weights['ip-1'], 4, 'ip-1')
  t.eq(weights['ip-4'], 1, 'ip-4')
  t.eq(p:fire('get_egress_source', 'ip-2').source_address, '127.0.0.3', 'ip-2 address')
  t.raises(function() p:fire('get_egress_source', 'ip-9') end, 'unknown egress source ip-9',
    'an unknown source is an error')
end)

t.test('every queue uses the shared pool and retries for 3 days', function()
  local q = p:fire('get_queue_config', 'gmail.com', 'acme', '')
  t.eq(q.egress_pool, 'shared', 'egress_pool')
  t.eq(q.max_age, 3 * 86400, 'max_age (seconds)')
end)

t.test('tenant and campaign come from headers and choose the queue', function()
  local msg = t.message { from = 'news@customer.test', to = 'someone@gmail.com',
                          headers = { ['X-Tenant'] = 'acme', ['X-Campaign'] = 'spring' } }
  p:fire('smtp_server_message_received', msg)
  t.eq(msg:get_meta('tenant'), 'acme', 'tenant')
  t.eq(msg:get_meta('campaign'), 'spring', 'campaign')
  t.eq(msg:get_header('X-Tenant'), nil, 'X-Tenant is removed')
  t.eq(msg:queue_name(), 'spring:acme@gmail.com', 'queue name')
end)

t.test('a customer domain is signed by the customer and by the ESP', function()
  local msg = t.message { from = 'news@customer.test', to = 'someone@gmail.com',
                          headers = { From = 'News <news@Customer.Test>', Subject = 'hello' } }
  p:fire('smtp_server_message_received', msg)
  local sigs = t.dkim_signatures(msg)
  t.eq(#sigs, 2, 'two signatures')
  t.eq(sigs[2].d, 'customer.test', 'the customer signs first (its signature ends up second)')
  t.eq(sigs[2].a, 'rsa-sha256', 'rsa-sha256')
  t.eq(sigs[1].d, 'esp.test', 'the ESP signs too')
  t.eq(sigs[1].a, 'ed25519-sha256', 'ed25519-sha256')
  t.eq(msg:get_meta('tenant'), 'default', 'no X-Tenant: tenant default')
end)

t.test('any other From domain gets only the ESP signature', function()
  local msg = t.message { from = 'a@other.test', to = 'someone@yahoo.com' }
  p:fire('smtp_server_message_received', msg)
  local sigs = t.dkim_signatures(msg)
  t.eq(#sigs, 1, 'one signature')
  t.eq(sigs[1].d, 'esp.test', 'by the ESP')
end)
