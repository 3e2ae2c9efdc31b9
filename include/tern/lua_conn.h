/* SPDX-License-Identifier: MIT */
/*
 * The connection as hooks see it (`conn`): peer and local address, listener,
 * EHLO name, TLS details, authenticated id, and a per-connection metadata
 * table that lives as long as the connection. The SMTP session owns the
 * struct conn_info (conn.h); Lua holds a handle that conn_info_deinit()
 * clears through the release callback set here.
 */
#ifndef TERN_LUA_CONN_H
#define TERN_LUA_CONN_H

#include <lua.h>

#include "tern/conn.h"

void lua_conn_open(lua_State *L);
void lua_conn_push(lua_State *L, struct conn_info *ci);

#endif
