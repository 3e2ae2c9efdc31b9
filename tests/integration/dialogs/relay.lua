tern.on('get_listener_domain', function(domain, listener, conn)
  return domain == 'local.test'
end)
