-- SPDX-License-Identifier: MIT
-- A policy repository's policy: the code that reads the decisions, while the
-- decisions themselves (which sources, which pools, which limits per
-- provider, which tenants) are data tables under data/. A change in a pull
-- request is then one line in a table, and `tern policy diff` shows its
-- effect on every destination (see docs/policy-review.md).
local shaping = require 'tern.shaping'
local sources = require 'data.sources'
local limits = require 'data.limits'
local tenants = require 'data.tenants'

local listen = os.getenv('TERN_LISTEN') or '0.0.0.0:25'

tern.on('init', function()
  tern.define_spool { path = '/var/spool/tern' }
  tern.configure_local_logs { log_dir = '/var/log/tern', meta = { 'tenant', 'campaign' } }
  tern.start_esmtp_listener { listen = listen, hostname = 'mta1.example.com',
                              relay_hosts = sources.relay_hosts }
end)

-- Only known tenants may send: a typo in an injector's X-Tenant is refused at
-- once instead of landing in a queue nobody watches.
tern.on('smtp_server_message_received', function(msg)
  msg:import_x_headers { 'X-Tenant', 'X-Campaign' }
  local tenant = msg:get_meta('x-tenant') or 'default'
  if not tenants[tenant] then
    tern.reject(550, '5.7.1 unknown tenant ' .. tenant)
  end
  msg:set_meta('tenant', tenant)
  if msg:get_meta('x-campaign') then msg:set_meta('campaign', msg:get_meta('x-campaign')) end
  msg:remove_header('X-Tenant')
end)

tern.on('get_queue_config', function(domain, tenant, campaign)
  local t = tenants[tenant] or tenants.default
  return tern.make_queue_config { egress_pool = t.pool, retry_interval = '10m',
                                  max_retry_interval = '4h', max_age = t.max_age or '3d' }
end)

tern.on('get_egress_source', function(name)
  local s = sources.sources[name]
  if not s then error('unknown egress source ' .. name) end
  return tern.make_egress_source { name = name, source_address = s.address, ehlo_domain = s.ehlo }
end)

tern.on('get_egress_pool', function(name)
  local entries = sources.pools[name]
  if not entries then error('unknown egress pool ' .. name) end
  return tern.make_egress_pool { name = name, entries = entries }
end)

local shape = shaping.new(limits)

tern.on('get_egress_path_config', function(domain, source, site)
  return shape:path(domain, source, site)
end)
