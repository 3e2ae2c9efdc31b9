-- SPDX-License-Identifier: MIT
-- `tern policy diff [--policy FILE] REV1 [REV2] [--domains FILE] [--json |
-- --markdown]`: run by `ternd --script` in a policy's git repository. Both
-- revisions are checked out in temporary worktrees (REV2 defaults to the
-- work tree) and evaluated over every domain either names, the provider
-- domains of tern.data.providers and the --domains file; only what changes
-- is printed, grouped by provider (or site). Exit 0: no change, 1: changes,
-- 2: error.
local evaluate = require 'tern.review.evaluate'
local providers = require 'tern.data.providers'
local args = require 'tern.review.args'
local automation = require 'tern.review.automation'

local USAGE = 'usage: tern policy diff [--policy FILE] REV1 [REV2] [--domains FILE] [--json | --markdown]'

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Run a shell command; returns success and its output. LuaJIT's close()
-- does not report the exit status, so the command prints it last.
local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "exit=$?"')
  local out = p:read('*a')
  p:close()
  local status = out:match('exit=(%d+)%s*$')
  out = out:gsub('exit=%d+%s*$', '')
  return status == '0', (out:gsub('%s+$', ''))
end

local function fail(msg)
  error({ msg = msg }, 0)
end

-- The repository's top directory and the policy's path inside it.
local function locate(policy)
  local ok, abs = run('realpath -e ' .. q(policy))
  if not ok then fail(abs) end
  local top
  ok, top = run('git -C ' .. q(abs:match('^(.*)/')) .. ' rev-parse --show-toplevel')
  if not ok then fail(('%s is not in a git repository: %s'):format(policy, top)) end
  return top, abs:sub(#top + 2)
end

-- Check out rev in a temporary worktree; returns its directory.
local function checkout(top, rev)
  local ok, tmp = run('mktemp -d')
  if not ok then fail(tmp) end
  local dir = tmp .. '/' .. rev:gsub('[^%w%.%-_]', '_')
  local out
  ok, out = run(('git -C %s worktree add --quiet --detach %s %s'):format(q(top), q(dir), q(rev)))
  if not ok then fail(('cannot check out %s: %s'):format(rev, out)) end
  return dir, function()
    run(('git -C %s worktree remove --force %s'):format(q(top), q(dir)))
    run('rm -rf ' .. q(tmp))
  end
end

local function load(dir, rel, label)
  local ev, err = evaluate.load(dir .. '/' .. rel, rel)
  if not ev then fail(('%s: %s'):format(label, err)) end
  return ev
end

local function read_lines(path)
  local out, f = {}, io.open(path, 'r')
  if not f then fail('cannot open ' .. path) end
  for line in f:lines() do
    line = line:gsub('#.*', ''):match('^%s*(.-)%s*$')
    if line ~= '' then out[#out + 1] = line:lower() end
  end
  f:close()
  return out
end

local function domains_of(evs, extra)
  local out, seen = {}, {}
  local function add(d)
    if not seen[d] then seen[d], out[#out + 1] = true, d end
  end
  for _, ev in ipairs(evs) do
    for _, d in ipairs(ev:named_domains()) do add(d) end
  end
  for _, p in pairs(providers) do
    for _, d in ipairs(p.domains) do add(d) end
  end
  for _, d in ipairs(extra) do add(d) end
  table.sort(out)
  return out
end

local function explain(ev, domain)
  local ok, r = pcall(ev.explain, ev, domain, {})
  return ok and r or { error = tostring(r), paths = {}, queue_config = {}, egress_pool = { entries = {} } }
end

local function sorted_union(a, b)
  local keys, seen = {}, {}
  for _, t in ipairs({ a, b }) do
    for k in pairs(t) do
      if not seen[k] then seen[k], keys[#keys + 1] = true, k end
    end
  end
  table.sort(keys)
  return keys
end

local function show(v)
  if v == nil then return '(none)' end
  if type(v) == 'table' then return table.concat(v, ',') end
  return tostring(v)
end

local function compare_pool(a, b, out)
  local wa, wb = {}, {}
  for _, e in ipairs(a.entries) do wa[e.name] = e.weight end
  for _, e in ipairs(b.entries) do wb[e.name] = e.weight end
  for _, s in ipairs(sorted_union(wa, wb)) do
    local what = ('pool %s: source %s'):format(b.name or a.name, s)
    if wa[s] == nil then
      out[#out + 1] = { what = what .. ' added', old = '', new = 'weight ' .. wb[s] }
    elseif wb[s] == nil then
      out[#out + 1] = { what = what .. ' removed', old = 'weight ' .. wa[s], new = '' }
    elseif wa[s] ~= wb[s] then
      out[#out + 1] = { what = what .. ' weight', old = show(wa[s]), new = show(wb[s]) }
    end
  end
end

-- A path's rules by what identifies them across revisions (layer and regex).
local function rules_by_key(rules)
  local out = {}
  for _, r in ipairs(rules or {}) do out[automation.key(r)] = r end
  return out
end

-- Automation rules added, removed or changed (same layer and regex) between
-- two revisions, counting the paths (sources) of the domain each one watches.
local function compare_rules(a, b, out)
  local found, order = {}, {}
  for _, s in ipairs(sorted_union(a.paths, b.paths)) do
    if a.paths[s] and b.paths[s] then
      local ra, rb = rules_by_key(a.paths[s].automation), rules_by_key(b.paths[s].automation)
      for _, k in ipairs(sorted_union(ra, rb)) do
        local old = ra[k] and automation.text(ra[k]) or '(none)'
        local new = rb[k] and automation.text(rb[k]) or '(none)'
        if old ~= new then
          local id = k .. '\0' .. old .. '\0' .. new
          if not found[id] then
            local what = ('automation %s rule %s'):format((rb[k] or ra[k]).layer,
              not ra[k] and 'added' or not rb[k] and 'removed' or 'changed')
            found[id], order[#order + 1] = { what = what, old = old, new = new, paths = 0 }, id
          end
          found[id].paths = found[id].paths + 1
        end
      end
    end
  end
  for _, id in ipairs(order) do out[#out + 1] = found[id] end
end

-- The changed settings between two explanations of one domain.
local function compare(a, b)
  local out = {}
  local function field(what, x, y)
    if show(x) ~= show(y) then out[#out + 1] = { what = what, old = show(x), new = show(y) } end
  end
  field('error', a.error, b.error)
  field('queue', a.queue, b.queue)
  for _, k in ipairs(sorted_union(a.queue_config, b.queue_config)) do
    field('queue_config ' .. k, a.queue_config[k], b.queue_config[k])
  end
  compare_pool(a.egress_pool, b.egress_pool, out)
  for _, s in ipairs(sorted_union(a.paths, b.paths)) do
    if a.paths[s] and b.paths[s] then
      for _, k in ipairs(evaluate.path_fields) do field(s .. ' ' .. k, a.paths[s][k], b.paths[s][k]) end
    end
  end
  compare_rules(a, b, out)
  return out
end

local function signature(changes)
  local parts = {}
  for _, c in ipairs(changes) do
    parts[#parts + 1] = c.what .. '\0' .. c.old .. '\0' .. c.new .. '\0' .. (c.paths or '')
  end
  return table.concat(parts, '\1')
end

-- { { group, site, domains = {...}, changes = {...} } ... } in a stable order.
local function changes_by_group(ev1, ev2, domains)
  local groups, index = {}, {}
  for _, d in ipairs(domains) do
    local a, b = explain(ev1, d), explain(ev2, d)
    local changes = compare(a, b)
    if #changes > 0 then
      local group = b.provider or (b.site ~= '' and b.site) or 'no known provider'
      local key = group .. '\2' .. signature(changes)
      if not index[key] then
        index[key] = { group = group, site = b.site, domains = {}, changes = changes }
        groups[#groups + 1] = index[key]
      end
      table.insert(index[key].domains, d)
    end
  end
  table.sort(groups, function(x, y)
    if x.group ~= y.group then return x.group < y.group end
    return x.domains[1] < y.domains[1]
  end)
  return groups
end

-- A rule change's reach in a group: its paths in one domain times the domains.
local function affects(g, c)
  if not c.paths then return '' end
  local n = c.paths * #g.domains
  return (' (affects %d path%s)'):format(n, n == 1 and '' or 's')
end

-- Each automation rule change over every group: { what, old, new, paths, domains, groups },
-- since a default rule's change is repeated in every provider's group.
local function rule_totals(groups)
  local out, index = {}, {}
  for _, g in ipairs(groups) do
    for _, c in ipairs(g.changes) do
      if c.paths then
        local id = c.what .. '\0' .. c.old .. '\0' .. c.new
        if not index[id] then
          index[id] = { what = c.what, old = c.old, new = c.new, paths = 0, domains = 0, groups = 0 }
          out[#out + 1] = index[id]
        end
        local t = index[id]
        t.paths, t.domains, t.groups = t.paths + c.paths * #g.domains, t.domains + #g.domains, t.groups + 1
      end
    end
  end
  return out
end

local function spread(totals)
  local out = {}
  for _, t in ipairs(totals) do
    if t.groups > 1 then out[#out + 1] = t end
  end
  return out
end

local function total_text(t)
  return ('%s: %s -> %s (affects %d paths in %d domains)'):format(t.what, t.old, t.new, t.paths, t.domains)
end

local function print_text(groups)
  for _, g in ipairs(groups) do
    print(('%s (%d domain%s): %s'):format(g.group, #g.domains, #g.domains == 1 and '' or 's',
      table.concat(g.domains, ', ')))
    for _, c in ipairs(g.changes) do
      print(('  %s: %s -> %s%s'):format(c.what, c.old, c.new, affects(g, c)))
    end
  end
  local over = spread(rule_totals(groups))
  if #over > 0 then print('automation rule changes over all groups:') end
  for _, t in ipairs(over) do print('  ' .. total_text(t)) end
end

local function print_markdown(groups, rev1, rev2)
  print(('### Delivery changes %s -> %s'):format(rev1, rev2))
  if #groups == 0 then print('\nNo change.') end
  for _, g in ipairs(groups) do
    print(('\n#### %s\n\n%d domain%s: %s\n'):format(g.group, #g.domains, #g.domains == 1 and '' or 's',
      table.concat(g.domains, ', ')))
    print('| setting | old | new |')
    print('|---|---|---|')
    for _, c in ipairs(g.changes) do
      print(('| %s%s | `%s` | `%s` |'):format(c.what, affects(g, c), (c.old:gsub('|', '\\|')),
        (c.new:gsub('|', '\\|'))))
    end
  end
  local over = spread(rule_totals(groups))
  if #over > 0 then print('\n#### Automation rule changes over all groups\n') end
  for _, t in ipairs(over) do print('- ' .. total_text(t)) end
end

local function diff(o)
  local rev1, rev2 = o[1], o[2]
  if not rev1 or o[3] then fail(USAGE) end
  local top, rel = locate(o.policy or 'policy.lua')
  local cleanups = {}
  local ok, res = pcall(function()
    local dir1, done1 = checkout(top, rev1)
    cleanups[#cleanups + 1] = done1
    local ev1 = load(dir1, rel, rev1)
    local ev2
    if rev2 then
      local dir2, done2 = checkout(top, rev2)
      cleanups[#cleanups + 1] = done2
      ev2 = load(dir2, rel, rev2)
    else
      ev2 = load(top, rel, 'work tree')
    end
    return changes_by_group(ev1, ev2, domains_of({ ev1, ev2 }, o.domains and read_lines(o.domains) or {}))
  end)
  for _, done in ipairs(cleanups) do done() end
  if not ok then error(res, 0) end
  return res, rev1, rev2 or 'work tree'
end

tern.on('main', function(argv)
  local o, err = args.parse(argv, { policy = true, domains = true, json = false, markdown = false })
  if not o then
    io.stderr:write(err .. '\n' .. USAGE .. '\n')
    return 2
  end
  local ok, groups, rev1, rev2 = pcall(diff, o)
  if not ok then
    io.stderr:write((type(groups) == 'table' and groups.msg or tostring(groups)) .. '\n')
    return 2
  end
  if o.json then
    print(tern.json.encode { from = rev1, to = rev2, changes = groups, automation = rule_totals(groups) })
  elseif o.markdown then
    print_markdown(groups, rev1, rev2)
  else
    print_text(groups)
  end
  return #groups > 0 and 1 or 0
end)
