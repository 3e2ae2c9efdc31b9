-- SPDX-License-Identifier: MIT
-- The policy bench/run starts ternd with: one listener that accepts mail for
-- any domain from loopback and spools it durably (250 only after the synced
-- group commit), Reception records in local logs, a tenant taken from a header
-- as a production policy would. It needs no DNS: nothing here resolves names.
--
-- Settings come from the environment so that bench/run can place everything
-- in its own temporary directory:
--   TERN_BENCH_LISTEN (default 127.0.0.1:2525), TERN_BENCH_DIR (default ./var/bench)
local listen = os.getenv('TERN_BENCH_LISTEN') or '127.0.0.1:2525'
local dir = os.getenv('TERN_BENCH_DIR') or './var/bench'

tern.on('init', function()
  tern.define_spool { path = dir .. '/spool' }
  tern.configure_local_logs { log_dir = dir .. '/log', max_segment_duration = '10s' }
  tern.start_esmtp_listener {
    listen = listen,
    hostname = 'bench.test',
    relay_hosts = { '127.0.0.0/8', '::1' },
  }
end)

tern.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', msg:get_header('X-Tenant') or 'bench')
end)
