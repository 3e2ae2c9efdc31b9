-- SPDX-License-Identifier: MIT
-- What `make run` starts: SMTP on 127.0.0.1:2525 accepting mail from this
-- machine, a RocksDB spool under ./var/spool, outcome records under ./var/log.
-- Everything is relayed to a smart host on 127.0.0.1:2526 (run
-- `./ternd --policy policy-examples/sink.lua` there to see it arrive); remove
-- get_queue_config to deliver by MX instead.
--
--   swaks --server 127.0.0.1:2525 --from me@example.com --to you@example.net
--   ./tern spool list --spool var/spool
tern.on('init', function()
  tern.define_spool { path = 'var/spool' }
  tern.configure_local_logs { log_dir = 'var/log', max_segment_duration = '5m' }
  tern.start_esmtp_listener {
    listen = '127.0.0.1:2525',
    hostname = 'localhost',
    relay_hosts = { '127.0.0.0/8', '::1' },
  }
end)

-- Tag each message with its tenant from an X-Tenant header, so that it joins
-- the queue "tenant@domain".
tern.on('smtp_server_message_received', function(msg)
  msg:import_x_headers { 'X-Tenant', 'X-Campaign' }
  local tenant = msg:get_meta('x-tenant')
  if tenant then
    msg:set_meta('tenant', tenant)
    msg:remove_header('X-Tenant')
  end
end)

tern.on('get_queue_config', function(domain, tenant, campaign)
  return tern.make_queue_config { mx_list = { '127.0.0.1:2526' }, retry_interval = '1m' }
end)
