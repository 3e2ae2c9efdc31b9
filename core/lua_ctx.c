// SPDX-License-Identifier: MIT
/*
 * The Lua state's context, kept in its registry: every coroutine shares its
 * main state's registry, so any of them finds the same answers without a
 * lookup table of live states.
 */
#include "tern/lua_ctx.h"

#define LUA_CTX_MAIN_KEY "tern.main_state"
#define LUA_CTX_SHARD_KEY "tern.shard"
#define LUA_CTX_PINS_KEY "tern.pins"

void
lua_ctx_set(lua_State *L, struct shard *shard)
{
	lua_pushthread(L);
	lua_setfield(L, LUA_REGISTRYINDEX, LUA_CTX_MAIN_KEY);
	lua_pushlightuserdata(L, shard);
	lua_setfield(L, LUA_REGISTRYINDEX, LUA_CTX_SHARD_KEY);
}

lua_State *
lua_ctx_main(lua_State *L)
{
	lua_State *main_state;

	lua_getfield(L, LUA_REGISTRYINDEX, LUA_CTX_MAIN_KEY);
	main_state = lua_tothread(L, -1);
	lua_pop(L, 1);
	return main_state;
}

struct shard *
lua_ctx_shard(lua_State *L)
{
	struct shard *shard;

	lua_getfield(L, LUA_REGISTRYINDEX, LUA_CTX_SHARD_KEY);
	shard = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return shard;
}

int
lua_ctx_pins(lua_State *L)
{
	int n;

	lua_getfield(L, LUA_REGISTRYINDEX, LUA_CTX_PINS_KEY);
	n = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return n;
}

void
lua_ctx_pin(lua_State *L, int delta)
{
	lua_pushinteger(L, lua_ctx_pins(L) + delta);
	lua_setfield(L, LUA_REGISTRYINDEX, LUA_CTX_PINS_KEY);
}
