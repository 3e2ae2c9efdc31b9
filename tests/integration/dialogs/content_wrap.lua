-- The hooks (and DKIM signing in them) see the wrapped message: the folded
-- field unfolds to what the client sent.
tern.on('smtp_server_data', function(msg, conn)
  local v = msg:get_header('X-Long')
  if v ~= string.rep('word ', 299) .. 'word' then
    tern.reject(550, '5.7.1 X-Long came out as ' .. tostring(v and #v))
  end
end)
