-- Hooks that yield: replies must still come in command order.
tern.on('smtp_server_connection_accepted', function(conn)
  tern.sleep(0.05)
end)
tern.on('smtp_server_ehlo', function(domain, conn)
  tern.sleep(0.02)
end)
tern.on('smtp_server_rcpt_to', function(rcpt, conn)
  if rcpt:find('^slow') then tern.sleep(0.1) end
  if rcpt:find('^no') then tern.sleep(0.05); tern.reject(550, '5.1.1 unknown') end
end)
tern.on('smtp_server_message_received', function(msg, conn)
  if msg:get_header('Subject') == 'slow' then tern.sleep(0.2) end
  msg:set_meta('seen', 'yes')
end)
