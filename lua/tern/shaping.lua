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

function M.new(config)
  config = config or {}
  for _, key in ipairs({ 'defaults', 'providers', 'domains', 'sources' }) do
    if config[key] ~= nil and type(config[key]) ~= 'table' then
      error(('tern.shaping.new: %s must be a table'):format(key), 2)
    end
  end
  for name, p in pairs(config.providers or {}) do
    if type(p.mx_suffixes) ~= 'table' or #p.mx_suffixes == 0 then
      error(('tern.shaping.new: provider %s needs mx_suffixes'):format(name), 2)
    end
  end
  -- Where the tables were given, for `tern policy explain` when an entry cannot be located.
  local info = debug.getinfo(2, 'Sl')
  return setmetatable({ config = config,
                        defined_at = { file = info.source:gsub('^@', ''), line = info.currentline } }, Shape)
end

-- Copies one layer's settings into out, noting in origins the table path
-- each came from (e.g. { 'providers', 'google', 'connection_limit' }).
local function merge(out, origins, layer, path)
  for k, v in pairs(layer or {}) do
    if k ~= 'mx_suffixes' and k ~= 'sources' then
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
  return out, origins
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
