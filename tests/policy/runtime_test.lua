-- SPDX-License-Identifier: MIT
-- The runtime under a script: coroutines, tern.sleep, tern.spawn, errors, rejects, shards.
local t = require 'tern.testing'

tern.on('main', function(args)
  t.eq(type(tern.version), 'string', 'tern.version is a string')
  t.eq(tern.shard.id(), 0, 'main runs on shard 0')
  t.eq(tern.shard.count(), 2, 'two shards under --threads 2')

  -- tern.sleep yields: several sleepers overlap instead of adding up.
  local start = tern.now()
  local tasks = {}
  for i = 1, 5 do
    tasks[i] = tern.spawn(function(n)
      tern.sleep(0.2)
      return n * 2
    end, i)
  end
  for i = 1, 5 do
    local ok, v = tasks[i]:join()
    t.ok(ok and v == i * 2, 'spawned task ' .. i .. ' returns its result')
  end

  local elapsed = tern.now() - start
  t.ok(elapsed >= 0.19 and elapsed < 0.5, ('5 sleeps of 0.2 s overlap (took %.3f s)'):format(elapsed))

  local bad = tern.spawn(function() error('exploded') end)
  local ok, err = bad:join()
  t.ok(not ok and err:find('exploded', 1, true) ~= nil, 'a failing task reports its error')
  t.ok(err:find('runtime_test.lua:%d+') ~= nil, 'the error names file and line')

  t.raises(function() tern.on('no_such_event', function() end) end, "unknown event 'no_such_event'",
    'unknown events are refused')
  t.raises(function() tern.on('init', function() end); tern.on('init', function() end) end,
    "already registered", 'a second handler for one event is refused')
  t.raises(function() coroutine.wrap(function() tern.sleep(0) end)() end, 'plain Lua coroutine',
    'tern.sleep refuses to run in a plain coroutine')
  t.raises(function() tern.reject(200, 'no') end, 'code must be 4xx or 5xx', 'tern.reject checks its code')
  return t.done()
end)
