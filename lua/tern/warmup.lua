-- SPDX-License-Identifier: MIT
-- tern.warmup: IP warm-up schedules as data. A warming source sends at most
-- its stage's cap per period (a day); source selection skips it at the cap,
-- so the pool's other sources take the rest, and with none the messages
-- wait for the next period. Its ramp pauses by itself when its hard-bounce
-- or complaint rate goes wrong (a WarmupPaused record), until an operator
-- resumes it (tern.warmup.resume(source), or POST /api/admin/warmup-resume/v1).
--
--   local warmup = require 'tern.warmup'
--   local plan = warmup.new {
--     sources = {
--       ['ip-4'] = { start = '2026-12-01', stages = { '200/day', '500/day', '1000/day' } },
--       ['ip-5'] = { start = '2026-12-01', first = '200/day', growth = 1.15, every = '1d',
--                    max = '50000/day', providers = { google = '1000/day' } },
--     },
--     max_bounce_rate = '1.5%', max_complaint_rate = '0.15%', window = '1d',
--     min_messages = 100,
--   }
--   tern.on('init', function() plan:apply() end)
--
-- A stage lasts `every` (default '1d'); a cap is written per day (or /hour,
-- /week) and counted per stage. Before `start` a warming source sends
-- nothing; after the last stage (or once a growth rule reaches `max`) it is
-- warm and no longer capped. `providers` caps the messages to one provider
-- (a name of tern.data.providers, matched by the domain its MX hosts share:
-- google -> google.com, yahoo -> yahoodns.net, which AOL shares) or
-- `{ mx_suffix = '.example.net', cap = '100/day' }`.
--
-- The rates are judged over the rolling `window` once it holds
-- `min_messages` outcomes: hard bounces / (deliveries + hard bounces), and
-- complaints (Feedback records) / deliveries.
--
-- For tests only: `time_scale = 8640` makes every period and the window
-- 8640 times shorter (a day lasts 10 seconds); `start` may then be a number
-- (Unix time).
local providers = require 'tern.data.providers'

local M = {}

local Plan = {}
Plan.__index = Plan

local PER = { day = 86400, d = 86400, hour = 3600, h = 3600, week = 604800 }

local PLAN_KEYS = { start = true, stages = true, first = true, growth = true, every = true,
                    max = true, providers = true }
local TOP_KEYS = { sources = true, max_bounce_rate = true, max_complaint_rate = true,
                   window = true, min_messages = true, time_scale = true }

-- Seconds in a duration: a number, or '30s', '5m', '12h', '1d', '1w'.
local UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }
local function duration(v)
  if type(v) == 'number' then return v end
  local n, u = tostring(v):match('^(%d+%.?%d*)(%a)$')
  return n and UNITS[u] and tonumber(n) * UNITS[u] or nil
end

-- Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm): no time zone involved.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Unix time of 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SSZ' (UTC), or a number.
local function start_time(v)
  if type(v) == 'number' then return v end
  local y, mo, d, rest = tostring(v):match('^(%d%d%d%d)-(%d%d)-(%d%d)(.*)$')
  if not y then return nil end
  local h, mi, s = 0, 0, 0
  if rest ~= '' then
    h, mi, s = rest:match('^T(%d%d):(%d%d):(%d%d)Z$')
    if not h then return nil end
  end
  return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + h * 3600 + mi * 60 + s
end

-- Messages per `every` seconds from '200/day' (or a number: per stage already).
local function cap_of(v, every)
  if type(v) == 'number' then return v end
  local n, per = tostring(v):match('^(%d+)%s*/%s*(%a+)$')
  if not n or not PER[per] then return nil end
  return math.floor(tonumber(n) * every / PER[per])
end

local function fraction(v)
  if type(v) == 'number' then return v end
  local n = tostring(v):match('^(%d+%.?%d*)%%$')
  return n and tonumber(n) / 100 or nil
end

-- The domain a provider's MX hosts share, by its last two labels.
local function provider_suffix(name)
  local p = providers[name]
  if not p then return nil end
  return '.' .. p.mx[1]:match('([^.]+%.[^.]+)%.?$')
end

