tern.on('smtp_server_rcpt_to', function(rcpt, conn)
  if rcpt == 'boom@d.test' then error('policy bug') end
end)
tern.on('smtp_server_data', function(msg, conn)
  if msg:get_header('Subject') == 'boom' then
    local t = nil
    return t.field
  end
end)
