-- SPDX-License-Identifier: MIT
-- tern.log_hooks.webhook, tern.crypto.hmac_sha256 and the checks of
-- tern.configure_log_hook's options (the delivery itself: tests/integration/test_log_hooks.py).
local t = require 'tern.testing'
local log_hooks = require 'tern.log_hooks'

tern.on('main', function()
  -- RFC 4231 test case 2, and the signature header's value.
  t.eq(tern.crypto.hmac_sha256('Jefe', 'what do ya want for nothing?'),
       '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'HMAC-SHA256 (RFC 4231 #2)')
  t.eq(log_hooks.signature('Jefe', 'what do ya want for nothing?'),
       'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
       'the signature header carries sha256=<hex>')
  t.eq(log_hooks.SIGNATURE_HEADER, 'X-Tern-Signature', 'the header name')
  t.eq(type(log_hooks.webhook { url = 'http://127.0.0.1:9/', secret = 'x' }), 'function',
       'webhook returns a deliver function')
  t.raises(function() log_hooks.webhook { url = 'http://x/', secrett = 'x' } end,
           "unknown option 'secrett'", 'webhook refuses unknown options')
  t.raises(function() log_hooks.webhook { secret = 'x' } end, "'url' is required",
           'webhook needs a url')

  local deliver = function() return true end
  t.raises(function() tern.configure_log_hook { name = 'a/b', deliver = deliver } end,
           "option 'name' is required", 'a hook name cannot hold a slash')
  t.raises(function() tern.configure_log_hook { name = 'x', types = { 'Delivery' },
                                                filter = function() end, deliver = deliver } end,
           "'types' or 'filter', not both", 'types and filter exclude each other')
  t.raises(function() tern.configure_log_hook { name = 'x', batch_size = 0, deliver = deliver } end,
           "'batch_size' must be", 'batch_size must be positive')
  t.raises(function() tern.configure_log_hook { name = 'x' } end, "'deliver' must be a function",
           'deliver is required')
  t.raises(function() tern.configure_log_hook { name = 'x', deliver = deliver, every = 1 } end,
           "unknown option 'every'", 'unknown options are refused')
  tern.configure_log_hook { name = 'ok', types = { 'Delivery' }, deliver = deliver }
  t.raises(function() tern.configure_log_hook { name = 'ok', deliver = deliver } end,
           'already registered', 'a name is configured once per policy')
  return t.done()
end)
