-- SPDX-License-Identifier: MIT
-- tern.warmup: schedules parse into the engine's plans, the engine's stage and cap follow the
-- calendar, and a mistake names the policy's file:line.
local t = require 'tern.testing'
local warmup = require 'tern.warmup'

tern.on('main', function()
  local day = 86400
  local now = os.time()
  local plan = warmup.new {
    sources = {
      ['ip-a'] = { start = now - 2.5 * day, stages = { '200/day', '500/day', '1000/day' } },
      ['ip-b'] = { start = now - 1.5 * day, first = '100/day', growth = 2, max = '1000/day',
                   providers = { google = '30/day', other = { mx_suffix = '.example.net', cap = '5/day' } } },
      ['ip-c'] = { start = '2999-01-01', stages = { '10/day' } },
      ['ip-d'] = { start = now - 10 * day, stages = { '10/day', '20/day' } },
      ['ip-e'] = { start = now - 0.5 * day, stages = { '48/day' }, every = '12h' },
    },
    max_bounce_rate = '2%',
  }
  local b = plan.engine.plans[2]
  t.eq(b.source, 'ip-b', 'plans are sorted by source name')
  t.eq(b.providers[1].suffix, '.google.com', 'a provider name gives the domain its MX hosts share')
  t.eq(b.providers[2].suffix, '.example.net', 'an explicit mx_suffix is kept')
  t.eq(plan.engine.max_bounce_rate, 0.02, 'a percentage becomes a fraction')
  t.eq(plan.engine.plans[5].caps[1], 24, 'a cap per day is counted per stage (12h: half)')
  t.eq(warmup.new { sources = { x = { start = '2026-12-01', stages = { 1 } } } }.engine.plans[1].start,
    1796083200, 'a date is midnight UTC')
  plan:apply()
  local a = tern.warmup.state('ip-a')
  t.eq(a.stage, 2, 'two and a half days in: the third stage')
  t.eq(a.cap, 1000, 'its cap')
  t.eq(a.paused, false, 'not paused')
  t.eq(tern.warmup.state('ip-b').cap, 200, 'growth: first * growth^stage')
  t.eq(tern.warmup.state('ip-c').stage, -1, 'before its start a source has no stage')
  t.eq(tern.warmup.state('ip-c').cap, 0, 'and sends nothing')
  t.eq(tern.warmup.state('ip-d').cap, -1, 'after the last stage the warm-up is over')
  t.eq(tern.warmup.state('ip-z'), nil, 'a source without a plan is not warming')
  local ok, err = tern.warmup.resume('ip-z')
  t.eq(ok, nil, 'resuming a source that is not warming fails')
  t.eq(err, "source 'ip-z' is not warming up", 'and says why')

  local line = debug.getinfo(1, 'l').currentline + 1
  local bad_ok, bad = pcall(function() local p = warmup.new { sources = { x = { start = 'tomorrow' } } }; return p end)
  t.eq(bad_ok, false, 'a bad date is refused')
  t.eq(bad:match('warmup_test%.lua:(%d+): tern%.warmup: source x: start .tomorrow. is not a date'),
    tostring(line), 'naming the file:line of warmup.new')
  t.raises(function() warmup.new { sources = { x = { start = '2026-12-01', stages = { '1/fortnight' } } } } end,
    "stage 1 '1/fortnight' is not 'N/day'", 'a bad cap is refused')
  t.raises(function() warmup.new { sources = { x = { start = '2026-12-01', first = '1/day' } } } end,
    'needs stages, or first = N/day and growth >= 1', 'a growth rule needs its growth')
  t.raises(function() warmup.new { sources = { x = { start = '2026-12-01', stages = { 1 }, colour = 1 } } } end,
    "unknown option 'colour'", 'unknown keys are refused')
  t.raises(function() warmup.new { sources = { x = { start = '2026-12-01', stages = { 1 },
                                                       providers = { nowhere = '1/day' } } } } end,
    "unknown provider 'nowhere'", 'an unknown provider name is refused')
  t.raises(function() warmup.new { min_messages = 'many' } end, 'min_messages must be a number of 1 or more',
    'min_messages is checked where the plan is written')
  t.raises(function() tern.warmup.configure { plans = { { source = 'x', period = 0 } } } end,
    "option 'period' must be a positive number", 'the binding checks what it reads')
  tern.warmup.configure { plans = {} }
  t.eq(tern.warmup.state('ip-a'), nil, 'a new configuration without a source stops its warm-up')
  return t.done()
end)
