/* SPDX-License-Identifier: MIT */
/*
 * tern.http: asynchronous HTTP(S) from any hook, on the calling shard's loop
 * (core/http_client.c).
 *
 *   local res, err = tern.http.request { method = 'POST', url = 'https://...',
 *       headers = { ['Content-Type'] = 'application/json' }, body = '...',
 *       timeout = '5s', insecure = false }
 *       -- yields; res = { status = 200, headers = { ['content-type'] = '...' },
 *       --                 body = '...' }  (header names in lower case)
 *       -- or nil, 'Timeout was reached' | "Couldn't connect to server" | ...
 *
 * Not allowed where yielding is not (memoized config hooks, top level).
 */
#ifndef TERN_LUA_HTTP_H
#define TERN_LUA_HTTP_H

#include <lua.h>

/* With the `tern` table on top of the stack: set tern.http = {...}. */
void lua_http_open(lua_State *L);

#endif
