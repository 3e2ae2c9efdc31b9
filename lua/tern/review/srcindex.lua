-- SPDX-License-Identifier: MIT
-- tern.review.srcindex: where each table entry of a Lua file is written.
--
-- `tern policy explain` names the file:line a setting came from. Values
-- carry no position at run time, and a data table may be built anywhere
-- (inline, in a required data module, through helpers), so instead of
-- instrumenting constructors we read the source: a small lexer walks every
-- table constructor and records the key path of each `name = ...` and
-- `['str'] = ...` field with its line ("providers.google.connection_limit"
-- -> 62). A setting is then located by the longest suffix of its path, which
-- holds wherever the table is written. It also lists the string literals,
-- from which `tern policy diff` learns the domains a policy names.
local M = {}

local function skip_long(src, pos)
  local eq = src:match('^%[(=*)%[', pos)
  if not eq then return nil end
  local close = ']' .. eq .. ']'
  local s, e = src:find(close, pos, true)
  return e or #src, src:sub(pos + #eq + 2, (s or #src + 1) - 1)
end

local function count_lines(s)
  local _, n = s:gsub('\n', '')
  return n
end

-- Tokens: { t = 'name'|'str'|'op', v = text, line = n }.
local function lex(src)
  local toks, pos, line = {}, 1, 1
  local function push(t, v) toks[#toks + 1] = { t = t, v = v, line = line } end
  while pos <= #src do
    local c = src:sub(pos, pos)
    if c == '\n' then
      line, pos = line + 1, pos + 1
    elseif c:match('%s') then
      pos = pos + 1
    elseif src:sub(pos, pos + 1) == '--' then
      local e, body = skip_long(src, pos + 2)
      if e then
        line, pos = line + count_lines(body), e + 1
      else
        pos = (src:find('\n', pos, true) or #src + 1)
      end
    elseif c == '"' or c == "'" then
      local i = pos + 1
      while i <= #src and src:sub(i, i) ~= c and src:sub(i, i) ~= '\n' do
        i = i + (src:sub(i, i) == '\\' and 2 or 1)
      end
      push('str', src:sub(pos + 1, i - 1))
      pos = i + 1
    elseif src:match('^%[=*%[', pos) then
      local e, body = skip_long(src, pos)
      push('str', body)
      line, pos = line + count_lines(body), e + 1
    elseif c:match('[%a_]') then
      local name = src:match('^[%w_]+', pos)
      push('name', name)
      pos = pos + #name
    elseif c:match('%d') then
      pos = pos + #src:match('^[%w%.]+', pos)
    elseif src:sub(pos, pos + 1) == '==' or src:sub(pos, pos + 1) == '~=' then
      push('op', src:sub(pos, pos + 1))
      pos = pos + 2
    else
      push('op', c)
      pos = pos + 1
    end
  end
  return toks
end

-- The key of a field starting at token i, and the index after its '='.
local function field_key(toks, i)
  local a, b = toks[i], toks[i + 1]
  if a.t == 'name' and b and b.t == 'op' and b.v == '=' then return a.v, i + 2 end
  if a.t == 'op' and a.v == '[' and b and b.t == 'str' and toks[i + 2] and toks[i + 2].v == ']'
      and toks[i + 3] and toks[i + 3].v == '=' then
    return b.v, i + 4
  end
end

-- Index a source text: { fields = { { path = {...}, line = n } ... }, strings = { ... } }.
function M.index_source(src)
  local toks = lex(src)
  local out = { fields = {}, strings = {}, calls = {} }
  local stack, pending, i = {}, nil, 1
  while i <= #toks do
    local tok = toks[i]
    local key, after = nil, nil
    if #stack > 0 then key, after = field_key(toks, i) end
    if key then
      local path = { unpack(stack) }
      path[#path + 1] = key
      out.fields[#out.fields + 1] = { path = path, line = tok.line }
      if tok.v == '[' then out.strings[#out.strings + 1] = key end
      pending, i = key, after
    else
      if tok.t == 'str' then out.strings[#out.strings + 1] = tok.v end
      if tok.t == 'name' and tok.v:match('^make_') then
        out.calls[#out.calls + 1] = { name = tok.v, line = tok.line }
      end
      if tok.v == '{' and tok.t == 'op' then
        stack[#stack + 1] = pending or '?'
        pending = nil
      elseif tok.v == '}' and tok.t == 'op' then
        stack[#stack] = nil
      elseif tok.t == 'op' and (tok.v == ',' or tok.v == ';') then
        pending = nil
      end
      i = i + 1
    end
  end
  return out
end

function M.index_file(path)
  local f = io.open(path, 'r')
  if not f then return { fields = {}, strings = {}, calls = {} } end
  local src = f:read('*a')
  f:close()
  return M.index_source(src)
end

local function ends_with_path(path, want, n)
  if #path < n then return false end
  for k = 0, n - 1 do
    if path[#path - k] ~= want[#want - k] then return false end
  end
  return true
end

-- The "file:line" of the entry best matching a key path in the indexed
-- files ({ [file] = index }): the longest matching suffix of at least two
-- keys (an entry and its setting); nil when nothing matches.
function M.locate(indexes, files, want)
  for n = #want, 2, -1 do
    for _, file in ipairs(files) do
      for _, f in ipairs(indexes[file].fields) do
        if ends_with_path(f.path, want, n) then return ('%s:%d'):format(file, f.line) end
      end
    end
  end
end

-- The "file:line" of the nth entry (in the files' order) matching the
-- longest suffix of a key path, of at least `min` keys, that has n entries:
-- the nth rule of a list, whose entries have no key of their own.
function M.locate_nth(indexes, files, want, nth, min)
  for n = #want, min, -1 do
    local seen = 0
    for _, file in ipairs(files) do
      for _, f in ipairs(indexes[file].fields) do
        if ends_with_path(f.path, want, n) then
          seen = seen + 1
          if seen == nth then return ('%s:%d'):format(file, f.line) end
        end
      end
    end
  end
end

-- The line of the first call of `name` (e.g. make_queue_config) between two lines.
function M.call_line(index, name, first, last)
  for _, c in ipairs(index.calls) do
    if c.name == name and c.line >= first and c.line <= last then return c.line end
  end
end

return M
