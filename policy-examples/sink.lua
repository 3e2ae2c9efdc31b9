-- SPDX-License-Identifier: MIT
-- A receiver for tests and benchmarks: accepts every message, logs a
-- Reception record (with the sending peer's address) and discards it.
-- Replies can be scripted per recipient by local part:
--   tempfail...@     -> 451 4.3.0
--   permfail...@     -> 550 5.1.1
--   code-NNN-X.Y.Z...@ -> NNN X.Y.Z (e.g. code-452-4.2.2-full@example.com)
--
-- Settings come from the environment so one file serves every test:
--   TERN_SINK_LISTEN (default 127.0.0.1:2526), TERN_SINK_DIR (default ./var/sink),
--   TERN_SINK_HOSTNAME (default sink.test)
local listen = os.getenv('TERN_SINK_LISTEN') or '127.0.0.1:2526'
local dir = os.getenv('TERN_SINK_DIR') or './var/sink'
local hostname = os.getenv('TERN_SINK_HOSTNAME') or 'sink.test'

tern.on('init', function()
  tern.define_spool { path = dir .. '/spool' }
  tern.configure_local_logs { log_dir = dir .. '/log', max_segment_duration = '1s' }
  tern.start_esmtp_listener {
    listen = listen,
    hostname = hostname,
    relay_hosts = { '0.0.0.0/0', '::/0' },
    max_message_size = '64MiB',
  }
end)

-- The scripted reply for a recipient, or nil to accept it.
local function scripted_reply(recipient)
  local localpart = recipient:match('^([^@]*)') or ''
  if localpart:find('^tempfail') then
    return 451, '4.3.0 temporary failure requested by recipient'
  elseif localpart:find('^permfail') then
    return 550, '5.1.1 permanent failure requested by recipient'
  end
  local code, enhanced = localpart:match('^code%-(%d%d%d)%-(%d%.%d+%.%d+)')
  if code then
    return tonumber(code), enhanced .. ' scripted reply'
  end
end

tern.on('smtp_server_rcpt_to', function(recipient)
  local code, text = scripted_reply(recipient)
  if code then
    tern.reject(code, text)
  end
end)

tern.on('smtp_server_message_received', function(msg)
  msg:set_meta('queue', 'null')
end)
