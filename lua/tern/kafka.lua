-- SPDX-License-Identifier: MIT
-- tern.kafka senders for log hooks. kafka{ brokers, topic, key, timeout, properties } returns
-- a deliver function for tern.configure_log_hook: deliver(records) sends one Kafka message per
-- record (its JSON) and returns true only once the broker has acknowledged every one, so a
-- hook's cursor moves past records only when Kafka holds them.
--
--   local kafka = require 'tern.kafka'
--   tern.configure_log_hook { name = 'kafka', types = { 'Delivery', 'Bounce' },
--     deliver = kafka.kafka { brokers = { 'k1:9092', 'k2:9092' }, topic = 'mail-events',
--                             key = 'recipient' } }
--
-- key names a record field (its value keys the message, so that one recipient's events stay in
-- order on one partition) or is a function(record) -> string; without it messages have no key.
-- A record may be a table or its JSON text.
local M = {}

local OPTIONS = { brokers = true, topic = true, key = true, timeout = true, properties = true }

local function key_of(key, record)
  if key == nil then
    return nil
  end
  if type(key) == 'function' then
    return key(record)
  end
  if type(record) == 'string' then
    record = tern.json.decode(record)
  end
  local v = record[key]
  return v ~= nil and v ~= tern.json.null and tostring(v) or nil
end

function M.kafka(opts)
  if type(opts) ~= 'table' then
    error('kafka: options must be a table { brokers, topic, key }', 2)
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      error(("kafka: unknown option '%s'"):format(tostring(k)), 2)
    end
  end
  if type(opts.topic) ~= 'string' or opts.topic == '' then
    error('kafka: option topic is required', 2)
  end
  if opts.key ~= nil and type(opts.key) ~= 'string' and type(opts.key) ~= 'function' then
    error('kafka: key must be a record field name or a function', 2)
  end
  -- Each shard runs its own copy of the policy, so this producer is the calling shard's.
  local producer = tern.kafka.producer { brokers = opts.brokers, topic = opts.topic,
                                         timeout = opts.timeout, properties = opts.properties }
  return function(records)
    local msgs = {}
    for i, record in ipairs(records) do
      local value = type(record) == 'string' and record or tern.json.encode(record)
      msgs[i] = { key = key_of(opts.key, record), value = value }
    end
    return producer:send(msgs)
  end
end

return M
