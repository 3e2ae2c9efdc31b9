// SPDX-License-Identifier: MIT
/*
 * tern.make_queue_config validates eagerly (so a typo fails where it is
 * written, with file and line) and returns a table the core reads once per
 * queue and policy epoch.
 */
#include "tern/lua_queue.h"
#include "tern/lua_options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define QUEUE_CONFIG_MT "tern.queue_config"

static const char *const queue_options[] = {"egress_pool", "retry_interval", "max_retry_interval",
					    "max_age", "max_message_rate", "mx_list", "dsn", NULL};

static int
read_mx_list(lua_State *L, int idx, struct queue_config *c, struct tern_err *err)
{
	size_t i, n;

	lua_getfield(L, idx, "mx_list");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	n = lua_objlen(L, -1);
	c->mx_list = calloc(n ? n : 1, sizeof(*c->mx_list));
	if (c->mx_list == NULL) {
		lua_pop(L, 1);
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		snprintf(c->mx_list[i], sizeof(c->mx_list[i]), "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	c->n_mx = n;
	lua_pop(L, 1);
	return 0;
}

int
lua_queue_read_config(lua_State *L, int idx, struct queue_config *out, struct tern_err *err)
{
	const char *pool;

	queue_config_defaults(out);
	if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) {
		tern_err_set(err, 451, "4.3.0", "get_queue_config must return tern.make_queue_config{...}");
		return -EINVAL;
	}
	lua_pop(L, 1);
	pool = lua_options_field_string(L, idx, "egress_pool");
	if (pool)
		snprintf(out->egress_pool, sizeof(out->egress_pool), "%s", pool);
	out->retry_interval = lua_options_field_number(L, idx, "retry_interval", out->retry_interval);
	out->max_retry_interval = lua_options_field_number(L, idx, "max_retry_interval", out->max_retry_interval);
	out->max_age = lua_options_field_number(L, idx, "max_age", out->max_age);
	out->max_message_rate = lua_options_field_number(L, idx, "max_message_rate", 0);
	lua_getfield(L, idx, "dsn");
	out->dsn = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return read_mx_list(L, idx, out, err);
}

/* Replace a duration option by its value in seconds, so the core reads plain numbers. */
static void
normalise_duration(lua_State *L, const char *fname, const char *key)
{
	double v = lua_options_duration(L, 1, fname, key, -1);

	if (v == -1)
		return;
	if (v <= 0)
		luaL_error(L, "%s: option '%s' must be positive", fname, key);
	lua_pushnumber(L, v);
	lua_setfield(L, 1, key);
}

static void
check_mx_list(lua_State *L, const char *fname)
{
	size_t i, n;

	lua_getfield(L, 1, "mx_list");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1) || lua_objlen(L, -1) == 0)
		luaL_error(L, "%s: option 'mx_list' must be a non-empty list of 'host:port'", fname);
	n = lua_objlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (int)i);
		if (!lua_isstring(L, -1) || strlen(lua_tostring(L, -1)) >= 272)
			luaL_error(L, "%s: mx_list[%d] must be a 'host:port' string", fname, (int)i);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static int
lua_queue_make_config(lua_State *L)
{
	const char *fname = "tern.make_queue_config";

	lua_options_check(L, 1, fname, queue_options);
	lua_options_string(L, 1, fname, "egress_pool", NULL);
	lua_options_bool(L, 1, fname, "dsn", false);
	lua_options_normalise_rate(L, 1, fname, "max_message_rate");
	normalise_duration(L, fname, "retry_interval");
	normalise_duration(L, fname, "max_retry_interval");
	normalise_duration(L, fname, "max_age");
	check_mx_list(L, fname);
	lua_settop(L, 1);
	luaL_getmetatable(L, QUEUE_CONFIG_MT);
	lua_setmetatable(L, 1);
	return 1;
}

/*
 * tern.queue_config_defaults() -> the values a queue has where policy leaves
 * a field out (durations in seconds, rates per second, 0 = unlimited).
 */
static int
lua_queue_config_defaults(lua_State *L)
{
	struct queue_config c;

	queue_config_defaults(&c);
	lua_createtable(L, 0, 5);
	lua_pushstring(L, c.egress_pool);
	lua_setfield(L, -2, "egress_pool");
	lua_pushnumber(L, c.retry_interval);
	lua_setfield(L, -2, "retry_interval");
	lua_pushnumber(L, c.max_retry_interval);
	lua_setfield(L, -2, "max_retry_interval");
	lua_pushnumber(L, c.max_age);
	lua_setfield(L, -2, "max_age");
	lua_pushnumber(L, c.max_message_rate);
	lua_setfield(L, -2, "max_message_rate");
	queue_config_deinit(&c);
	return 1;
}

void
lua_queue_open(lua_State *L)
{
	luaL_newmetatable(L, QUEUE_CONFIG_MT);
	lua_pop(L, 1);
	lua_pushcfunction(L, lua_queue_make_config);
	lua_setfield(L, -2, "make_queue_config");
	lua_pushcfunction(L, lua_queue_config_defaults);
	lua_setfield(L, -2, "queue_config_defaults");
}
