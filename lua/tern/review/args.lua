-- SPDX-License-Identifier: MIT
-- tern.review.args: the `--name value` / `--flag` options of the review
-- commands, and their positional arguments.
local M = {}

-- spec: { name = true (takes a value) | false (a flag) }. Returns the
-- options (positionals in out[1..n]) or nil and an error.
function M.parse(argv, spec)
  local out, i = {}, 1
  while i <= #argv do
    local a = argv[i]
    local name = a:match('^%-%-([%w%-]+)$')
    if name then
      name = name:gsub('%-', '_')
      if spec[name] == nil then return nil, ('unknown option --%s'):format(name) end
      if spec[name] then
        if argv[i + 1] == nil then return nil, ('--%s needs a value'):format(name) end
        out[name], i = argv[i + 1], i + 1
      else
        out[name] = true
      end
    else
      out[#out + 1] = a
    end
    i = i + 1
  end
  return out
end

function M.list(text)
  local out = {}
  for item in text:gmatch('[^,%s]+') do out[#out + 1] = item end
  return out
end

return M
