-- SPDX-License-Identifier: MIT
-- A tiny test helper for policy tests run by `ternd --script`: each check
-- prints a TAP line; t.done() prints the plan and returns the exit status.
--
--   local t = require 'tern.testing'
--   tern.on('main', function()
--     t.eq(1 + 1, 2, 'addition')
--     t.raises(function() error('boom') end, 'boom', 'errors are caught')
--     return t.done()
--   end)
local M = {}

local count, failed = 0, 0

local function report(ok, name, detail)
  count = count + 1
  if ok then
    print(('ok %d - %s'):format(count, name))
  else
    failed = failed + 1
    print(('not ok %d - %s'):format(count, name))
    if detail then
      print('# ' .. tostring(detail):gsub('\n', '\n# '))
    end
  end
  return ok
end

function M.ok(cond, name)
  return report(cond and true or false, name or 'ok')
end

local function show(v)
  if type(v) == 'string' then return ('%q'):format(v) end
  return tostring(v)
end

function M.eq(got, want, name)
  return report(got == want, name or 'eq', ('got %s, want %s'):format(show(got), show(want)))
end

-- Passes when fn raises an error whose message matches pattern (plain find).
function M.raises(fn, pattern, name)
  local ok, err = pcall(fn)
  if ok then
    return report(false, name or 'raises', 'no error was raised')
  end
  local matched = tostring(err):find(pattern, 1, true) ~= nil
  return report(matched, name or 'raises', ('error %s does not contain %s'):format(show(err), show(pattern)))
end

-- Prints the TAP plan; returns 0 when every check passed, 1 otherwise (the script's exit status).
function M.done()
  print(('1..%d'):format(count))
  return failed == 0 and 0 or 1
end

-- For tests of tern.shard.call: where did this run?
function M.shard_probe()
  return tern.shard.id(), tern.shard.thread_id()
end

return M
