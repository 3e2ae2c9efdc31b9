-- SPDX-License-Identifier: MIT
-- `tern classify [--policy FILE] [--site SITE] [--json] [REPLY...]`: run by
-- `ternd --script`; classifies each reply given, or each line of stdin, with
-- the default bounce rules or those the policy configures
-- (tern.bounce.configure at its top level), and prints one category per
-- line, or with --json one object: category, rule and the rule's file:line.
local evaluate = require 'tern.review.evaluate'
local args = require 'tern.review.args'

local USAGE = 'usage: tern classify [--policy FILE] [--site SITE] [--json] [REPLY...]'

local function show(o, reply, site)
  local category, name, where = tern.bounce.classify(reply, site)
  if o.json then
    print(tern.json.encode { reply = tern.bounce.normalise(reply), category = category,
                             rule = name or tern.json.null, at = where or tern.json.null })
  else
    print(category)
  end
end

tern.on('main', function(argv)
  local o, err = args.parse(argv, { policy = true, site = true, json = false })
  if not o then
    io.stderr:write(err .. '\n' .. USAGE .. '\n')
    return 2
  end
  if o.policy then
    local ok, lerr = evaluate.load(o.policy)
    if not ok then
      io.stderr:write(('tern classify: %s\n'):format(lerr))
      return 1
    end
  end
  local ok, cerr = pcall(tern.bounce.classify, '')
  if not ok then
    io.stderr:write(('tern classify: %s\n'):format(cerr))
    return 1
  end
  if #o > 0 then
    for _, reply in ipairs(o) do show(o, reply, o.site) end
  else
    for line in io.stdin:lines() do show(o, line, o.site) end
  end
  return 0
end)
