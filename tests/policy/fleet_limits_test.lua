-- SPDX-License-Identifier: MIT
-- connection_limit = 'local:N' keeps a path's connection limit per node in fleet mode,
-- through tern.make_egress_path and tern.shaping's tables alike; bad spellings are refused;
-- max_connection_rate takes 'local:' as max_message_rate does.
local t = require 'tern.testing'
local shaping = require 'tern.shaping'

tern.on('main', function()
  local p = tern.make_egress_path { connection_limit = 'local:10' }
  t.eq(p.connection_limit, 10, "'local:10' is 10 connections")
  t.eq(p.connection_limit_local, true, "'local:' marks it this node's")
  p = tern.make_egress_path { connection_limit = 6 }
  t.eq(p.connection_limit_local, nil, 'a number is the fleet-wide limit')
  p = shaping.new { defaults = { connection_limit = 'local:4', max_message_rate = 'local:60/min' } }
    :path('example.net', 'ip-1', 'mx.example.net.')
  t.eq(p.connection_limit, 4, 'shaping tables take the local: spelling')
  t.eq(p.connection_limit_local and p.max_message_rate_local, true, 'both stay per node')
  for _, bad in ipairs({ 'local:0', 'local:', 'local:x', 'local:4x', 'local: 4' }) do
    t.raises(function() tern.make_egress_path { connection_limit = bad } end,
      "connection_limit must be a number of connections, or 'local:N'",
      'refused: ' .. bad)
  end
  p = tern.make_egress_path { max_connection_rate = 'local:120/min' }
  t.eq(p.max_connection_rate, 2, "'local:120/min' is 2 connections a second")
  t.eq(p.max_connection_rate_local, true, "'local:' keeps the connection rate this node's")
  t.eq(tern.make_egress_path { max_connection_rate = '120/min' }.max_connection_rate_local, nil,
    'a rate without local: is the fleet-wide one')
  p = shaping.new { defaults = { max_connection_rate = 'local:6/min' } }
    :path('example.net', 'ip-1', 'mx.example.net.')
  t.eq(p.max_connection_rate_local, true, 'shaping tables keep a local: connection rate')
  t.raises(function() tern.make_egress_path { max_connection_rate = 'local:fast' } end,
    "'local:fast' is not a rate", 'a bad local: rate is refused')
  t.raises(function() tern.make_egress_path { connection_limit = 'ten' } end,
    'connection_limit', 'a word is refused')
  t.raises(function() tern.make_egress_path { connection_limit = 0 } end,
    'connection_limit must be at least 1', 'zero connections are refused')
  return t.done()
end)
