// SPDX-License-Identifier: MIT
/*
 * The option readers. Misuse raises (luaL_error) with the function and key
 * named, since an option table is written by the operator and read where
 * the policy calls the function: the error then carries that file and line.
 */
#include "tern/lua_options.h"
#include "tern/throttle.h"
#include "tern/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

void
lua_options_check(lua_State *L, int idx, const char *fname, const char *const *allowed)
{
	const char *const *a;

	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		bool ok = false;

		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: option names must be strings", fname);
		for (a = allowed; *a && !ok; a++)
			ok = strcmp(*a, lua_tostring(L, -1)) == 0;
		if (!ok)
			luaL_error(L, "unknown option '%s' for %s", lua_tostring(L, -1), fname);
	}
}

/* Push t[key]; leaves it on the stack for the typed readers below. */
static int
opt_push(lua_State *L, int idx, const char *key)
{
	lua_getfield(L, idx, key);
	return lua_type(L, -1);
}

const char *
lua_options_string(lua_State *L, int idx, const char *fname, const char *key, const char *def)
{
	const char *v;
	int t = opt_push(L, idx, key);

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	if (t != LUA_TSTRING)
		luaL_error(L, "%s: option '%s' must be a string", fname, key);
	v = lua_tostring(L, -1);
	lua_pop(L, 1); /* the string stays alive in the options table */
	return v;
}

double
lua_options_number(lua_State *L, int idx, const char *fname, const char *key, double def)
{
	double v;
	int t = opt_push(L, idx, key);

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	if (t != LUA_TNUMBER)
		luaL_error(L, "%s: option '%s' must be a number", fname, key);
	v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

bool
lua_options_bool(lua_State *L, int idx, const char *fname, const char *key, bool def)
{
	bool v;
	int t = opt_push(L, idx, key);

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	if (t != LUA_TBOOLEAN)
		luaL_error(L, "%s: option '%s' must be true or false", fname, key);
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

/*
 * A bad duration or size raises naming the option; out-of-range values are
 * refused at load rather than wrapped or truncated into something else.
 */
static void
opt_range_check(lua_State *L, int rc, const char *fname, const char *key, const char *what,
		const char *max)
{
	if (rc == -EINVAL)
		luaL_error(L, "%s: option '%s': '%s' is not a %s", fname, key, lua_tostring(L, -1),
			   what);
	if (rc == -ERANGE)
		luaL_error(L, "%s: option '%s': '%s' is out of range (0 to %s)", fname, key,
			   lua_tostring(L, -1), max);
}

double
lua_options_duration(lua_State *L, int idx, const char *fname, const char *key, double def)
{
	double v = def;
	int t = opt_push(L, idx, key);
	int rc = 0;

	if (t == LUA_TNUMBER) {
		v = lua_tonumber(L, -1);
		rc = v >= 0 && v <= UTIL_DURATION_MAX ? 0 : -ERANGE;
	} else if (t == LUA_TSTRING) {
		rc = util_parse_duration(lua_tostring(L, -1), &v);
	} else if (t != LUA_TNIL) {
		luaL_error(L, "%s: option '%s' must be a duration", fname, key);
	}
	opt_range_check(L, rc, fname, key, "duration (e.g. '30s', '5m', '3d')", "100 years");
	lua_pop(L, 1);
	return v;
}

double
lua_options_field_number(lua_State *L, int idx, const char *key, double def)
{
	double v = def;

	lua_getfield(L, idx, key);
	if (lua_isnumber(L, -1))
		v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

const char *
lua_options_field_string(lua_State *L, int idx, const char *key)
{
	const char *v;

	lua_getfield(L, idx, key);
	v = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1); /* the string stays alive in the table */
	return v;
}

void
lua_options_normalise_rate(lua_State *L, int idx, const char *fname, const char *key)
{
	const char *v = lua_options_string(L, idx, fname, key, NULL);
	bool local;
	double rate;

	if (v == NULL)
		return;
	local = strncmp(v, "local:", 6) == 0;
	if (throttle_parse_rate(local ? v + 6 : v, &rate) < 0)
		luaL_error(L, "%s: option '%s': '%s' is not a rate (e.g. '120/min')", fname, key,
			   v);
	lua_pushnumber(L, rate);
	lua_setfield(L, idx, key);
	if (local) {
		char flag[64];

		snprintf(flag, sizeof(flag), "%s_local", key);
		lua_pushboolean(L, 1);
		lua_setfield(L, idx, flag);
	}
}

uint64_t
lua_options_size(lua_State *L, int idx, const char *fname, const char *key, uint64_t def)
{
	uint64_t v = def;
	int t = opt_push(L, idx, key);
	int rc = 0;
	double n;

	if (t == LUA_TNUMBER) {
		n = lua_tonumber(L, -1);
		rc = n >= 0 && n <= (double)UTIL_SIZE_MAX ? 0 : -ERANGE;
		v = rc == 0 ? (uint64_t)n : def;
	} else if (t == LUA_TSTRING) {
		rc = util_parse_size(lua_tostring(L, -1), &v);
	} else if (t != LUA_TNIL) {
		luaL_error(L, "%s: option '%s' must be a size", fname, key);
	}
	opt_range_check(L, rc, fname, key, "size (e.g. '20MiB')", "8 PiB");
	lua_pop(L, 1);
	return v;
}
