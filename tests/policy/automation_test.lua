-- SPDX-License-Identifier: MIT
-- tern.shaping automation rules: compiled once when the shaping object is made, listed per
-- path in domain, provider, shipped, default order, and refused with the rule's place when
-- malformed; the rules tern ships watch their providers' sites unless turned off.
local t = require 'tern.testing'
local shaping = require 'tern.shaping'

tern.on('main', function()
  local shape = shaping.new {
    automation_defaults = false,
    automation = { { regex = 'S3150', action = 'suspend_source', duration = '4h' } },
    providers = { google = { mx_suffixes = { '.google.com' }, automation = {
      { regex = { '4\\.7\\.28', 'unusual rate' }, action = 'suspend', duration = '1h' },
      shaping.rule { regex = 'TSS04', duration = '30m', trigger = '3/5m',
                     action = { set = { max_message_rate = '30/min', connection_limit = 2 } } },
    } } },
    domains = { ['gmail.com'] = { automation = { { regex = 'x', action = 'bounce' } } } },
  }
  local g = shape:settings('gmail.com', 'ip-1', 'gmail-smtp-in.l.google.com.')
  t.eq(#g.automation, 4, 'a gmail path is watched by the domain, provider and default rules')
  local order = {}
  for i, id in ipairs(g.automation) do order[i] = id end
  t.ok(order[1] > order[4] and order[2] < order[3], 'the domain rule comes first, the default last')
  local other = shape:settings('example.net', 'ip-1', 'mx.example.net.')
  t.eq(#other.automation, 1, 'another site has the default rule only')
  t.eq(shaping.new {}:settings('a', 'b', 'c').automation, nil, 'no rules: no automation key')
  local shipped = #require('tern.data.automation').google.automation
  local mine = { regex = 'mine', action = 'bounce' }
  local with = shaping.new { providers = { g = { mx_suffixes = { '.google.com' },
                                                 automation = { mine } } } }
  local ids = with:settings('gmail.com', 'ip-1', 'gmail-smtp-in.l.google.com.').automation
  t.eq(#ids, 1 + shipped, "a gmail site is watched by tern's Google rules after the operator's")
  t.ok(ids[1] > ids[2], "the operator's own rule comes first (it was compiled last)")
  t.eq(with:settings('x.net', 'ip-1', 'mx.x.net.').automation, nil,
    "another provider's site gets none of them")
  t.raises(function() shaping.new { automation_defaults = 'no' } end,
    'automation_defaults must be true or false', 'automation_defaults is a boolean')
  t.eq(type(shape:path('gmail.com', 'ip-1', 'gmail-smtp-in.l.google.com.')), 'table',
    'make_egress_path takes the rule list')

  t.raises(function() shaping.new { automation = { { regex = '(', action = 'suspend',
    duration = '1h' } } } end, 'bad regex', 'a bad regex is refused when the shape is made')
  t.raises(function() shaping.new { automation = { { regex = 'a', action = 'pause',
    duration = '1h' } } } end, "action must be 'suspend'", 'an unknown action is refused')
  t.raises(function() shaping.new { automation = { { regex = 'a', action = 'suspend' } } } end,
    'duration is required', 'a suspension needs a duration')
  t.raises(function() shaping.new { automation = { { regex = 'a', action = 'suspend',
    duration = '1h', trigger = 'often' } } } end, "trigger must be 'immediate' or 'N/period'",
    'a malformed trigger is refused')
  t.raises(function() shaping.new { automation = { { regex = 'a', action = 'suspend',
    duration = '1h', colour = 1 } } } end, 'automation[1]: unknown key colour',
    'an unknown key is refused naming the rule')
  t.raises(function() shaping.new { automation = { { regex = 'a', duration = '1h',
    action = { set = { max_message_rate = 'fast' } } } } } end, "is not a rate",
    'a set action with a bad rate is refused')
  t.raises(function() tern.shaping_state.clear {} end, 'is required',
    'clearing needs a key')
  t.raises(function() tern.shaping_state.clear { ip = 'x' } end, "unknown option 'ip'",
    'clearing refuses an unknown key')
  t.eq(tern.shaping_state.clear { source = 'ip-1' }, 0, 'clearing what is not there lifts nothing')
  t.eq(tern.shaping_state.list(), '[]', 'no states: an empty list')
  return t.done()
end)
