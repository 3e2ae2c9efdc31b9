tern.on('smtp_server_auth_plain', function(authz, authc, password, conn)
  return authc == 'alice' and password == 'secret'
end)
