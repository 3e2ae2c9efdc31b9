-- SPDX-License-Identifier: MIT
-- tern.json against lua-cjson (Debian's lua-cjson, if installed) inside ternd's LuaJIT:
-- speed on an inject-like document, and the behaviours tern relies on.
-- Run: build/rel/ternd --threads 1 --script bench/lua_json.lua
package.cpath = package.cpath .. ';/usr/lib/x86_64-linux-gnu/lua/5.1/?.so'
local have_cjson, cjson = pcall(require, 'cjson')

local function inject_doc()
  local rcpts = {}
  for i = 1, 10 do
    rcpts[i] = { email = 'user' .. i .. '@example.net', name = 'User ' .. i,
                 substitutions = { first = 'Name' .. i, n = i, city = 'Zürich' } }
  end
  return { envelope_sender = 'news@sender.test', recipients = rcpts,
           substitutions = { company = 'Acme' },
           content = { subject = 'Hello {{ first }}',
                       text_body = string.rep('Dear {{ first }}, the news. ', 40),
                       from = { email = 'news@sender.test', name = 'Acme News' } } }
end

local function bench(name, f, n)
  local t0 = os.clock()
  for _ = 1, n do f() end
  print(('%-20s %9.0f ops/s'):format(name, n / (os.clock() - t0)))
end

local function show(what, ...)
  local out = {}
  for i = 1, select('#', ...) do out[#out + 1] = tostring((select(i, ...))) end
  print(('%-34s %s'):format(what, table.concat(out, ' ')))
end

tern.on('main', function()
  local doc = inject_doc()
  local text = tern.json.encode(doc)
  local n = 20000
  print(('document: %d bytes, %d iterations'):format(#text, n))
  bench('tern.json.encode', function() tern.json.encode(doc) end, n)
  bench('tern.json.decode', function() tern.json.decode(text) end, n)
  if not have_cjson then
    print('lua-cjson not installed: apt-get install lua-cjson')
    return
  end
  bench('cjson.encode', function() cjson.encode(doc) end, n)
  bench('cjson.decode', function() cjson.decode(text) end, n)
  for _, c in ipairs { { 'tern.json', tern.json }, { 'cjson', cjson } } do
    local name, j = c[1], c[2]
    show(name .. ' encode "a\\255b"', pcall(j.encode, 'a\255b'))
    show(name .. ' decode "a\\255b"', pcall(j.decode, '"a\255b"'))
    show(name .. ' encode 2^53', pcall(j.encode, 2 ^ 53))
    show(name .. ' decode [1,]', pcall(j.decode, '[1,]'))
    show(name .. ' encode {a={b=print}}', pcall(j.encode, { a = { b = print } }))
  end
end)
