tern.on('smtp_server_mail_from', function(sender, conn)
  if sender == 'spammer@b.test' then tern.reject(550, '5.7.1 go away') end
end)
tern.on('smtp_server_rcpt_to', function(rcpt, conn)
  if rcpt == 'nobody@d.test' then tern.reject(550, '5.1.1 no such user') end
  if rcpt == 'full@d.test' then tern.reject(452, '4.2.2 mailbox full') end
  if rcpt == 'plain@d.test' then tern.reject(553) end
end)
tern.on('smtp_server_message_received', function(msg, conn)
  if msg:get_header('Subject') == 'reject me' then tern.reject(554, '5.7.0 content refused') end
end)
