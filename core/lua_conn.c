// SPDX-License-Identifier: MIT
/*
 * conn:peer_address(), local_address(), listener(), ehlo_name(), tls(),
 * auth_id(), get_meta(k), set_meta(k, v). Metadata is a plain Lua table
 * (any Lua value) since it never leaves the shard.
 *
 * tern.conn.new{...} makes a connection that Lua owns, for policy tests
 * (tern.testing): hooks get the same object as from a real SMTP session.
 */
#include "tern/lua_conn.h"
#include "tern/lua_ctx.h"
#include "tern/lua_options.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#define CONN_MT "tern.conn"
#define CONN_OWNER_MT "tern.conn.owner"

/* A Lua-owned connection: it keeps the TLS strings a session would borrow from OpenSSL. */
struct conn_owned {
	struct conn_info ci;
	char tls_version[32];
	char tls_cipher[128];
};

/* conn_info_deinit() calls this: the handle raises from now on, the metadata table goes. */
static void
conn_release(struct conn_info *ci)
{
	lua_State *L = ci->lua_state;
	struct conn_info **handle;

	if (L == NULL)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ci->handle_ref);
	handle = lua_touserdata(L, -1);
	if (handle)
		*handle = NULL;
	lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, ci->handle_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ci->meta_ref);
	lua_ctx_pin(L, -1);
	ci->lua_state = NULL;
}

static bool
is_scalar(lua_State *L, int idx)
{
	int t = lua_type(L, idx);

	return t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN;
}

static void
xmove_scalar(lua_State *from, int idx, lua_State *to)
{
	if (lua_type(from, idx) == LUA_TSTRING) {
		size_t n;
		const char *v = lua_tolstring(from, idx, &n);

		lua_pushlstring(to, v, n);
	} else if (lua_type(from, idx) == LUA_TNUMBER) {
		lua_pushnumber(to, lua_tonumber(from, idx));
	} else {
		lua_pushboolean(to, lua_toboolean(from, idx));
	}
}

/*
 * The session began under an earlier policy epoch (a reload came between
 * its hooks): its metadata moves into L's state, as far as it is made of
 * strings, numbers and booleans (tables and functions of the old state
 * cannot cross), and the old state lets go of it.
 */
static void
move_meta(struct conn_info *ci, lua_State *L)
{
	lua_State *old = ci->lua_state;

	lua_rawgeti(old, LUA_REGISTRYINDEX, ci->meta_ref);
	lua_pushnil(old);
	while (lua_next(old, -2) != 0) {
		if (is_scalar(old, -2) && is_scalar(old, -1)) {
			xmove_scalar(old, -2, L);
			xmove_scalar(old, -1, L);
			lua_rawset(L, -3);
		}
		lua_pop(old, 1);
	}
	lua_pop(old, 1);
	conn_release(ci);
}

void
lua_conn_push(lua_State *L, struct conn_info *ci)
{
	struct conn_info **handle;

	if (ci->lua_state == lua_ctx_main(L)) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, ci->handle_ref);
		return;
	}
	lua_newtable(L);
	if (ci->lua_state)
		move_meta(ci, L);
	handle = lua_newuserdata(L, sizeof(*handle));
	*handle = ci;
	luaL_getmetatable(L, CONN_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	ci->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_insert(L, -2); /* the handle under the metadata table */
	ci->meta_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ci->lua_state = lua_ctx_main(L);
	ci->release = conn_release;
	lua_ctx_pin(L, 1);
}

static struct conn_info *
check_conn(lua_State *L)
{
	struct conn_info **handle = luaL_checkudata(L, 1, CONN_MT);

	if (*handle == NULL)
		luaL_error(L, "connection is no longer valid");
	return *handle;
}

static int
push_string_or_nil(lua_State *L, const char *s)
{
	if (s && *s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
	return 1;
}

static int
lua_conn_peer_address(lua_State *L)
{
	return push_string_or_nil(L, check_conn(L)->peer_address);
}

static int
lua_conn_local_address(lua_State *L)
{
	return push_string_or_nil(L, check_conn(L)->local_address);
}

static int
lua_conn_listener(lua_State *L)
{
	return push_string_or_nil(L, check_conn(L)->listener);
}

static int
lua_conn_ehlo_name(lua_State *L)
{
	return push_string_or_nil(L, check_conn(L)->ehlo);
}

static int
lua_conn_auth_id(lua_State *L)
{
	return push_string_or_nil(L, check_conn(L)->auth_id);
}

/* conn:tls() -> { version = 'TLSv1.3', cipher = '...' } or nil */
static int
lua_conn_tls(lua_State *L)
{
	struct conn_info *ci = check_conn(L);

	if (ci->tls_version == NULL) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, 2);
	lua_pushstring(L, ci->tls_version);
	lua_setfield(L, -2, "version");
	push_string_or_nil(L, ci->tls_cipher);
	lua_setfield(L, -2, "cipher");
	return 1;
}

