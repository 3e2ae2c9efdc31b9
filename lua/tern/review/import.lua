-- SPDX-License-Identifier: MIT
-- The Lua half of `tern import pmta` (run by `ternd --script` from
-- core/cli_import.c, which has parsed the file): --tree JSON --conf FILE
-- --out DIR. Writes the policy directory and warns about what it left out.
local pmta = require 'tern.pmta'
local args = require 'tern.review.args'

local function write(path, text)
  local f, err = io.open(path, 'w')
  if not f then error(err, 0) end
  f:write(text)
  f:close()
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

tern.on('main', function(argv)
  local o = args.parse(argv, { tree = true, conf = true, out = true })
  local f = o and o.tree and io.open(o.tree, 'r')
  if not f then
    io.stderr:write('tern import: no parsed configuration to import\n')
    return 2
  end
  local tree = tern.json.decode(f:read('*a'))
  f:close()
  os.remove(o.tree)
  local result = pmta.convert(tree, o.conf:match('[^/]*$'))
  if os.execute('mkdir -p ' .. sh_quote(o.out .. '/data')) ~= 0 then
    io.stderr:write('tern import: cannot create ' .. o.out .. '\n')
    return 2
  end
  local ok, err = pcall(function()
    for name, text in pairs(result.files) do write(o.out .. '/' .. name, text) end
  end)
  if not ok then
    io.stderr:write('tern import: ' .. tostring(err) .. '\n')
    return 2
  end
  print(('wrote %s/policy.lua and %s/data/'):format(o.out, o.out))
  if #result.unmapped > 0 then
    io.stderr:write(('warning: %d directive(s) not imported (listed at the top of %s/policy.lua)\n')
      :format(#result.unmapped, o.out))
  end
  return 0
end)
