-- SPDX-License-Identifier: MIT
-- tern.shaping: per-destination traffic shaping kept as data, answering
-- get_egress_path_config.
--
--   local shaping = require 'tern.shaping'
--   local shape = shaping.new {
--     defaults  = { connection_limit = 10, max_message_rate = '300/min' },
--     providers = {            -- matched by the MX host names of the site
--       google = { mx_suffixes = { '.google.com', '.googlemail.com' },
--                  connection_limit = 15, max_message_rate = '120/min' },
--     },
--     domains   = { ['example.net'] = { enable_tls = 'required' } },
--     sources   = { ['ip-4'] = { max_message_rate = '60/min' } },  -- a warming IP
--   }
--   tern.on('get_egress_path_config', function(domain, source, site)
--     return shape:path(domain, source, site)
--   end)
--
-- Settings merge in this order, later ones winning: defaults, the provider
-- whose MX suffix matches a host of the site (the longest suffix when two
-- providers match), the routing domain, the source,
-- and finally `sources[name]` inside the provider or domain entry (a per-IP
-- limit for one provider). Every setting is an option of tern.make_egress_path.
--
-- Automation: `automation = { rule, ... }` in `defaults` (or at the top
-- level), in a provider or in a domain entry. A rule watches the replies of
-- the paths it applies to (failures, and connection and TLS failures):
--
--   automation = {
--     { regex = { '4\\.7\\.28', 'unusual rate' }, action = 'suspend', duration = '1h' },
--     { regex = 'TSS04', action = { set = { max_message_rate = '30/min', connection_limit = 2 } },
--       duration = '30m', trigger = '3/5m' },
--     { regex = 'S3150', action = 'suspend_source', duration = '4h', recovery = '10m' },
--   }
--
-- A path is watched by its domain's rules, then its provider's, then the
-- rules tern ships for the provider its site belongs to
-- (lua/tern/data/automation.lua: Gmail, Microsoft, Yahoo/AOL, Apple,
-- GMX/WEB.DE, Orange; `automation_defaults = false` leaves them out), then
-- the defaults; the first matching rule is the one that counts. Rules are
-- compiled once when the shaping object is made (once per policy load).
-- Wrap a rule in shaping.rule{...} to have its records name its own line.
local M = {}

local Shape = {}
Shape.__index = Shape

