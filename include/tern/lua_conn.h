/* SPDX-License-Identifier: MIT */
/*
 * The connection as hooks see it (`conn`): peer and local address, listener,
 * EHLO name, TLS details, authenticated id, and a per-connection metadata
 * table that lives as long as the connection. The SMTP session owns the
 * struct conn_info; Lua holds a handle that conn_info_deinit() clears.
 */
#ifndef TERN_LUA_CONN_H
#define TERN_LUA_CONN_H

#include <lua.h>

struct conn_info {
	char peer_address[64]; /* "127.0.0.1" */
	int peer_port;
	char local_address[64];
	int local_port;
	char listener[80]; /* the listener's listen string */
	char ehlo[256];    /* "" before EHLO/HELO */
	char auth_id[256]; /* "" unless authenticated */
	const char *tls_version; /* NULL without TLS */
	const char *tls_cipher;
	/* Lua side, created on first push. */
	lua_State *lua_state;
	int handle_ref;
	int meta_ref;
};

void lua_conn_open(lua_State *L);
void conn_info_init(struct conn_info *ci);
/* Invalidate the Lua handle and drop the metadata table. */
void conn_info_deinit(struct conn_info *ci);
void lua_conn_push(lua_State *L, struct conn_info *ci);

#endif
