// SPDX-License-Identifier: MIT
/*
 * tern.suppress: policy's hands on the suppression list. The list is one
 * per node (the spool's), not per Lua state, so these calls only translate
 * tables to entries; a policy may add from any hook (message_bounced, a
 * webhook's answer) and every shard sees it at once.
 */
#include "tern/lua_suppress.h"
#include "tern/lua_options.h"
#include "tern/suppress.h"

#include <string.h>

#include <lauxlib.h>

static const char *const add_options[] = {"address", "tenant", "reason", "category",
					  "source",  "expires_in", NULL};
static const char *const configure_options[] = {"action", "text", NULL};

static int
push_fail(lua_State *L, const struct tern_err *err)
{
	lua_pushnil(L);
	lua_pushstring(L, err->msg);
	return 2;
}

static void
copy_opt(lua_State *L, const char *key, char *out, size_t n)
{
	const char *v = lua_options_string(L, 1, "tern.suppress.add", key, "");
	size_t len = strlen(v);

	if (len >= n)
		luaL_error(L, "tern.suppress.add: %s is longer than %d bytes", key, (int)n - 1);
	memcpy(out, v, len + 1);
}

static int
lua_suppress_add(lua_State *L)
{
	const char *address, *tenant;
	struct suppress_entry e;
	struct tern_err err;
	double ttl;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, "tern.suppress.add", add_options);
	address = lua_options_string(L, 1, "tern.suppress.add", "address", NULL);
	tenant = lua_options_string(L, 1, "tern.suppress.add", "tenant", SUPPRESS_ALL_TENANTS);
	if (address == NULL)
		luaL_error(L, "tern.suppress.add: address is required");
	if (suppress_entry_init(&e, tenant, address, &err) < 0)
		luaL_error(L, "tern.suppress.add: %s", err.msg);
	copy_opt(L, "reason", e.reason, sizeof(e.reason));
	copy_opt(L, "category", e.category, sizeof(e.category));
	copy_opt(L, "source", e.source, sizeof(e.source));
	ttl = lua_options_duration(L, 1, "tern.suppress.add", "expires_in", 0);
	if (ttl < 0)
		luaL_error(L, "tern.suppress.add: expires_in must not be negative");
	e.expires = ttl > 0 ? e.time + ttl : 0;
	if (suppress_add(&e, &err) < 0)
		return push_fail(L, &err);
	lua_pushboolean(L, 1);
	return 1;
}

static int
lua_suppress_remove(lua_State *L)
{
	const char *address = luaL_checkstring(L, 1);
	const char *tenant = luaL_optstring(L, 2, SUPPRESS_ALL_TENANTS);
	struct tern_err err;

	if (suppress_remove(tenant, address, &err) < 0)
		return push_fail(L, &err);
	lua_pushboolean(L, 1);
	return 1;
}

static void
set_string(lua_State *L, const char *key, const char *v)
{
	if (v[0] == '\0')
		return;
	lua_pushstring(L, v);
	lua_setfield(L, -2, key);
}

void
lua_suppress_push(lua_State *L, const struct suppress_entry *e)
{
	lua_createtable(L, 0, 7);
	set_string(L, "tenant", e->tenant);
	set_string(L, "address", e->address);
	set_string(L, "reason", e->reason);
	set_string(L, "category", e->category);
	set_string(L, "source", e->source);
	lua_pushnumber(L, e->time);
	lua_setfield(L, -2, "time");
	if (e->expires > 0) {
		lua_pushnumber(L, e->expires);
		lua_setfield(L, -2, "expires");
	}
}

static int
lua_suppress_check(lua_State *L)
{
	const char *address = luaL_checkstring(L, 1);
	const char *tenant = luaL_optstring(L, 2, "");
	struct suppress_entry e;

	if (suppress_check(tenant, address, &e) != 1)
		return 0;
	lua_suppress_push(L, &e);
	return 1;
}

static int
lua_suppress_configure(lua_State *L)
{
	const char *action, *text;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, "tern.suppress.configure", configure_options);
	action = lua_options_string(L, 1, "tern.suppress.configure", "action", "reject");
	text = lua_options_string(L, 1, "tern.suppress.configure", "text", NULL);
	if (strcmp(action, "reject") != 0 && strcmp(action, "drop") != 0)
		luaL_error(L,
			   "tern.suppress.configure: action must be 'reject' or 'drop', not '%s'",
			   action);
	if (text != NULL && (text[0] == '\0' || strpbrk(text, "\r\n") != NULL))
		luaL_error(L, "tern.suppress.configure: text must be one non-empty line");
	suppress_set_action(action[0] == 'r' ? SUPPRESS_REJECT : SUPPRESS_DROP, text);
	return 0;
}

void
lua_suppress_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"add", lua_suppress_add},
				       {"remove", lua_suppress_remove},
				       {"check", lua_suppress_check},
				       {"configure", lua_suppress_configure},
				       {NULL, NULL}};

	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "suppress");
}
