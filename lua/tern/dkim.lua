-- SPDX-License-Identifier: MIT
-- tern.dkim (the Lua half): DKIM signing configuration kept as data in git.
--
--   local dkim = require 'tern.dkim'
--   local signing = dkim.from_table {
--     ['example.com'] = { selector = 's1', key = '/etc/tern/dkim/example.com.key' },
--     ['example.org'] = { selector = 'e1', key = '/etc/tern/dkim/example.org.key',
--                         algo = 'ed25519', expiration = '7d' },
--     -- optional: every message also gets the ESP's own signature
--     esp = { domain = 'esp.example', selector = 'esp', key = '/etc/tern/dkim/esp.key' },
--   }
--
--   tern.on('smtp_server_message_received', function(msg)
--     for _, signer in ipairs(signing:signers_for(msg:from_domain() or '')) do msg:dkim_sign(signer) end
--   end)
--
-- Each entry takes algo = 'rsa' (default, rsa-sha256) or 'ed25519' (ed25519-sha256)
-- and any option of tern.dkim.rsa_sha256_signer / ed25519_signer; the table key is
-- the signing domain (d=). Domains match case-insensitively and exactly: a
-- subdomain needs its own entry. Signers are created on first use and then
-- reused; the keys themselves are parsed once per process by the C core.
local M = {}

local constructors = { rsa = 'rsa_sha256_signer', ed25519 = 'ed25519_signer' }

local Signing = {}
Signing.__index = Signing

local function check_entry(name, entry)
  if type(entry) ~= 'table' then
    error(('tern.dkim.from_table: entry %s must be a table'):format(name), 3)
  end
  if type(entry.selector) ~= 'string' or type(entry.key) ~= 'string' then
    error(('tern.dkim.from_table: entry %s needs selector and key strings'):format(name), 3)
  end
  if entry.algo ~= nil and not constructors[entry.algo] then
    error(("tern.dkim.from_table: entry %s: algo must be 'rsa' or 'ed25519'"):format(name), 3)
  end
end

-- The options for tern.dkim.*_signer: the entry without algo, with its domain.
local function make_signer(domain, entry)
  local opts = {}
  for k, v in pairs(entry) do
    if k ~= 'algo' then opts[k] = v end
  end
  opts.domain = domain
  return tern.dkim[constructors[entry.algo or 'rsa']](opts)
end

-- Build a signing table from { [domain] = entry, ..., esp = entry with domain }.
-- Entries are checked now; keys are loaded when a domain is first signed for.
function M.from_table(config)
  local self = setmetatable({ entries = {}, lists = {} }, Signing)
  for name, entry in pairs(config) do
    check_entry(name, entry)
    if name == 'esp' then
      if type(entry.domain) ~= 'string' then
        error('tern.dkim.from_table: esp needs a domain', 2)
      end
      self.esp = entry
    else
      self.entries[name:lower()] = entry
    end
  end
  return self
end

function Signing:esp_signer()
  if self.esp and not self.esp_cached then
    local entry = self.esp
    self.esp_cached = make_signer(entry.domain, entry)
  end
  return self.esp_cached
end

-- The signers to apply for mail from from_domain: its own (when configured),
-- then the ESP's (when configured and not the same domain). The list is
-- shared between calls: do not modify it.
function Signing:signers_for(from_domain)
  local domain = from_domain and from_domain:lower() or ''
  local list = self.lists[domain]
  if list then return list end
  local entry = self.entries[domain]
  if not entry then
    self.no_own = self.no_own or { self:esp_signer() }
    return self.no_own
  end
  list = { make_signer(domain, entry) }
  if self.esp and self.esp.domain:lower() ~= domain then
    list[2] = self:esp_signer()
  end
  self.lists[domain] = list
  return list
end

return M
