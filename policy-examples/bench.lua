-- SPDX-License-Identifier: MIT
-- The policy bench/run starts ternd with: one listener that accepts mail for
-- any domain from loopback and spools it durably (250 only after the synced
-- group commit), Reception and Delivery records in local logs, a tenant taken
-- from a header as a production policy would, optional DKIM signing, and
-- delivery to a sink through a loopback DNS server.
--
-- Settings come from the environment so that bench/run can place everything
-- in its own temporary directory:
--   TERN_BENCH_LISTEN    listener (default 127.0.0.1:2525)
--   TERN_BENCH_DIR       spool and logs (default ./var/bench)
--   TERN_BENCH_DNS       DNS server "ip:port"; with it, messages are delivered
--                        (MX hosts must resolve to the sink). Without it and
--                        without TERN_BENCH_MX (the reception scenario),
--                        messages are spooled durably and held: the path
--                        to a closed loopback port opens one connection an
--                        hour, so they wait in its ready queue.
--   TERN_BENCH_SMTP_PORT the port every MX listens on (default 25)
--   TERN_BENCH_MX        "host:port": every domain goes there, no DNS
--   TERN_BENCH_RETRY     retry_interval of the queues (default 10m)
--   TERN_BENCH_DKIM      rsa | ed25519 | none (default none)
--   TERN_BENCH_DKIM_KEY  the key file (`tern dkim genkey`) for d=sender.test, s=bench
--   TERN_BENCH_PARTITIONS spool partitions (default 1: one group commit for all)
--   TERN_BENCH_HTTP      "ip:port" of an HTTP listener (GET /metrics), none by default
--   TERN_BENCH_WEBHOOK   a URL: Delivery records go there through a log hook
--                        (tern.log_hooks.webhook, signed with the secret 'bench')
--   TERN_BENCH_REDIS     "ip:port" of a Redis: fleet mode, paths' limits shared there
--   TERN_BENCH_RATE      max_message_rate of every path ('local:...' keeps it per node)
local dkim = require 'tern.dkim'

local listen = os.getenv('TERN_BENCH_LISTEN') or '127.0.0.1:2525'
local dir = os.getenv('TERN_BENCH_DIR') or './var/bench'
local dns = os.getenv('TERN_BENCH_DNS')
local mx = os.getenv('TERN_BENCH_MX')
local smtp_port = tonumber(os.getenv('TERN_BENCH_SMTP_PORT') or '25')
local retry = os.getenv('TERN_BENCH_RETRY') or '10m'
local algo = os.getenv('TERN_BENCH_DKIM') or 'none'
local held_connection_rate
if dns == nil and mx == nil then
  mx, retry, held_connection_rate = '127.0.0.1:9', '1h', '1/h'
end

if dns then
  tern.dns.configure { servers = { dns }, timeout = '2s' }
end

tern.on('init', function()
  tern.define_spool { path = dir .. '/spool',
                      partitions = tonumber(os.getenv('TERN_BENCH_PARTITIONS') or '1') }
  tern.configure_local_logs { log_dir = dir .. '/log', max_segment_duration = '10s' }
  tern.start_esmtp_listener {
    listen = listen,
    hostname = 'bench.test',
    relay_hosts = { '127.0.0.0/8', '::1' },
  }
  if os.getenv('TERN_BENCH_HTTP') then
    tern.start_http_listener { listen = os.getenv('TERN_BENCH_HTTP') }
  end
  if os.getenv('TERN_BENCH_REDIS') then
    tern.configure_redis { servers = { os.getenv('TERN_BENCH_REDIS') }, node_id = 'bench' }
  end
end)

local signing
if algo ~= 'none' then
  signing = dkim.from_table {
    ['sender.test'] = { selector = 'bench', algo = algo,
                        key = assert(os.getenv('TERN_BENCH_DKIM_KEY'), 'TERN_BENCH_DKIM_KEY') },
  }
end

tern.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', msg:get_header('X-Tenant') or 'bench')
  if signing then
    for _, signer in ipairs(signing:signers_for(msg:from_domain() or '')) do
      msg:dkim_sign(signer)
    end
  end
end)

tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = retry, mx_list = mx and { mx } or nil }
end)

-- Generous limits, so that tern, not the shaping, is the bottleneck.
tern.on('get_egress_path_config', function()
  return tern.make_egress_path { connection_limit = 20, max_deliveries_per_connection = 1000,
                                 enable_tls = 'disabled', smtp_port = smtp_port,
                                 max_message_rate = os.getenv('TERN_BENCH_RATE'),
                                 max_connection_rate = held_connection_rate }
end)

if os.getenv('TERN_BENCH_WEBHOOK') then
  local log_hooks = require 'tern.log_hooks'
  tern.configure_log_hook {
    name = 'bench', types = { 'Delivery' }, batch_size = 500, max_latency = '1s',
    deliver = log_hooks.webhook { url = os.getenv('TERN_BENCH_WEBHOOK'), secret = 'bench' },
  }
end
