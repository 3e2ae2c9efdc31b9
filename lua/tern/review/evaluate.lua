-- SPDX-License-Identifier: MIT
-- tern.review.evaluate: a policy's decisions for one destination, offline.
--
-- The policy file is loaded into its own environment in which tern.on only
-- collects handlers (so `init` never runs and nothing is opened) and the
-- tern.make_* constructors note what the policy wrote and where. Then the
-- config hooks are called as the engine calls them, with the site taken
-- from --mx or from tern.data.providers instead of DNS. Several policies
-- (two revisions, for `tern policy diff`) can be loaded into one Lua state:
-- the modules each one requires from its own directory are forgotten after
-- it loads.
local shaping = require 'tern.shaping'
local providers = require 'tern.data.providers'
local srcindex = require 'tern.review.srcindex'
local automation = require 'tern.review.automation'

local M = {}

M.path_fields = { 'connection_limit', 'max_message_rate', 'max_connection_rate',
                  'max_deliveries_per_connection', 'enable_tls', 'smtp_port', 'connect_timeout',
                  'banner_timeout', 'ehlo_timeout', 'mail_timeout', 'rcpt_timeout', 'data_timeout',
                  'idle_timeout', 'ehlo_domain' }

-- A number of seconds as a policy would write it: '5m', not 300.
local function duration_text(secs)
  for _, u in ipairs({ { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' } }) do
    if secs >= u[1] and secs % u[1] == 0 then return (secs / u[1]) .. u[2] end
  end
  return secs .. 's'
end

-- A per-second rate as a policy would write it; 0 is no limit.
local function rate_text(per_sec)
  if per_sec == 0 then return 'none' end
  if per_sec * 60 == math.floor(per_sec * 60) then return (per_sec * 60) .. '/min' end
  return per_sec .. '/s'
end

local DURATIONS = { retry_interval = true, max_retry_interval = true, max_age = true,
                    connect_timeout = true, banner_timeout = true, ehlo_timeout = true,
                    mail_timeout = true, rcpt_timeout = true, data_timeout = true,
                    idle_timeout = true }
local RATES = { max_message_rate = true, max_connection_rate = true }

-- The engine's own defaults (queue_config_defaults, egress_path_defaults), written as text.
local function as_written(engine)
  local out = {}
  for k, v in pairs(engine) do
    out[k] = DURATIONS[k] and duration_text(v) or RATES[k] and rate_text(v) or v
  end
  return out
end

M.queue_defaults = as_written(tern.queue_config_defaults())
M.queue_defaults.mx_list = 'none'
M.path_defaults = as_written(tern.egress_path_defaults())
M.path_defaults.ehlo_domain = '(the source)'

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = type(v) == 'table' and copy(v) or v end
  return out
end

local function dir_of(path)
  return path:match('^(.*)/[^/]*$') or '.'
end

-- tern.make_* that records a copy of what the policy wrote, before the real
-- constructor normalises it (rates to numbers). Where it was written is
-- found later in the source (M:written_at): a hook's `return
-- tern.make_x{...}` is a tail call, which leaves no frame to ask.
local function recorder(ev, name, real)
  return function(opts)
    ev.written = { values = type(opts) == 'table' and copy(opts) or opts, name = name }
    return real(opts)
  end
end

local function sandbox(ev)
  local t = setmetatable({
    on = function(event, fn) ev.handlers[event] = fn end,
    make_queue_config = recorder(ev, 'make_queue_config', tern.make_queue_config),
    make_egress_pool = recorder(ev, 'make_egress_pool', tern.make_egress_pool),
    make_egress_path = recorder(ev, 'make_egress_path', tern.make_egress_path),
  }, { __index = tern })
  local env = setmetatable({ tern = t }, { __index = _G })
  env.require = function(name)
    local file = package.searchpath and package.searchpath(name, package.path)
    if file and file:sub(1, #ev.dir + 1) == ev.dir .. '/' then ev.files[#ev.files + 1] = file end
    return require(name)
  end
  return env
end

-- Notes each automation rule tern.shaping compiles while a policy loads, by
-- its index (the engine keeps no copy a reviewer could read back).
local function record_rules(ev)
  local state = tern.shaping_state
  if not state then return function() end end
  local real = state.rule
  state.rule = function(def)
    local id = real(def)
    ev.rules[id] = copy(def)
    return id
  end
  return function() state.rule = real end
end

-- Load a policy file, named `name` in messages and provenance (default:
-- path). Returns the evaluator or nil and "NAME:LINE: message".
function M.load(path, name)
  name = name or path
  local ev = setmetatable({ file = name, dir = dir_of(path), handlers = {}, files = { name },
                            real = { [name] = path }, index = {}, rules = {} }, { __index = M })
  local saved_path, before = package.path, {}
  local restore_rules = record_rules(ev)
  for k in pairs(package.loaded) do before[k] = true end
  package.path = ev.dir .. '/?.lua;' .. ev.dir .. '/?/init.lua;' .. package.path
  local f, err = io.open(path, 'r')
  local chunk
  if f then
    chunk, err = loadstring(f:read('*a'), '@' .. name)
    f:close()
  end
  local ok = chunk ~= nil
  if ok then
    setfenv(chunk, sandbox(ev))
    ok, err = pcall(chunk)
  end
  package.path = saved_path
  restore_rules()
  for k in pairs(package.loaded) do
    if not before[k] then package.loaded[k] = nil end
  end
  if not ok then return nil, tostring(err) end
  return ev
end

-- Domain name -> provider name and its MX hosts, from tern.data.providers.
local by_domain
function M.provider_of(domain)
  if not by_domain then
    by_domain = {}
    for name, p in pairs(providers) do
      for _, d in ipairs(p.domains) do by_domain[d] = name end
    end
  end
  local name = by_domain[domain]
  return name, name and providers[name].mx
end

-- The site tern would form from MX hosts: "a.,b.".
function M.site_of(hosts)
  local out = {}
  for _, h in ipairs(hosts) do out[#out + 1] = (h:lower():gsub('%.?$', '.')) end
  return table.concat(out, ',')
end

function M:indexed(file)
  if not self.index[file] then self.index[file] = srcindex.index_file(self.real[file] or file) end
  return self.index[file]
end

-- "file:line" of the tern.make_* call inside the handler that answered, or
-- of the handler itself when the call is in a helper elsewhere.
function M:written_at(fn)
  local info = debug.getinfo(fn, 'S')
  local file = info.source:gsub('^@', '')
  local line = srcindex.call_line(self:indexed(file), self.written.name, info.linedefined,
    info.lastlinedefined)
  return ('%s:%d'):format(file, line or info.linedefined)
end

function M:call(event, ...)
  local fn = self.handlers[event]
  self.written = nil
  if not fn then return nil end
  local ok, res = pcall(fn, ...)
  if not ok then error(('%s failed: %s'):format(event, tostring(res)), 0) end
  if self.written then self.written.at = self:written_at(fn) end
  return res
end

function M:queue_config(domain, tenant, campaign)
  local values, of = copy(M.queue_defaults), {}
  for k in pairs(values) do of[k] = 'default' end
  self:call('get_queue_config', domain, tenant or '', campaign or '', domain)
  for k, v in pairs(self.written and self.written.values or {}) do
    values[k], of[k] = v, self.written.at
  end
  return values, of
end

function M:egress_pool(name)
  local pool = { name = name, entries = { { name = name, weight = 1 } } }
  if self:call('get_egress_pool', name) and self.written then
    pool = { name = self.written.values.name, entries = {} }
    for _, e in ipairs(self.written.values.entries) do
      pool.entries[#pool.entries + 1] = { name = e.name, weight = e.weight or 1 }
    end
    pool.at = self.written.at
  end
  return pool
end

function M:locate(shape, origin)
  for _, f in ipairs(self.files) do self:indexed(f) end
  return srcindex.locate(self.index, self.files, origin)
      or ('%s:%d'):format(shape.defined_at.file, shape.defined_at.line)
end

-- One source's path config: the values and where each came from.
function M:path(domain, source, site)
  local values, of, seen = {}, {}, nil
  shaping.observer = function(shape, settings, origins) seen = { shape, copy(settings), origins } end
  local ok, err = pcall(self.call, self, 'get_egress_path_config', domain, source, site)
  shaping.observer = nil
  if not ok then error(err, 0) end
  for _, f in ipairs(M.path_fields) do values[f], of[f] = M.path_defaults[f], 'default' end
  if seen then
    self.matched_provider = seen[1]:provider(site)
    for k, v in pairs(seen[2]) do values[k], of[k] = v, self:locate(seen[1], seen[3][k]) end
    if values.automation then values.automation = automation.describe(self, seen[1], values.automation) end
  elseif self.written then
    for k, v in pairs(self.written.values) do values[k], of[k] = v, self.written.at end
    if type(values.automation) == 'table' then
      values.automation = automation.describe(self, nil, values.automation)
    end
  end
  return values, of
end

-- Every decision for a destination. opts: tenant, campaign, source, mx (list).
function M:explain(domain, opts)
  domain = domain:lower()
  local r = { domain = domain, paths = {}, sources_of = {} }
  r.provider, r.mx = M.provider_of(domain)
  if opts.mx then r.mx, r.provider = opts.mx, nil end
  r.site = M.site_of(r.mx or {})
  r.queue = ('%s%s%s'):format(opts.campaign and opts.campaign .. ':' or '',
    opts.tenant and opts.tenant .. '@' or '', domain)
  r.queue_config, r.queue_config_of = self:queue_config(domain, opts.tenant, opts.campaign)
  r.egress_pool = self:egress_pool(r.queue_config.egress_pool)
  local sources = {}
  for _, e in ipairs(r.egress_pool.entries) do sources[#sources + 1] = e.name end
  if opts.source then sources = { opts.source } end
  self.matched_provider = nil
  for _, s in ipairs(sources) do
    r.paths[s], r.sources_of[s] = self:path(domain, s, r.site)
  end
  r.shaping_provider = self.matched_provider
  return r
end

-- The domain names a policy writes (table keys, strings in hooks).
function M:named_domains()
  local out, seen = {}, {}
  for _, f in ipairs(self.files) do
    for _, s in ipairs(self:indexed(f).strings) do
      s = s:lower()
      -- A string naming a Lua module ('tern.shaping') is no domain.
      if s:match('^[%w][%w%-%.]*%.%a%a+$') and not seen[s]
          and not package.searchpath(s, package.path) then
        seen[s] = true
        out[#out + 1] = s
      end
    end
  end
  return out
end

return M
