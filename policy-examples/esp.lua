-- SPDX-License-Identifier: MIT
-- An ESP's outbound MTA: four source IPs in one pool, PowerMTA-style
-- starting points per mailbox provider, tenants and campaigns from headers,
-- and two DKIM signatures per message (the customer's domain and the ESP's).
--
-- Paths and addresses come from the environment so the same file runs in
-- tests: TERN_ESP_DIR (spool, logs, keys; default ./var/esp),
-- TERN_ESP_LISTEN (default 127.0.0.1:2525), TERN_ESP_DNS (default 127.0.0.1:5353),
-- TERN_ESP_SMTP_PORT (the receivers' port, default 25).
local shaping = require 'tern.shaping'
local dkim = require 'tern.dkim'

local dir = os.getenv('TERN_ESP_DIR') or './var/esp'
local listen = os.getenv('TERN_ESP_LISTEN') or '127.0.0.1:2525'

tern.dns.configure { servers = { os.getenv('TERN_ESP_DNS') or '127.0.0.1:5353' }, timeout = '3s' }

tern.on('init', function()
  tern.define_spool { path = dir .. '/spool' }
  tern.configure_local_logs { log_dir = dir .. '/log', max_segment_duration = '5m',
                              meta = { 'tenant', 'campaign' } }
  tern.start_esmtp_listener { listen = listen, hostname = 'mta1.esp.test',
                              relay_hosts = { '127.0.0.0/8', '::1' } }
end)

-- Sources: one IP each, like PowerMTA's VirtualMTAs.
local sources = {
  ['ip-1'] = { source_address = '127.0.0.2', ehlo_domain = 'o1.esp.test' },
  ['ip-2'] = { source_address = '127.0.0.3', ehlo_domain = 'o2.esp.test' },
  ['ip-3'] = { source_address = '127.0.0.4', ehlo_domain = 'o3.esp.test' },
  ['ip-4'] = { source_address = '127.0.0.5', ehlo_domain = 'o4.esp.test' },
}

tern.on('get_egress_source', function(name)
  local s = sources[name]
  if not s then error('unknown egress source ' .. name) end
  return tern.make_egress_source { name = name, source_address = s.source_address,
                                   ehlo_domain = s.ehlo_domain }
end)

-- ip-4 is warming up: it gets a quarter of the weight of the others.
tern.on('get_egress_pool', function(name)
  return tern.make_egress_pool { name = name, entries = {
    { name = 'ip-1', weight = 4 }, { name = 'ip-2', weight = 4 },
    { name = 'ip-3', weight = 4 }, { name = 'ip-4', weight = 1 },
  } }
end)

tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { egress_pool = 'shared', retry_interval = '10m',
                                  max_retry_interval = '4h', max_age = '3d' }
end)

-- Per-IP starting points, as PowerMTA operators use them.
local shape = shaping.new {
  defaults = { connection_limit = 5, max_message_rate = '60/min', max_deliveries_per_connection = 100,
               enable_tls = 'opportunistic',
               smtp_port = tonumber(os.getenv('TERN_ESP_SMTP_PORT') or '25') },
  providers = {
    google    = { mx_suffixes = { '.google.com', '.googlemail.com', '.gmail.test' },
                  connection_limit = 15, max_message_rate = '120/min' },
    microsoft = { mx_suffixes = { '.outlook.com', '.protection.outlook.com', '.outlook.test' },
                  connection_limit = 25, max_message_rate = '300/min' },
    yahoo     = { mx_suffixes = { '.yahoodns.net', '.yahoo.test' },
                  connection_limit = 10, max_message_rate = '100/min' },
  },
  domains = {
    ['gmail.com']   = { connection_limit = 15, max_message_rate = '120/min' },
    ['outlook.com'] = { connection_limit = 25, max_message_rate = '300/min' },
    ['yahoo.com']   = { connection_limit = 10, max_message_rate = '100/min' },
  },
  sources = { ['ip-4'] = { max_message_rate = '30/min', connection_limit = 2 } },
}

tern.on('get_egress_path_config', function(domain, source, site)
  return shape:path(domain, source, site)
end)

local signing = dkim.from_table {
  ['customer.test'] = { selector = 's1', key = dir .. '/keys/s1.customer.test.key' },
  esp = { domain = 'esp.test', selector = 'esp', key = dir .. '/keys/esp.esp.test.key',
          algo = 'ed25519' },
}

tern.on('smtp_server_message_received', function(msg)
  msg:import_x_headers { 'X-Tenant', 'X-Campaign' }
  msg:set_meta('tenant', msg:get_meta('x-tenant') or 'default')
  if msg:get_meta('x-campaign') then msg:set_meta('campaign', msg:get_meta('x-campaign')) end
  msg:remove_header('X-Tenant')
  for _, signer in ipairs(signing:signers_for(msg:from_domain() or '')) do
    msg:dkim_sign(signer)
  end
end)