local function ends_with(s, suffix)
  return suffix == '' or s:sub(-#suffix) == suffix
end

local function bare(host)
  return (host:lower():gsub('%.$', ''))
end

-- The provider whose suffix matches a host of the site ("a.,b."). Two
-- providers may both match (".outlook.com" and ".protection.outlook.com"):
-- the longest suffix wins, then the smaller name, so the answer never
-- depends on the order of pairs().
local function provider_for(providers, site)
  local best_name, best_len
  for _, host in ipairs(site) do
    host = bare(host)
    for name, p in pairs(providers) do
      for _, suffix in ipairs(p.mx_suffixes or {}) do
        local s = bare(suffix)
        if ends_with(host, s) and (best_len == nil or #s > best_len
            or (#s == best_len and name < best_name)) then
          best_name, best_len = name, #s
        end
      end
    end
  end
  return best_name, best_name and providers[best_name]
end

local function split_site(site)
  local hosts = {}
  for h in (site or ''):gmatch('[^,]+') do hosts[#hosts + 1] = h end
  return hosts
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local rule_keys = { regex = true, action = true, duration = true, trigger = true,
                    recovery = true, file = true, line = true }

-- Compile one layer's rules (list at `where`) into the Lua state's rule set: their indexes.
local function compile_rules(list, where, defined_at, mx_suffixes)
  local ids = {}
  if list == nil then return ids end
  if type(list) ~= 'table' then
    error(('tern.shaping.new: %s must be a list of rules'):format(where), 4)
  end
  for i, rule in ipairs(list) do
    if type(rule) ~= 'table' then
      error(('tern.shaping.new: %s[%d] must be a table'):format(where, i), 4)
    end
    local def = { scope = ('%s[%d]'):format(where, i), mx_suffixes = mx_suffixes,
                  file = defined_at.file, line = defined_at.line }
    for k, v in pairs(rule) do
      if not rule_keys[k] then
        error(('tern.shaping.new: %s[%d]: unknown key %s'):format(where, i, tostring(k)), 4)
      end
      def[k] = v
    end
    ids[#ids + 1] = tern.shaping_state.rule(def)
  end
  return ids
end

local SHIPPED = 'tern/data/automation.lua'

-- The line of each shipped rule, by provider ({ google = { 38, 42, ... } }): the data file
-- starts each provider's entry as `  name = {` and each rule as `{ regex =`.
local function shipped_lines()
  local path = package.searchpath and package.searchpath('tern.data.automation', package.path)
  local lines, provider, n = {}, nil, 0
  local f = path and io.open(path)
  if not f then return lines end
  for line in f:lines() do
    n = n + 1
    provider = line:match('^  ([%w_]+) = {') or provider
    if provider and line:find('{ regex =', 1, true) then
      lines[provider] = lines[provider] or {}
      table.insert(lines[provider], n)
    end
  end
  f:close()
  return lines
end

-- The rules tern ships, by provider: { name = { mx_suffixes, ids } }; each names its line.
local function compile_shipped()
  local shipped, out, lines = require 'tern.data.automation', {}, shipped_lines()
  for _, name in ipairs(sorted_keys(shipped)) do
    local p, rules = shipped[name], {}
    for i, rule in ipairs(p.automation or {}) do
      local r = { file = SHIPPED, line = (lines[name] or {})[i] or 0 }
      for k, v in pairs(rule) do r[k] = v end
      rules[i] = r
    end
    out[name] = { mx_suffixes = p.mx_suffixes,
                  ids = compile_rules(rules, 'automation_defaults.' .. name,
                                      { file = SHIPPED, line = 0 }, p.mx_suffixes) }
  end
  return out
end

-- Every layer's rules, compiled: { default = ids, providers = { name = ids }, domains = { ... },
-- shipped = { name = { mx_suffixes, ids } } }.
local function compile_automation(c, defined_at)
  local auto = { providers = {}, domains = {}, shipped = {} }
  if not (tern and tern.shaping_state) then return auto end
  if c.automation_defaults ~= false then auto.shipped = compile_shipped() end
  auto.default = compile_rules(c.automation, 'automation', defined_at)
  for _, id in ipairs(compile_rules((c.defaults or {}).automation, 'defaults.automation',
                                    defined_at)) do
    auto.default[#auto.default + 1] = id
  end
  for _, name in ipairs(sorted_keys(c.providers)) do
    local p = c.providers[name]
    auto.providers[name] = compile_rules(p.automation, 'providers.' .. name .. '.automation',
                                         defined_at, p.mx_suffixes)
  end
  for _, name in ipairs(sorted_keys(c.domains)) do
    auto.domains[name:lower()] = compile_rules(c.domains[name].automation,
                                               'domains.' .. name .. '.automation', defined_at)
  end
  return auto
end

-- shaping.rule{...}: the rule, marked with the line that wrote it (for its records).
function M.rule(t)
  local info = debug.getinfo(2, 'Sl')
  t.file, t.line = info.source:gsub('^@', ''), info.currentline
  return t
end

function M.new(config)
  config = config or {}
  for _, key in ipairs({ 'defaults', 'providers', 'domains', 'sources' }) do
    if config[key] ~= nil and type(config[key]) ~= 'table' then
      error(('tern.shaping.new: %s must be a table'):format(key), 2)
    end
  end
  if config.automation_defaults ~= nil and type(config.automation_defaults) ~= 'boolean' then
    error('tern.shaping.new: automation_defaults must be true or false', 2)
  end
  for name, p in pairs(config.providers or {}) do
    if type(p.mx_suffixes) ~= 'table' or #p.mx_suffixes == 0 then
      error(('tern.shaping.new: provider %s needs mx_suffixes'):format(name), 2)
    end
  end
  -- Where the tables were given, for `tern policy explain` when an entry cannot be located.
  local info = debug.getinfo(2, 'Sl')
  local defined_at = { file = (info.source:gsub('^@', '')), line = info.currentline }
  return setmetatable({ config = config, defined_at = defined_at,
                        automation = compile_automation(config, defined_at) }, Shape)
end

-- Copies one layer's settings into out, noting in origins the table path
-- each came from (e.g. { 'providers', 'google', 'connection_limit' }).
local function merge(out, origins, layer, path)
  for k, v in pairs(layer or {}) do
    if k ~= 'mx_suffixes' and k ~= 'sources' and k ~= 'automation' then
      out[k] = v
      local p = { unpack(path) }
      p[#p + 1] = k
      origins[k] = p
    end
  end
end

-- The name of the provider matching a site, or nil.
function Shape:provider(site)
  return (provider_for(self.config.providers or {}, split_site(site)))
end

-- The merged settings (a plain table) for a routing domain, source and site,
-- and for each setting the path of the table entry it came from.
function Shape:settings(domain, source, site)
  local c = self.config
  local out, origins = {}, {}
  local pname, provider = provider_for(c.providers or {}, split_site(site))
  local dname = (domain or ''):lower()
  local dom = (c.domains or {})[dname]
  merge(out, origins, c.defaults, { 'defaults' })
  merge(out, origins, provider, { 'providers', pname })
  merge(out, origins, dom, { 'domains', dname })
  merge(out, origins, (c.sources or {})[source], { 'sources', source })
  merge(out, origins, provider and provider.sources and provider.sources[source],
    { 'providers', pname, 'sources', source })
  merge(out, origins, dom and dom.sources and dom.sources[source], { 'domains', dname, 'sources', source })
  local ids, origin = self:rules(pname, dname, site)
  if #ids > 0 then out.automation, origins.automation = ids, origin end
  return out, origins
end

-- The automation rule indexes watching a path: the domain's, the provider's, the ones tern
-- ships for the site's provider, the defaults'; and the table path of the first of those
-- lists (for `tern policy explain`).
function Shape:rules(pname, dname, site)
  local a, ids, origin = self.automation, {}, nil
  local sname, shipped = provider_for(a.shipped, split_site(site))
  local layers = {
    { a.domains[dname], { 'domains', dname, 'automation' } },
    { pname and a.providers[pname], { 'providers', pname, 'automation' } },
    { shipped and shipped.ids, { 'automation_defaults', sname } },
    { a.default, { 'defaults', 'automation' } },
  }
  for _, layer in ipairs(layers) do
    for _, id in ipairs(layer[1] or {}) do
      ids[#ids + 1] = id
      origin = origin or layer[2]
    end
  end
  return ids, origin
end

-- Set by `tern policy explain` to learn where each setting of an answer came from.
M.observer = nil

-- The answer for get_egress_path_config, with the hook's argument order.
function Shape:path(domain, source, site)
  local settings, origins = self:settings(domain, source, site)
  if M.observer then M.observer(self, settings, origins) end
  return tern.make_egress_path(settings)
end

return M
