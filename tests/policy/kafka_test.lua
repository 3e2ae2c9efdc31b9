-- SPDX-License-Identifier: MIT
-- tern.kafka against librdkafka's mock cluster (test.mock.num.brokers: brokers inside the
-- process, no network): send yields until every message is acknowledged, concurrent sends
-- overlap, an unreachable broker fails after the timeout without blocking the shard, and
-- lua/tern/kafka.lua's deliver function keys and encodes records.
local t = require 'tern.testing'
local kafka = require 'tern.kafka'

local MOCK = { ['test.mock.num.brokers'] = '1' }

tern.on('main', function()
  local p = tern.kafka.producer { topic = 'events', properties = MOCK }
  local ok, err = p:send({ 'one', { key = 'k', value = 'two' }, { type = 'Delivery', id = 'x' } })
  t.eq(ok, true, 'three messages acknowledged by the mock broker: ' .. tostring(err))
  t.eq(p:send({}), true, 'an empty batch is sent at once')

  -- Sends from several tasks wait together, not one after the other.
  local tasks = {}
  for i = 1, 5 do
    tasks[i] = tern.spawn(function()
      local msgs = {}
      for j = 1, 200 do msgs[j] = ('task %d message %d'):format(i, j) end
      return p:send(msgs)
    end)
  end
  for i = 1, 5 do
    local done, sent = tasks[i]:join()
    t.ok(done and sent == true, 'concurrent batch ' .. i .. ' acknowledged')
  end

  -- Nothing listens on port 1: every message fails after the timeout, and meanwhile the shard
  -- runs other coroutines (a sleeper wakes on time).
  local dead = tern.kafka.producer { brokers = { '127.0.0.1:1' }, topic = 'events', timeout = '1s' }
  local woke
  local sleeper = tern.spawn(function() tern.sleep(0.2); woke = tern.now() end)
  local start = tern.now()
  local sent, why = dead:send({ 'a', 'b' })
  local took = tern.now() - start
  sleeper:join()
  t.eq(sent, nil, 'an unreachable broker: send returns nil')
  t.ok(why and why:find('2 message%(s%) not acknowledged') ~= nil, 'and says why: ' .. tostring(why))
  t.ok(took >= 0.9 and took < 10, ('after about the timeout (%.2f s)'):format(took))
  t.ok(woke and woke - start < 0.9, 'the shard kept running while send waited')

  local deliver = kafka.kafka { topic = 'events', key = 'recipient', properties = MOCK }
  t.eq(deliver({ { type = 'Bounce', recipient = 'a@x.test' }, '{"type":"Delivery","recipient":"b@x.test"}' }),
       true, 'kafka{...} delivers records (tables and JSON text)')

  local okc, e = pcall(tern.kafka.producer, { topic = 'x', brokers = 'h:1', colour = 1 })
  t.ok(not okc and e:find("unknown option 'colour'") ~= nil, 'unknown options are refused')
  okc, e = pcall(tern.kafka.producer, { topic = 'x', properties = { ['no.such.setting'] = '1' } })
  t.ok(not okc and e:find("kafka setting 'no.such.setting'") ~= nil, 'bad librdkafka settings are named: ' .. tostring(e))
  okc, e = pcall(kafka.kafka, { brokers = 'h:1' })
  t.ok(not okc and e:find('topic is required') ~= nil, 'kafka{} needs a topic')
  return t.done()
end)
