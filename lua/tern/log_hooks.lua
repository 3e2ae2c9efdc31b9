-- SPDX-License-Identifier: MIT
-- tern.log_hooks: ready-made deliver functions for tern.configure_log_hook.
--
--   local log_hooks = require 'tern.log_hooks'
--   tern.configure_log_hook { name = 'esp', types = { 'Delivery', 'Bounce' },
--     deliver = log_hooks.webhook { url = 'https://hooks.example.com/tern',
--                                   headers = { Authorization = 'Bearer ...' },
--                                   secret = 'shared secret', timeout = '10s' } }
--
-- webhook POSTs each batch as one JSON array (the records exactly as written
-- to the local log, in order) with Content-Type: application/json. With a
-- secret, the header X-Tern-Signature: sha256=<hex HMAC-SHA256 of the body
-- keyed with the secret> lets the receiver check that the body came from
-- this MTA unaltered. Any 2xx answer acknowledges the batch; anything else
-- (or no answer) has it offered again later, so receivers deduplicate on
-- the records' id and type.
local M = {}

M.SIGNATURE_HEADER = 'X-Tern-Signature'

local function check_options(opts)
  if type(opts) ~= 'table' then error('webhook: expects a table of options', 3) end
  for k in pairs(opts) do
    if k ~= 'url' and k ~= 'headers' and k ~= 'secret' and k ~= 'timeout' and k ~= 'insecure' then
      error(("webhook: unknown option '%s'"):format(tostring(k)), 3)
    end
  end
  if type(opts.url) ~= 'string' then error("webhook: option 'url' is required", 3) end
  if opts.headers ~= nil and type(opts.headers) ~= 'table' then
    error("webhook: option 'headers' must be a table of name = value", 3)
  end
  if opts.secret ~= nil and type(opts.secret) ~= 'string' then
    error("webhook: option 'secret' must be a string", 3)
  end
end

-- The signature header's value for body under secret.
function M.signature(secret, body)
  return 'sha256=' .. tern.crypto.hmac_sha256(secret, body)
end

function M.webhook(opts)
  check_options(opts)
  local headers = { ['Content-Type'] = 'application/json' }
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  return function(records, lines)
    local body = '[' .. table.concat(lines, ',') .. ']'
    if opts.secret then headers[M.SIGNATURE_HEADER] = M.signature(opts.secret, body) end
    local res, err = tern.http.request { method = 'POST', url = opts.url, headers = headers,
                                         body = body, timeout = opts.timeout or '30s',
                                         insecure = opts.insecure }
    if res == nil then return false, err end
    if res.status < 200 or res.status > 299 then
      return false, ('%s answered %d'):format(opts.url, res.status)
    end
    return true
  end
end

return M