local function check_keys(t, allowed, what, fail)
  for k in pairs(t) do
    if not allowed[k] then fail(("unknown option '%s' for %s"):format(tostring(k), what)) end
  end
end

local function provider_caps(name, spec, every, fail)
  local out = {}
  for pname, v in pairs(spec.providers or {}) do
    local cap_text, suffix = v, provider_suffix(pname)
    if type(v) == 'table' then cap_text, suffix = v.cap, v.mx_suffix or suffix end
    local cap = cap_of(cap_text, every)
    if not suffix then fail(("source %s: unknown provider '%s' (give mx_suffix)"):format(name, pname)) end
    if not cap then fail(("source %s: provider %s: cap '%s' is not 'N/day'"):format(name, pname, tostring(cap_text))) end
    out[#out + 1] = { name = pname, suffix = suffix, cap = cap }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- One source's schedule as the engine reads it (tern.warmup.configure's plans).
local function engine_plan(name, spec, scale, fail)
  if type(spec) ~= 'table' then fail(('source %s: the schedule must be a table'):format(name)) end
  check_keys(spec, PLAN_KEYS, 'a warm-up schedule', fail)
  local every = duration(spec.every or '1d')
  if not every or every <= 0 then fail(('source %s: every must be a duration'):format(name)) end
  local start = start_time(spec.start)
  if not start then
    fail(("source %s: start '%s' is not a date ('2026-12-01')"):format(name, tostring(spec.start)))
  end
  local p = { source = name, start = start, period = every / scale,
              providers = provider_caps(name, spec, every, fail) }
  if spec.stages then
    if spec.first or spec.growth then fail(('source %s: give stages or first/growth, not both'):format(name)) end
    p.caps = {}
    for i, s in ipairs(spec.stages) do
      p.caps[i] = cap_of(s, every) or fail(("source %s: stage %d '%s' is not 'N/day'"):format(name, i, tostring(s)))
    end
    if #p.caps == 0 then fail(('source %s: stages is empty'):format(name)) end
  else
    p.first = cap_of(spec.first, every)
    p.growth = tonumber(spec.growth)
    if not p.first or not p.growth or p.growth < 1 then
      fail(('source %s: needs stages, or first = N/day and growth >= 1'):format(name))
    end
    if spec.max then p.max = cap_of(spec.max, every) or fail(('source %s: max is not N/day'):format(name)) end
  end
  return p
end

function M.new(config)
  local info = debug.getinfo(2, 'Sl')
  local where = ('%s:%d'):format(info.source:gsub('^@', ''), info.currentline)
  local function fail(msg) error(('%s: tern.warmup: %s'):format(where, msg), 0) end
  if type(config) ~= 'table' then fail('takes a table') end
  check_keys(config, TOP_KEYS, 'tern.warmup.new', fail)
  local scale = tonumber(config.time_scale or 1)
  if not scale or scale <= 0 then fail('time_scale must be a positive number') end
  local engine = { plans = {}, min_messages = config.min_messages }
  if engine.min_messages ~= nil and (type(engine.min_messages) ~= 'number' or engine.min_messages < 1) then
    fail('min_messages must be a number of 1 or more')
  end
  for _, key in ipairs({ 'max_bounce_rate', 'max_complaint_rate' }) do
    if config[key] ~= nil then
      engine[key] = fraction(config[key]) or fail(("%s '%s' is not a percentage"):format(key, tostring(config[key])))
    end
  end
  if config.window ~= nil then
    engine.window = (duration(config.window) or fail('window must be a duration')) / scale
  else
    engine.window = 86400 / scale
  end
  local names = {}
  for name in pairs(config.sources or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    engine.plans[#engine.plans + 1] = engine_plan(name, config.sources[name], scale, fail)
  end
  local plan = setmetatable({ config = config, engine = engine, defined_at = where }, Plan)
  if M.observer then M.observer(plan) end
  return plan
end

-- Set by `tern policy explain` to find the plans a policy defines.
M.observer = nil

-- Hand the plans to the engine (in init: a reload replaces them; stages, counts and pauses stay).
function Plan:apply()
  tern.warmup.configure(self.engine)
end

-- Whether source warms up under this plan.
function Plan:has(source)
  return (self.config.sources or {})[source] ~= nil
end

return M
