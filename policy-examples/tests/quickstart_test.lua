-- SPDX-License-Identifier: MIT
-- policy-examples/quickstart.lua: tenants from X-Tenant, everything relayed to the smart host.
local t = require 'tern.testing'

local p = t.policy('../quickstart.lua')

t.test('X-Tenant becomes the tenant and leaves the message', function()
  local msg = t.message { from = 'me@example.com', to = 'you@example.net',
                          headers = { ['X-Tenant'] = 'acme', Subject = 'hi' } }
  p:fire('smtp_server_message_received', msg)
  t.eq(msg:get_meta('tenant'), 'acme', 'tenant')
  t.eq(msg:get_header('X-Tenant'), nil, 'header removed')
  t.eq(msg:queue_name(), 'acme@example.net', 'queue')
end)

t.test('without X-Tenant the message joins the domain queue', function()
  local msg = t.message { from = 'me@example.com', to = 'you@example.net' }
  p:fire('smtp_server_message_received', msg)
  t.eq(msg:get_meta('tenant'), nil, 'no tenant')
  t.eq(msg:queue_name(), 'example.net', 'queue')
end)

t.test('every domain goes to the smart host', function()
  local q = p:fire('get_queue_config', 'example.net', '', '')
  t.eq(q.mx_list[1], '127.0.0.1:2526', 'mx_list')
  t.eq(q.retry_interval, 60, 'retry_interval (seconds)')
end)

t.test('init ran (as ternd --check: nothing opened) and paths are the defaults', function()
  t.ok(p:has('init'), 'init handler')
  t.ok(not p:has('get_egress_path_config'), 'no get_egress_path_config')
end)
