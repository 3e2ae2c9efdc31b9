// SPDX-License-Identifier: MIT
/*
 * tern.configure_trace_header. The secret lives in the state's registry:
 * each shard's state reads its own, and a reload's new states take the new
 * one with the rest of the policy.
 */
#include "tern/lua_trace.h"
#include "tern/lua_options.h"

#include <string.h>

#include <lauxlib.h>

#define TRACE_SECRET_KEY "tern.trace_secret"
#define TRACE_VERP_KEY "tern.trace_verp"
#define TRACE_SECRET_MIN 16

static const char *const trace_options[] = {"secret", "verp", NULL};

static int
lua_trace_configure(lua_State *L)
{
	const char *fname = "tern.configure_trace_header";
	const char *secret;
	size_t len;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, fname, trace_options);
	secret = lua_options_string(L, 1, fname, "secret", NULL);
	len = secret ? strlen(secret) : 0;
	if (len < TRACE_SECRET_MIN || len > TRACE_SECRET_MAX)
		return luaL_error(L, "%s: option 'secret' must be %d to %d bytes", fname,
				  TRACE_SECRET_MIN, TRACE_SECRET_MAX);
	lua_pushlstring(L, secret, len);
	lua_setfield(L, LUA_REGISTRYINDEX, TRACE_SECRET_KEY);
	lua_pushboolean(L, lua_options_bool(L, 1, fname, "verp", false));
	lua_setfield(L, LUA_REGISTRYINDEX, TRACE_VERP_KEY);
	return 0;
}

void
lua_trace_config(lua_State *L, struct trace_config *out)
{
	const char *s;
	size_t len = 0;

	lua_getfield(L, LUA_REGISTRYINDEX, TRACE_SECRET_KEY);
	s = lua_tolstring(L, -1, &len);
	if (s == NULL || len > sizeof(out->secret))
		len = 0;
	else
		memcpy(out->secret, s, len);
	out->secret_len = len;
	lua_getfield(L, LUA_REGISTRYINDEX, TRACE_VERP_KEY);
	out->verp = len > 0 && lua_toboolean(L, -1);
	lua_pop(L, 2);
}

void
lua_trace_open(lua_State *L)
{
	lua_pushcfunction(L, lua_trace_configure);
	lua_setfield(L, -2, "configure_trace_header");
}
