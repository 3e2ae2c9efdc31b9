-- SPDX-License-Identifier: MIT
-- tern.review.automation: the shaping automation rules watching a path, as
-- a reviewer reads them ("on /4\.7\.28/: suspend 1h").
--
-- tern.shaping compiles each rule through tern.shaping_state.rule and keeps
-- only its index; evaluate.load records every definition handed to it, and
-- a path's answer lists the indexes in the order the engine checks them. A
-- rule's line is that of its `regex` key, found in the source by the
-- layer's key path (shaping.rule{} marks the line itself).
local srcindex = require 'tern.review.srcindex'

local M = {}

-- The layer of a rule's scope ("providers.google", "defaults", "") and its position.
local function layer_of(scope)
  local layer, n = scope:match('^(.-)%.?automation%[(%d+)%]$')
  return layer or scope, tonumber(n) or 1
end

local function key_path(layer)
  local path = {}
  local kind, name = layer:match('^(%a+)%.(.+)$')
  if kind then
    path = { kind, name }
  else
    path = { layer ~= '' and layer or '?' }  -- the top level: the table given to shaping.new
  end
  for _, k in ipairs({ 'automation', '?', 'regex' }) do path[#path + 1] = k end
  return path
end

-- "file:line" of a compiled rule definition, for the evaluator ev and the shaping object
-- shape (nil when a hook handed rule indexes to tern.make_egress_path itself).
local function written_at(ev, shape, def)
  local at = shape and shape.defined_at
  if not at or def.file ~= at.file or def.line ~= at.line then
    return ('%s:%d'):format(def.file, def.line)
  end
  for _, f in ipairs(ev.files) do ev:indexed(f) end
  local layer, n = layer_of(def.scope)
  local want = key_path(layer)
  return srcindex.locate_nth(ev.index, ev.files, want, n, math.min(#want, 4))
      or ('%s:%d'):format(def.file, def.line)
end

-- The rules of a path (indexes into ev.rules), described in the order they are checked.
function M.describe(ev, shape, ids)
  local out = {}
  for _, id in ipairs(ids) do
    local def = ev.rules[id]
    if def then
      local layer = layer_of(def.scope)
      out[#out + 1] = { scope = def.scope, layer = layer ~= '' and layer or 'top level',
                        regex = def.regex, action = def.action, duration = def.duration,
                        trigger = def.trigger or 'immediate',
                        recovery = def.action ~= 'bounce' and (def.recovery or '5m') or nil,
                        at = written_at(ev, shape, def) }
    end
  end
  return out
end

local function regex_text(r)
  if type(r) ~= 'table' then return '/' .. tostring(r) .. '/' end
  local parts = {}
  for i, p in ipairs(r) do parts[i] = '/' .. p .. '/' end
  return table.concat(parts, ' or ')
end

local function action_text(a)
  if type(a) ~= 'table' then return tostring(a) end
  local parts = {}
  for _, k in ipairs({ 'max_message_rate', 'connection_limit' }) do
    if a.set and a.set[k] ~= nil then
      parts[#parts + 1] = ('%s=%s'):format(k, tostring(a.set[k]))
    end
  end
  return 'set ' .. table.concat(parts, ' ')
end

-- What a rule does, in one line without its place: what `tern policy diff` compares.
function M.text(rule)
  local when = rule.trigger ~= 'immediate' and (' (trigger %s)'):format(rule.trigger) or ''
  local out = ('on %s%s: %s'):format(regex_text(rule.regex), when, action_text(rule.action))
  if rule.duration then out = out .. ' for ' .. rule.duration end
  if rule.recovery then out = out .. ', recovery ' .. rule.recovery end
  return out
end

-- What identifies a rule across two revisions: its layer and its regex.
function M.key(rule)
  return rule.layer .. ' ' .. regex_text(rule.regex)
end

return M
