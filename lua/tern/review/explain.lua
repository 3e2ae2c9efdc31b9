-- SPDX-License-Identifier: MIT
-- `tern policy explain --policy FILE --domain D [--tenant T] [--campaign C]
-- [--source S] [--mx HOST,...] [--json]`: run by `ternd --script`, prints the
-- effective decisions for one destination and where each value came from.
local evaluate = require 'tern.review.evaluate'
local args = require 'tern.review.args'
local warmup = require 'tern.warmup'
local automation = require 'tern.review.automation'

local USAGE = 'usage: tern policy explain --policy FILE --domain D [--tenant T] [--campaign C]\n'
  .. '                           [--source S] [--mx HOST,...] [--json]'

local function show(v)
  if type(v) == 'table' then return table.concat(v, ',') end
  return tostring(v)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function print_fields(values, of, order)
  for _, k in ipairs(order or sorted_keys(values)) do
    print(('  %-30s %-24s %s'):format(k, show(values[k]), of[k]))
  end
end

-- Each warming path source's stage and cap today, by the engine's own arithmetic on the plan
-- (offline, so by the calendar: a pause lives in the daemon, GET /api/admin/warmup/v1).
local function warmup_of(plans, sources)
  local out = {}
  for _, plan in ipairs(plans) do
    for _, s in ipairs(sources) do
      if plan:has(s) then
        plan:apply()
        local st = tern.warmup.state(s)
        local spec = plan.config.sources[s]
        out[s] = { stage = st.stage, cap = st.cap, every = spec.every or '1d',
                   stages = spec.stages and #spec.stages or nil, at = plan.defined_at }
      end
    end
  end
  return out
end

local function warmup_text(w)
  if w.stage < 0 then return ('warm-up not started: sends nothing yet  %s'):format(w.at) end
  if w.cap < 0 then return ('warm-up done: no cap  %s'):format(w.at) end
  -- Counted from 1 here, for people; the engine, the API and --json count from 0.
  return ('warm-up stage %d%s: cap %d per %s  %s'):format(w.stage + 1,
    w.stages and (' of %d'):format(w.stages) or '', w.cap, w.every, w.at)
end

-- The rules watching a path's replies, in the order the engine checks them.
local function print_automation(rules)
  if not rules or #rules == 0 then return end
  print('  automation (checked in this order; the first matching rule acts)')
  for i, rule in ipairs(rules) do
    print(('    %d. %s'):format(i, automation.text(rule)))
    print(('       %s  %s'):format(rule.scope, rule.at))
  end
end

local function print_text(r)
  print(('domain %s'):format(r.domain))
  print(('site   %s%s'):format(r.site ~= '' and r.site or '(unknown: give --mx)',
    r.provider and (' (provider data: %s)'):format(r.provider) or ''))
  if r.shaping_provider then print(('shaping provider %s (by MX suffix)'):format(r.shaping_provider)) end
  print(('queue  %s'):format(r.queue))
  print('queue_config')
  print_fields(r.queue_config, r.queue_config_of)
  local entries = {}
  for _, e in ipairs(r.egress_pool.entries) do entries[#entries + 1] = ('%s (%d)'):format(e.name, e.weight) end
  print(('egress_pool %s: %s  %s'):format(r.egress_pool.name, table.concat(entries, ', '),
    r.egress_pool.at or 'default'))
  for _, s in ipairs(sorted_keys(r.paths)) do
    print(('path %s'):format(s))
    if r.warmup[s] then print('  ' .. warmup_text(r.warmup[s])) end
    print_fields(r.paths[s], r.sources_of[s], evaluate.path_fields)
    print_automation(r.paths[s].automation)
  end
end

local function json_of(r)
  return tern.json.encode {
    queue = r.queue, queue_config = r.queue_config,
    egress_pool = { name = r.egress_pool.name, entries = r.egress_pool.entries },
    paths = r.paths, sources_of = r.sources_of, warmup = r.warmup,
  }
end

tern.on('main', function(argv)
  local o, err = args.parse(argv, { policy = true, domain = true, tenant = true, campaign = true,
                                    source = true, mx = true, json = false })
  if not o or not o.policy or not o.domain then
    io.stderr:write((err and err .. '\n' or '') .. USAGE .. '\n')
    return 2
  end
  local plans = {}
  warmup.observer = function(plan) plans[#plans + 1] = plan end
  local ev, lerr = evaluate.load(o.policy)
  warmup.observer = nil
  if not ev then
    io.stderr:write(lerr .. '\n')
    return 2
  end
  if o.mx then o.mx = args.list(o.mx) end
  local ok, r = pcall(ev.explain, ev, o.domain, o)
  if not ok then
    io.stderr:write(tostring(r) .. '\n')
    return 2
  end
  local sources = {}
  for s in pairs(r.paths) do sources[#sources + 1] = s end
  r.warmup = warmup_of(plans, sources)
  if o.json then print(json_of(r)) else print_text(r) end
  return 0
end)
