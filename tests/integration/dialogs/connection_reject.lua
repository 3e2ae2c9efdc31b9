-- Connections are numbered through a file: each shard has its own Lua state.
local function next_connection()
  local f = io.open('{dir}/connections')
  local n = (f and tonumber(f:read('*a')) or 0) + 1
  if f then f:close() end
  f = io.open('{dir}/connections', 'w')
  f:write(n)
  f:close()
  return n
end

tern.on('smtp_server_connection_accepted', function(conn)
  local n = next_connection()
  if n == 1 or n == 4 then tern.reject(554, '5.7.1 no service for you') end
  if n == 2 then tern.reject(421) end
  if n == 3 then error('policy bug') end
end)
