-- SPDX-License-Identifier: MIT
-- tern.pmta: a PowerMTA configuration (the tree read by core/pmta_conf.c)
-- turned into a tern policy directory: policy.lua plus data tables under
-- data/, one setting per line so that `tern policy explain` can name each.
--
-- PowerMTA's meaning is kept: a <domain> rate applies per VirtualMTA, and a
-- VirtualMTA is a tern source, so `max-msg-rate 120/min` stays a per-source,
-- per-site rate of '120/min'. Directives without a tern equivalent are
-- listed, with their line, at the top of policy.lua and counted.
--
-- Backoff mode becomes shaping automation: a <domain>'s smtp-pattern-list
-- (its `reply /regex/ mode=backoff` lines) is the rule's regex, and the
-- backoff-* directives its action and duration (see the backoff section
-- below). A domain inherits both from <domain *>, as in PowerMTA.
local M = {}

local PATH = {
  ['max-msg-rate'] = 'max_message_rate', ['max-smtp-out'] = 'connection_limit',
  ['max-msg-per-connection'] = 'max_deliveries_per_connection',
  ['max-connect-rate'] = 'max_connection_rate',
}
local QUEUE = { ['retry-after'] = 'retry_interval', ['bounce-after'] = 'max_age' }
local DKIM = {
  ['dkim-algorithm'] = 'algo', ['dkim-body-canon'] = 'body_canonicalization',
  ['dkim-header-canon'] = 'header_canonicalization', ['dkim-headers-canon'] = 'header_canonicalization',
  ['dkim-headers'] = 'headers', ['dkim-identity'] = 'identity', ['dkim-expire-after'] = 'expiration',
}
-- What tern signs besides the headers dkim-headers adds.
local DKIM_BASE_HEADERS = { 'From', 'To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type' }
local NUMERIC = { connection_limit = true, max_deliveries_per_connection = true }

local function new_state()
  return { shaping = { defaults = {}, domains = {}, sources = {} }, sources = {}, pools = {},
           queues = { defaults = {}, domains = {} }, backoff = { defaults = {}, domains = {} },
           dkim = { sign = false, options = {}, keys = {} }, pattern_lists = {}, listen = {},
           relay_hosts = {}, unmapped = {} }
end

local function unmapped(st, node, why)
  st.unmapped[#st.unmapped + 1] = ('line %d: %s %s%s'):format(node.line, node.name, node.value,
    why and ('  (' .. why .. ')') or '')
end

local function yes(v)
  return v:lower() == 'yes' or v:lower() == 'true'
end

