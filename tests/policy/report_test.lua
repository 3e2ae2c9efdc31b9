-- SPDX-License-Identifier: MIT
-- The options of bounce and complaint handling: tern.configure_trace_header's secret and
-- make_queue_config's dsn, each refused with a message naming the option when wrong.
local t = require 'tern.testing'

tern.on('main', function(args)
  t.raises(function() tern.configure_trace_header { secret = 'short' } end,
    "option 'secret' must be 16 to 256 bytes", 'a short secret is refused')
  t.raises(function() tern.configure_trace_header { secret = ('x'):rep(257) } end,
    "option 'secret' must be 16 to 256 bytes", 'a long secret is refused')
  t.raises(function() tern.configure_trace_header {} end,
    "option 'secret' must be 16 to 256 bytes", 'the secret is required')
  t.raises(function() tern.configure_trace_header { secret = ('x'):rep(16), key = 1 } end,
    "unknown option 'key' for tern.configure_trace_header", 'unknown options are refused')
  local ok = pcall(tern.configure_trace_header, { secret = ('x'):rep(16) })
  t.ok(ok, 'a 16-byte secret is taken')

  t.raises(function() tern.make_queue_config { dsn = 'yes' } end,
    "option 'dsn' must be true or false", 'dsn is a boolean')
  t.ok(pcall(tern.make_queue_config, { dsn = true }), 'dsn = true is taken')
  return t.done()
end)