static int
lua_conn_get_meta(lua_State *L)
{
	struct conn_info *ci = check_conn(L);

	luaL_checkstring(L, 2);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ci->meta_ref);
	lua_pushvalue(L, 2);
	lua_rawget(L, -2);
	return 1;
}

static int
lua_conn_set_meta(lua_State *L)
{
	struct conn_info *ci = check_conn(L);

	luaL_checkstring(L, 2);
	lua_settop(L, 3);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ci->meta_ref);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_rawset(L, -3);
	if (strcmp(lua_tostring(L, 2), "tenant") == 0)
		snprintf(ci->tenant, sizeof(ci->tenant), "%s",
			 lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "");
	return 0;
}

static int
lua_conn_owner_gc(lua_State *L)
{
	struct conn_owned *o = luaL_checkudata(L, 1, CONN_OWNER_MT);

	conn_info_deinit(&o->ci);
	return 0;
}

static void
opt_copy(lua_State *L, const char *key, char *out, size_t n)
{
	const char *v = lua_options_string(L, 1, "tern.conn.new", key, "");

	snprintf(out, n, "%s", v);
}

/* tls = true, or 'TLSv1.2', or { version = ..., cipher = ... } */
static void
opt_tls(lua_State *L, struct conn_owned *o)
{
	lua_getfield(L, 1, "tls");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "version");
		lua_getfield(L, -2, "cipher");
		snprintf(o->tls_version, sizeof(o->tls_version), "%s",
			 lua_isstring(L, -2) ? lua_tostring(L, -2) : "TLSv1.3");
		snprintf(o->tls_cipher, sizeof(o->tls_cipher), "%s",
			 lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
		lua_pop(L, 2);
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		snprintf(o->tls_version, sizeof(o->tls_version), "%s", lua_tostring(L, -1));
	} else if (lua_toboolean(L, -1)) {
		snprintf(o->tls_version, sizeof(o->tls_version), "TLSv1.3");
	}
	lua_pop(L, 1);
	o->ci.tls_version = o->tls_version[0] ? o->tls_version : NULL;
	o->ci.tls_cipher = o->tls_cipher;
}

/*
 * tern.conn.new{ peer, local, listener, ehlo, auth, tls }: addresses without
 * ports. It lives until the Lua state closes, like tern.message.new's.
 */
static int
lua_conn_new(lua_State *L)
{
	static const char *const opts[] = {"peer", "local", "listener", "ehlo", "auth", "tls", NULL};
	struct conn_owned *o;

	lua_options_check(L, 1, "tern.conn.new", opts);
	o = lua_newuserdata(L, sizeof(*o));
	memset(o, 0, sizeof(*o));
	conn_info_init(&o->ci);
	luaL_getmetatable(L, CONN_OWNER_MT);
	lua_setmetatable(L, -2);
	opt_copy(L, "peer", o->ci.peer_address, sizeof(o->ci.peer_address));
	opt_copy(L, "local", o->ci.local_address, sizeof(o->ci.local_address));
	opt_copy(L, "listener", o->ci.listener, sizeof(o->ci.listener));
	opt_copy(L, "ehlo", o->ci.ehlo, sizeof(o->ci.ehlo));
	opt_copy(L, "auth", o->ci.auth_id, sizeof(o->ci.auth_id));
	opt_tls(L, o);
	luaL_ref(L, LUA_REGISTRYINDEX);
	lua_conn_push(L, &o->ci);
	return 1;
}

void
lua_conn_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"peer_address", lua_conn_peer_address},
		{"local_address", lua_conn_local_address},
		{"listener", lua_conn_listener},
		{"ehlo_name", lua_conn_ehlo_name},
		{"auth_id", lua_conn_auth_id},
		{"tls", lua_conn_tls},
		{"get_meta", lua_conn_get_meta},
		{"set_meta", lua_conn_set_meta},
		{NULL, NULL},
	};

	luaL_newmetatable(L, CONN_MT);
	lua_newtable(L);
	luaL_register(L, NULL, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newmetatable(L, CONN_OWNER_MT);
	lua_pushcfunction(L, lua_conn_owner_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_newtable(L);
	lua_pushcfunction(L, lua_conn_new);
	lua_setfield(L, -2, "new");
	lua_setfield(L, -2, "conn");
}
