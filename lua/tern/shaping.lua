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
--     return shape:path(domain, site, source)
--   end)
--
-- Settings merge in this order, later ones winning: defaults, the provider
-- whose MX suffix matches a host of the site, the routing domain, the source,
-- and finally `sources[name]` inside the provider or domain entry (a per-IP
-- limit for one provider). Every setting is an option of tern.make_egress_path.
local M = {}

local Shape = {}
Shape.__index = Shape

local function copy_into(dst, src)
  for k, v in pairs(src or {}) do
    if k ~= 'mx_suffixes' and k ~= 'sources' then dst[k] = v end
  end
end

local function ends_with(s, suffix)
  return suffix == '' or s:sub(-#suffix) == suffix
end

-- The provider entry whose suffix matches one of the site's MX hosts ("a.,b.").
local function provider_for(providers, site)
  for _, host in ipairs(site) do
    host = host:lower():gsub('%.$', '')
    for _, p in pairs(providers) do
      for _, suffix in ipairs(p.mx_suffixes or {}) do
        if ends_with(host, suffix:lower():gsub('%.$', '')) then return p end
      end
    end
  end
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
  return setmetatable({ config = config }, Shape)
end

-- The merged settings (a plain table) for a routing domain, site and source.
function Shape:settings(domain, site, source)
  local c = self.config
  local out = {}
  local provider = provider_for(c.providers or {}, split_site(site))
  local dom = (c.domains or {})[(domain or ''):lower()]
  copy_into(out, c.defaults)
  copy_into(out, provider)
  copy_into(out, dom)
  copy_into(out, (c.sources or {})[source])
  copy_into(out, provider and provider.sources and provider.sources[source])
  copy_into(out, dom and dom.sources and dom.sources[source])
  return out
end

-- The answer for get_egress_path_config.
function Shape:path(domain, site, source)
  return tern.make_egress_path(self:settings(domain, site, source))
end

return M
