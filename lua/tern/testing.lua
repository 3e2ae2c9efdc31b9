-- SPDX-License-Identifier: MIT
-- tern.testing: tests of policies and of lua/tern helpers, run inside the real
-- runtime. Two ways to run them:
--
-- `ternd --script FILE` (tests/policy/*_test.lua): each check prints a TAP
-- line; t.done() prints the plan and returns the exit status.
--
--   local t = require 'tern.testing'
--   tern.on('main', function()
--     t.eq(1 + 1, 2, 'addition')
--     return t.done()
--   end)
--
-- `tern policy test` (a policy repository's tests/*_test.lua): a file names
-- its tests with t.test; each prints one line, `ok - NAME` or `not ok - NAME`
-- followed by the file:line and detail of every failed check. A file's
-- tern.on('main', ...) is run as one more test named after the file.
--
--   local t = require 'tern.testing'
--   local p = t.policy('../policy.lua')          -- relative to this file
--   t.dns { ['gmail.com'] = { mx = { 'gmail-smtp-in.l.google.com' } } }
--   t.test('gmail gets its own limits', function()
--     local path = p:fire('get_egress_path_config', 'gmail.com', 'ip-1', t.site('gmail.com'))
--     t.eq(path.connection_limit, 15)
--   end)
--
-- Nothing leaves the process: t.policy runs the policy's top level and its
-- init without opening what init asks for (as `ternd --check`), and
-- tern.dns.lookup_mx answers from t.dns's table.
local M = {}

local count, failed = 0, 0
local current -- the test running under `tern policy test`: { failures = { ... } }
local tests = {}

-- "file:line" of the check's caller: the first Lua frame outside this file
-- (checks end in tail calls, so counting levels would not do).
local function where()
  local self_src = debug.getinfo(1, 'S').source
  for level = 2, 20 do
    local info = debug.getinfo(level, 'Sl')
    if not info then break end
    if info.source ~= self_src and info.currentline > 0 then
      local src = info.source:sub(1, 1) == '@' and info.source:sub(2) or info.short_src
      return ('%s:%d'):format(src, info.currentline)
    end
  end
  return '?'
end

local function report(ok, name, detail)
  if current then
    if not ok then
      current.failures[#current.failures + 1] = ('%s: %s%s'):format(where(), name,
        detail and (': ' .. tostring(detail)) or '')
    end
    return ok
  end
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

-- Passes when s contains text (plain find).
function M.contains(s, text, name)
  local ok = type(s) == 'string' and s:find(text, 1, true) ~= nil
  return report(ok, name or 'contains', ('%s does not contain %s'):format(show(s), show(text)))
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

-- Passes when fn calls tern.reject(code, text) with this code and text containing pattern.
function M.rejects(fn, code, pattern, name)
  local ok, err = pcall(fn)
  local rejected = not ok and type(err) == 'table' and err.code ~= nil
  local detail = ok and 'no rejection' or rejected and ('rejected %d %s'):format(err.code, show(err.text))
    or ('raised %s instead of tern.reject'):format(show(err))
  local matched = rejected and err.code == code and
    (pattern == nil or tostring(err.text):find(pattern, 1, true) ~= nil)
  return report(matched, name or 'rejects', detail)
end

-- Prints the TAP plan; returns 0 when every check passed, 1 otherwise (the script's exit status).
function M.done()
  if current then return #current.failures == 0 and 0 or 1 end
  print(('1..%d'):format(count))
  return failed == 0 and 0 or 1
end

-- For tests of tern.shard.call: where did this run?
function M.shard_probe()
  return tern.shard.id(), tern.shard.thread_id()
end

-- ---- tests run by `tern policy test` ----

function M.test(name, fn)
  if type(name) ~= 'string' or type(fn) ~= 'function' then
    error('tern.testing.test(name, function)', 2)
  end
  tests[#tests + 1] = { name = name, fn = fn }
end

local function run_test(test)
  current = { failures = {} }
  local ok, err = pcall(test.fn)
  if not ok then
    local text = type(err) == 'table' and err.code and ('tern.reject(%d, %s)'):format(err.code, show(err.text))
      or tostring(err)
    current.failures[#current.failures + 1] = 'error: ' .. text
  end
  local failures = current.failures
  current = nil
  print(('%s - %s'):format(#failures == 0 and 'ok' or 'not ok', test.name))
  for _, f in ipairs(failures) do
    print('#   ' .. f:gsub('\n', '\n#   '))
  end
  return #failures == 0
end

function M.run()
  local bad = 0
  for _, test in ipairs(tests) do
    if not run_test(test) then bad = bad + 1 end
  end
  return bad == 0 and 0 or 1
end

-- ---- DNS from a table ----

local fixtures = {}

-- tern.dns.lookup_mx's answer from the table: hosts in the order given, preference 10, 20, ...
local function fixture_lookup_mx(domain)
  local entry = fixtures[tostring(domain):lower()]
  if not entry or not entry.mx or #entry.mx == 0 then
    return nil, ('%s: no MX in the test fixtures'):format(domain), 'NXDOMAIN'
  end
  local hosts = {}
  for i, mx in ipairs(entry.mx) do
    local host = type(mx) == 'table' and mx.host or mx
    hosts[i] = { host = host, preference = type(mx) == 'table' and mx.preference or i * 10,
                 addresses = type(mx) == 'table' and mx.addresses or {} }
  end
  return hosts
end

-- t.dns{ ['gmail.com'] = { mx = { 'gmail-smtp-in.l.google.com', ... } } }: adds to the answers.
function M.dns(tbl)
  for domain, entry in pairs(tbl) do
    fixtures[domain:lower()] = entry
  end
  tern.dns.lookup_mx = fixture_lookup_mx
end

-- The site key the engine derives from a domain's MX set (host names joined by ',').
function M.site(domain)
  local hosts, err = fixture_lookup_mx(domain)
  if not hosts then error(err, 2) end
  local names = {}
  for i, h in ipairs(hosts) do names[i] = h.host end
  return table.concat(names, ',')
end

-- ---- messages and connections ----

local function header_lines(o)
  local lines, have = {}, {}
  local headers = o.headers or {}
  for i, h in ipairs(headers) do
    lines[i] = h
    have[h:match('^([^:]+)'):lower()] = true
  end
  local names = {}
  for k in pairs(headers) do
    if type(k) == 'string' then names[#names + 1] = k end
  end
  table.sort(names)
  for _, k in ipairs(names) do
    lines[#lines + 1] = k .. ': ' .. headers[k]
    have[k:lower()] = true
  end
  if not have.from then table.insert(lines, 1, 'From: <' .. o.from .. '>') end
  if not have.to then table.insert(lines, 2, 'To: <' .. o.to .. '>') end
  return lines
end

-- t.message{ from, to, headers = { ['X-Tenant'] = 'a', 'Subject: hi' }, body, meta }:
-- the message object hooks get. From and To headers default to the envelope.
function M.message(o)
  if type(o) ~= 'table' or type(o.from) ~= 'string' or type(o.to) ~= 'string' then
    error('tern.testing.message{ from = ..., to = ... } needs from and to strings', 2)
  end
  local body = (o.body or 'test\n'):gsub('\r?\n', '\r\n')
  local data = table.concat(header_lines(o), '\r\n') .. '\r\n\r\n' .. body
  local msg = tern.message.new(o.from, o.to, data)
  for k, v in pairs(o.meta or {}) do
    msg:set_meta(k, v)
  end
  return msg
end

-- t.connection{ peer = '10.0.0.1', listener = '0.0.0.0:25', tls = true, auth = 'user', ehlo = ... }
function M.connection(o)
  return tern.conn.new(o or {})
end

-- The DKIM-Signature fields of a message, top first: { { d = ..., s = ..., a = ..., ... }, ... }
function M.dkim_signatures(msg)
  local sigs = {}
  for i, v in ipairs(msg:get_headers('DKIM-Signature')) do
    local tags = {}
    for k, val in v:gmatch('([%w_]+)%s*=%s*([^;]*)') do
      tags[k] = val:gsub('%s+', '')
    end
    sigs[i] = tags
  end
  return sigs
end

-- ---- policies ----

local Policy = {}
Policy.__index = Policy

-- p:fire(event, ...): the policy's handler for event, called as the engine would.
function Policy:fire(event, ...)
  local fn = self.handlers[event]
  if not fn then
    error(("%s has no handler for '%s'"):format(self.path, event), 2)
  end
  return fn(...)
end

function Policy:has(event)
  return self.handlers[event] ~= nil
end

local function dir_of(path)
  return path:match('^(.*)/[^/]*$') or '.'
end

local function caller_dir(level)
  local src = debug.getinfo(level + 1, 'S').source
  return src:sub(1, 1) == '@' and dir_of(src:sub(2)) or '.'
end

-- Runs fn with tern.on capturing handlers, os.getenv reading env first, and
-- tern.dns.configure checking its argument only; then puts them back.
local function with_capture(handlers, env, fn)
  local saved_on, saved_getenv, saved_configure = tern.on, os.getenv, tern.dns.configure
  tern.on = function(event, handler)
    if type(event) ~= 'string' or type(handler) ~= 'function' then
      error('tern.on(event, function)', 2)
    end
    if handlers[event] then
      error(("a handler for '%s' is already registered"):format(event), 2)
    end
    handlers[event] = handler
  end
  os.getenv = function(k)
    if env[k] ~= nil then return env[k] end
    return saved_getenv(k)
  end
  tern.dns.configure = function(o)
    if type(o) ~= 'table' then error('tern.dns.configure: options must be a table', 2) end
  end
  local ok, err = pcall(fn)
  tern.on, os.getenv, tern.dns.configure = saved_on, saved_getenv, saved_configure
  if not ok then error(err, 0) end
end

local loaded = {}

-- t.policy([path], { env = { NAME = value } }): load a policy into this
-- runtime and run its init as `ternd --check` would. path is relative to the
-- calling file; without it, the policy given to `tern policy test --policy`.
-- A policy is loaded once per test file: init records what it would open,
-- and a second spool or listener of the same name would be refused.
function M.policy(path, opts)
  opts = opts or {}
  if path == nil then
    path = os.getenv('TERN_POLICY')
    if not path then error('tern.testing.policy: no path, and no tern policy test --policy', 2) end
  elseif path:sub(1, 1) ~= '/' then
    path = caller_dir(2) .. '/' .. path
  end
  if loaded[path] then return loaded[path] end
  local p = setmetatable({ path = path, handlers = {} }, Policy)
  local dir = dir_of(path)
  package.path = dir .. '/?.lua;' .. dir .. '/?/init.lua;' .. package.path
  M.dns {}
  with_capture(p.handlers, opts.env or {}, function()
    local chunk, err = loadfile(path)
    if not chunk then error(err, 0) end
    chunk()
    if p.handlers.init then p.handlers.init() end
  end)
  loaded[path] = p
  return p
end

-- Under `tern policy test`, this file runs the tests: main is ours, a test
-- file's own main becomes one more test, and no DNS query leaves.
if os.getenv('TERN_POLICY_TEST') then
  local real_on = tern.on
  real_on('main', function() return M.run() end)
  tern.on = function(event, fn)
    if event ~= 'main' then return real_on(event, fn) end
    M.test(debug.getinfo(2, 'S').short_src:match('[^/]*$'), fn)
  end
  M.dns {}
end

return M