local function words(v)
  local out = {}
  for w in v:gmatch('[^%s,]+') do out[#out + 1] = w end
  return out
end

-- "[192.0.2.1]:2525" or "mx.example.com" -> "host:port".
local function host_port(h)
  local host, port = h:match('^%[?([^%]]+)%]?:(%d+)$')
  if host then return host .. ':' .. port end
  return h:gsub('^%[(.*)%]$', '%1') .. ':25'
end

local function rate(v)
  if v:lower() == 'unlimited' then return nil end
  return v
end

local function path_value(key, v)
  if NUMERIC[key] then return v:lower() ~= 'unlimited' and tonumber(v) or nil end
  return rate(v)
end

-- A <domain> block's directives into the tables it touches: path settings,
-- and queue and backoff settings where given a table (not inside a VMTA);
-- DKIM settings only in <domain *>, as tern signs at reception.
local function domain_block(st, block, path, queue, backoff, top_level_default)
  local tls = {}
  for _, d in ipairs(block.children) do
    local key = d.name:lower()
    if d.block then
      unmapped(st, d, 'block inside <domain>')
    elseif PATH[key] then
      path[PATH[key]] = path_value(PATH[key], d.value)
    elseif key == 'use-starttls' or key == 'require-starttls' then
      tls[key] = yes(d.value)
    elseif key == 'mx-rollup' then
      -- tern always queues by MX site (its "rollup"): nothing to carry over.
    elseif queue and QUEUE[key] then
      queue[QUEUE[key]] = d.value
    elseif queue and (key == 'route' or key == 'smtp-hosts') then
      queue.mx_list = {}
      for _, h in ipairs(words(d.value)) do queue.mx_list[#queue.mx_list + 1] = host_port(h) end
    elseif backoff and (key:match('^backoff%-') or key == 'smtp-pattern-list') then
      backoff[key] = d
    elseif top_level_default and key == 'dkim-sign' then
      st.dkim.sign = yes(d.value)
    elseif top_level_default and DKIM[key] then
      st.dkim.options[DKIM[key]] = d.value
    else
      unmapped(st, d, not top_level_default and key:match('^dkim') and 'tern signs at reception, not per destination' or nil)
    end
  end
  if tls['require-starttls'] then path.enable_tls = 'required'
  elseif tls['use-starttls'] then path.enable_tls = 'opportunistic'
  elseif tls['use-starttls'] == false then path.enable_tls = 'disabled' end
end

local function top_domain(st, b)
  local name = b.value:lower()
  if name == '*' then
    domain_block(st, b, st.shaping.defaults, st.queues.defaults, st.backoff.defaults, true)
    return
  end
  -- Per-VMTA overrides of this domain may already be there (a nested block seen first).
  local path, queue, backoff = st.shaping.domains[name] or {}, {}, {}
  domain_block(st, b, path, queue, backoff, false)
  st.shaping.domains[name] = path
  if next(queue) then st.queues.domains[name] = queue end
  if next(backoff) then st.backoff.domains[name] = backoff end
end

local function vmta(st, b)
  local s = {}
  st.sources[b.value] = s
  st.first_vmta = st.first_vmta or b.value
  for _, d in ipairs(b.children) do
    if not d.block and d.name:lower() == 'smtp-source-host' then
      local w = words(d.value)
      s.source_address, s.ehlo_domain = w[1], w[2]
    elseif d.block and d.name:lower() == 'domain' then
      local path = {}
      domain_block(st, d, path, nil, nil, false)
      local name = d.value:lower()
      if name == '*' then
        st.shaping.sources[b.value] = path
      else
        st.shaping.domains[name] = st.shaping.domains[name] or {}
        st.shaping.domains[name].sources = st.shaping.domains[name].sources or {}
        st.shaping.domains[name].sources[b.value] = path
      end
    else
      unmapped(st, d)
    end
  end
end

local function pool(st, b)
  local members = {}
  st.pools[b.value] = members
  st.first_pool = st.first_pool or b.value
  for _, d in ipairs(b.children) do
    if not d.block and d.name:lower() == 'virtual-mta' then members[#members + 1] = d.value
    else unmapped(st, d) end
  end
end

local function source(st, b)
  for _, d in ipairs(b.children) do
    local key = d.name:lower()
    if key == 'always-allow-relaying' and yes(d.value) then
      st.relay_hosts[#st.relay_hosts + 1] = b.value == '0/0' and '0.0.0.0/0' or b.value
    elseif key == 'always-allow-relaying' then
      -- "no" is tern's default for hosts outside relay_hosts.
    elseif key == 'process-x-virtual-mta' then
      st.x_virtual_mta = st.x_virtual_mta or yes(d.value)
    elseif key == 'default-virtual-mta' then
      st.default_pool = d.value
    else
      unmapped(st, d)
    end
  end
end

-- A pattern list's `reply /regex/ mode=backoff` lines, the regexes of the
-- automation rules of the domains that name it; other lines (routing by
-- sender or recipient, other modes) have no tern equivalent here.
local function patterns(st, b)
  local list = { regex = {}, line = b.line, kind = b.name }
  for _, d in ipairs(b.children) do
    local re, opts = d.value:match('^/(.*)/%s*(.-)%s*$')
    if d.block or d.name:lower() ~= 'reply' or not re then
      unmapped(st, d, 'only reply /regex/ lines become automation rules')
    elseif opts:lower() ~= 'mode=backoff' then
      unmapped(st, d, 'only mode=backoff becomes an automation rule')
    else
      list.regex[#list.regex + 1] = re
    end
  end
  st.pattern_lists[b.value] = list
end

local function top_directive(st, d)
  local key = d.name:lower()
  if key == 'smtp-listener' then
    st.listen[#st.listen + 1] = (d.value:gsub('^0/0:', '0.0.0.0:'))
  elseif key == 'host-name' then
    st.hostname = d.value
  elseif key == 'domain-key' then
    local w = words(d.value)
    if #w == 3 then st.dkim.keys[w[2]:lower()] = { selector = w[1], key = w[3] }
    else unmapped(st, d, 'expected selector,domain,keyfile') end
  else
    unmapped(st, d, key == 'relay-domain' and 'tern relays for the hosts in relay_hosts' or nil)
  end
end

-- ---- backoff mode -> automation rules ----

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- backoff-* directives tern has no place for, and why.
local BACKOFF_UNMAPPED = {
  ['backoff-to-normal-after-delivery'] = 'tern ends a backoff after backoff-to-normal-after',
  ['backoff-retry-after'] = 'tern keeps its retry schedule during a backoff with a reduced rate',
}

-- backoff-* directives a rule carries (backoff-retry-after too, when no rate is reduced).
local BACKOFF_USED = { ['backoff-max-msg-rate'] = true, ['backoff-max-msg-per-hour'] = true,
                       ['backoff-to-normal-after'] = true }

local function backoff_rate(b)
  if b['backoff-max-msg-rate'] then return rate(b['backoff-max-msg-rate'].value) end
  local per_hour = b['backoff-max-msg-per-hour']
  if per_hour and per_hour.value:lower() ~= 'unlimited' then return per_hour.value .. '/h' end
end

-- One layer's rule from its own backoff directives over those of <domain *> (`inherited`):
-- a reduced rate is a `set` for backoff-to-normal-after (1h when not given, as tern needs
-- one); without one, backoff mode only retries after backoff-retry-after, so the path is
-- suspended that long. `inherited_by` counts the domains whose rules took
-- their settings from these (for <domain *>: its settings are not lost then).
local function backoff_rule(st, own, inherited, inherited_by)
  local b = setmetatable({}, { __index = inherited })
  for k, d in pairs(own) do b[k] = d end
  local list_dir = b['smtp-pattern-list']
  local list = list_dir and st.pattern_lists[list_dir.value]
  if list_dir and not list then
    unmapped(st, list_dir, 'no such <smtp-pattern-list>')
  elseif list then
    list.used = true
  end
  local active = list and #list.regex > 0
  for key, d in pairs(own) do
    local used = BACKOFF_USED[key] or (key == 'backoff-retry-after' and not backoff_rate(b))
    if used and not active and inherited_by == 0 then
      unmapped(st, d, 'no smtp-pattern-list puts this domain in backoff mode')
    elseif not used and key ~= 'smtp-pattern-list' then
      unmapped(st, d, BACKOFF_UNMAPPED[key])
    end
  end
  if not active then return nil end
  local max_rate, to_normal = backoff_rate(b), b['backoff-to-normal-after']
  if max_rate then
    return { regex = list.regex, action = { set = { max_message_rate = max_rate } },
             duration = to_normal and to_normal.value or '1h' }
  end
  local retry = b['backoff-retry-after']
  return { regex = list.regex, action = 'suspend',
           duration = retry and retry.value or to_normal and to_normal.value or '1h' }
end

-- Rules for <domain *> (the defaults) and for each domain with backoff directives of its own.
local function backoff_rules(st)
  local n = 0
  for _, name in ipairs(sorted_keys(st.backoff.domains)) do
    local rule = backoff_rule(st, st.backoff.domains[name], st.backoff.defaults, 0)
    if rule then st.shaping.domains[name].automation, n = { rule }, n + 1 end
  end
  local rule = backoff_rule(st, st.backoff.defaults, {}, n)
  if rule then st.shaping.defaults.automation = { rule } end
  for _, name in ipairs(sorted_keys(st.pattern_lists)) do
    local list = st.pattern_lists[name]
    if not list.used then
      unmapped(st, { line = list.line, name = '<' .. list.kind .. '>', value = name },
        'no <domain> names it with smtp-pattern-list')
    end
  end
end

local BLOCKS = { domain = top_domain, ['virtual-mta'] = vmta, ['virtual-mta-pool'] = pool,
                 source = source, ['pattern-list'] = patterns, ['smtp-pattern-list'] = patterns }

-- ---- writing Lua tables ----

local function lua_key(k)
  if type(k) == 'string' and k:match('^[%a_][%w_]*$') then return k end
  return '[' .. ('%q'):format(k) .. ']'
end

local function is_list(t)
  return #t > 0 or next(t) == nil
end

local function lua_value(v, indent, out)
  if type(v) ~= 'table' then
    out[#out + 1] = type(v) == 'string' and ('%q'):format(v) or tostring(v)
    return
  end
  if next(v) == nil then out[#out + 1] = '{}' return end
  local pad = indent .. '  '
  out[#out + 1] = '{\n'
  if is_list(v) then
    for _, item in ipairs(v) do
      out[#out + 1] = pad
      lua_value(item, pad, out)
      out[#out + 1] = ',\n'
    end
  else
    for _, k in ipairs(sorted_keys(v)) do
      out[#out + 1] = pad .. lua_key(k) .. ' = '
      lua_value(v[k], pad, out)
      out[#out + 1] = ',\n'
    end
  end
  out[#out + 1] = indent .. '}'
end

local function inline_list(list)
  local quoted = {}
  for i, v in ipairs(list) do quoted[i] = ('%q'):format(v) end
  return '{ ' .. table.concat(quoted, ', ') .. ' }'
end

local function data_file(comment, value)
  local out = { '-- ' .. comment .. '\nreturn ' }
  lua_value(value, '', out)
  out[#out + 1] = '\n'
  return table.concat(out)
end

local function policy_file(st, conf)
  local lines = { '-- Imported from ' .. conf .. ' by `tern import pmta`.' }
  if #st.unmapped > 0 then
    lines[#lines + 1] = ('-- %d directive(s) not imported:'):format(#st.unmapped)
    for _, u in ipairs(st.unmapped) do lines[#lines + 1] = '--   ' .. u end
  end
  local listen = st.listen[1] and ('%q'):format(st.listen[1]) or "'0.0.0.0:25'"
  lines[#lines + 1] = ([[
local shaping = require 'tern.shaping'
local dkim = require 'tern.dkim'
local sources = require 'data.sources'
local pools = require 'data.pools'
local queues = require 'data.queues'
local signing_cfg = require 'data.dkim'

local dir = os.getenv('TERN_DIR') or './var'

tern.on('init', function()
  tern.define_spool { path = dir .. '/spool' }
  tern.configure_local_logs { log_dir = dir .. '/log' }
  tern.start_esmtp_listener { listen = os.getenv('TERN_LISTEN') or %s, hostname = %q,
                              relay_hosts = %s }
end)

tern.on('get_egress_source', function(name)
  local s = sources[name] or {}
  return tern.make_egress_source { name = name, source_address = s.source_address,
                                   ehlo_domain = s.ehlo_domain }
end)

-- A pool is a <virtual-mta-pool>; a lone VirtualMTA is a pool of itself.
tern.on('get_egress_pool', function(name)
  local entries = {}
  for _, member in ipairs(pools[name] or { name }) do entries[#entries + 1] = { name = member, weight = 1 } end
  return tern.make_egress_pool { name = name, entries = entries }
end)

-- The pool a message asked for (X-Virtual-MTA) rides in its tenant.
tern.on('get_queue_config', function(domain, tenant, campaign)
  local q = queues.domains[domain] or {}
  local pool = (pools[tenant] or sources[tenant]) and tenant or queues.default_pool
  return tern.make_queue_config { egress_pool = pool,
                                  retry_interval = q.retry_interval or queues.defaults.retry_interval,
                                  max_age = q.max_age or queues.defaults.max_age, mx_list = q.mx_list }
end)

local shape = shaping.new(require 'data.shaping')

tern.on('get_egress_path_config', function(domain, source, site)
  return shape:path(domain, source, site)
end)

local keys = {}
for domain, k in pairs(signing_cfg.keys) do
  keys[domain] = { selector = k.selector, key = k.key }
  for option, v in pairs(signing_cfg.options) do keys[domain][option] = v end
end
local signing = dkim.from_table(keys)

tern.on('smtp_server_message_received', function(msg)
  local vmta = %s and msg:get_header('X-Virtual-MTA')
  if vmta then
    msg:set_meta('tenant', vmta)
    msg:remove_header('X-Virtual-MTA')
  end
  if signing_cfg.sign then
    local from = (msg:get_header('From') or ''):match('@([%%w%%.%%-]+)') or ''
    for _, signer in ipairs(signing:signers_for(from:lower())) do msg:dkim_sign(signer) end
  end
end)]]):format(listen, st.hostname or (st.sources[st.first_vmta or ''] or {}).ehlo_domain or 'localhost',
    inline_list(st.relay_hosts[1] and st.relay_hosts or { '127.0.0.1' }),
    st.x_virtual_mta and 'true' or 'false')
  return table.concat(lines, '\n') .. '\n'
end

local function dkim_options(st)
  local o = st.dkim.options
  if o.algo then o.algo = o.algo:lower():match('^ed25519') and 'ed25519' or 'rsa' end
  if o.headers then
    local h = { unpack(DKIM_BASE_HEADERS) }
    for _, extra in ipairs(words(o.headers)) do h[#h + 1] = extra end
    o.headers = h
  end
end

-- tree: the root node ({ children = {...} }); conf: the file's name.
-- Returns { files = { [relative path] = text }, unmapped = { "line N: ..." } }.
function M.convert(tree, conf)
  local st = new_state()
  for _, node in ipairs(tree.children) do
    local handler = node.block and BLOCKS[node.name:lower()]
    if handler then handler(st, node)
    elseif node.block then unmapped(st, node, ('block with %d directive(s)'):format(#node.children))
    else top_directive(st, node) end
  end
  dkim_options(st)
  backoff_rules(st)
  table.sort(st.unmapped, function(a, b)
    return tonumber(a:match('^line (%d+)')) < tonumber(b:match('^line (%d+)'))
  end)
  st.queues.default_pool = st.default_pool or st.first_pool or st.first_vmta or 'default'
  -- The import does what pmta.conf did: tern's own provider rules stay out until asked for.
  st.shaping.automation_defaults = false
  return { unmapped = st.unmapped, files = {
    ['policy.lua'] = policy_file(st, conf),
    ['data/shaping.lua'] = data_file('Per-destination limits (<domain> blocks), per VirtualMTA where nested;\n'
      .. '-- automation: backoff mode (smtp-pattern-list, backoff-*); automation_defaults = false\n'
      .. '-- keeps out the rules tern ships for the large providers (remove it to add them).',
      st.shaping),
    ['data/sources.lua'] = data_file('VirtualMTAs: source address and EHLO name.', st.sources),
    ['data/pools.lua'] = data_file('VirtualMTA pools.', st.pools),
    ['data/queues.lua'] = data_file('Retry, expiry and routes per destination.', st.queues),
    ['data/dkim.lua'] = data_file('DKIM: whether to sign, signer options, keys by domain.', st.dkim),
  } }
end

return M
