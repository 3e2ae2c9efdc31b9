// SPDX-License-Identifier: MIT
/*
 * tern.warmup: reads the plans into struct warmup_plan. Every value arrives
 * as a number already (lua/tern/warmup.lua parsed the operator's text and
 * named the file:line of a mistake), so the checks here guard the engine
 * against a policy that calls the binding directly.
 */
#include "tern/lua_warmup.h"
#include "tern/lua_options.h"
#include "tern/warmup.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

static const char *const FNAME = "tern.warmup.configure";

static double
positive(lua_State *L, int idx, const char *key, double def)
{
	double v = lua_options_number(L, idx, FNAME, key, def);

	if (!(v > 0))
		luaL_error(L, "%s: option '%s' must be a positive number", FNAME, key);
	return v;
}

static void
read_provider(lua_State *L, int idx, struct warmup_provider_cap *c)
{
	static const char *const opts[] = {"name", "suffix", "cap", NULL};
	const char *name, *suffix;

	luaL_checktype(L, idx, LUA_TTABLE);
	lua_options_check(L, idx, FNAME, opts);
	name = lua_options_string(L, idx, FNAME, "name", NULL);
	suffix = lua_options_string(L, idx, FNAME, "suffix", NULL);
	if (name == NULL || suffix == NULL || strlen(name) >= sizeof(c->name) ||
	    strlen(suffix) >= sizeof(c->suffix))
		luaL_error(L, "%s: a provider cap needs a name and an MX suffix", FNAME);
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->suffix, sizeof(c->suffix), "%s", suffix);
	c->cap = lua_options_number(L, idx, FNAME, "cap", -1);
	if (c->cap < 0)
		luaL_error(L, "%s: provider cap '%s' needs a cap of 0 or more", FNAME, name);
}

/* Push the list field key of the table at idx (nil when absent) and return its length. */
static size_t
read_list(lua_State *L, int idx, const char *key, size_t max)
{
	size_t n;

	lua_getfield(L, idx, key);
	if (lua_isnil(L, -1))
		return 0;
	luaL_checktype(L, -1, LUA_TTABLE);
	n = lua_objlen(L, -1);
	if (n > max)
		luaL_error(L, "%s: option '%s' has more than %d entries", FNAME, key, (int)max);
	return n;
}

static void
read_caps(lua_State *L, int idx, struct warmup_plan *p)
{
	size_t i;

	p->n_caps = read_list(L, idx, "caps", WARMUP_MAX_STAGES);
	for (i = 0; i < p->n_caps; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		p->caps[i] = lua_tonumber(L, -1);
		if (!lua_isnumber(L, -1) || p->caps[i] < 0)
			luaL_error(L, "%s: caps of '%s' must be numbers of 0 or more", FNAME, p->source);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	p->n_providers = read_list(L, idx, "providers", WARMUP_MAX_PROVIDERS);
	for (i = 0; i < p->n_providers; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		read_provider(L, lua_gettop(L), &p->providers[i]);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void
read_plan(lua_State *L, int idx, struct warmup_plan *p)
{
	static const char *const opts[] = {"source", "start", "period", "caps", "first",
					   "growth", "max",    "providers", NULL};
	const char *source;

	luaL_checktype(L, idx, LUA_TTABLE);
	lua_options_check(L, idx, FNAME, opts);
	memset(p, 0, sizeof(*p));
	source = lua_options_string(L, idx, FNAME, "source", NULL);
	if (source == NULL || *source == '\0' || strlen(source) >= sizeof(p->source))
		luaL_error(L, "%s: a plan needs a source name", FNAME);
	snprintf(p->source, sizeof(p->source), "%s", source);
	p->start = lua_options_number(L, idx, FNAME, "start", 0);
	p->period = positive(L, idx, "period", 86400);
	read_caps(L, idx, p);
	if (p->n_caps == 0) {
		p->first = positive(L, idx, "first", 1);
		p->growth = positive(L, idx, "growth", 1);
		p->max = lua_options_number(L, idx, FNAME, "max", 0);
	}
}

static int
lua_warmup_configure(lua_State *L)
{
	static const char *const opts[] = {"plans",  "max_bounce_rate", "max_complaint_rate",
					   "window", "min_messages",    NULL};
	struct warmup_limits lim;
	struct warmup_plan *plans;
	struct tern_err err;
	size_t i, n;
	int rc;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, FNAME, opts);
	warmup_limits_defaults(&lim);
	lim.max_bounce_rate = positive(L, 1, "max_bounce_rate", lim.max_bounce_rate);
	lim.max_complaint_rate = positive(L, 1, "max_complaint_rate", lim.max_complaint_rate);
	lim.window = positive(L, 1, "window", lim.window);
	lim.min_messages = positive(L, 1, "min_messages", lim.min_messages);
	n = read_list(L, 1, "plans", WARMUP_MAX_SOURCES);
	/* Userdata, so that a plan that raises leaves nothing to free. */
	plans = lua_newuserdata(L, (n ? n : 1) * sizeof(*plans));
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -2, (int)i + 1);
		read_plan(L, lua_gettop(L), &plans[i]);
		lua_pop(L, 1);
	}
	rc = warmup_configure(plans, n, &lim, &err);
	if (rc < 0)
		return luaL_error(L, "%s: %s", FNAME, err.msg);
	return 0;
}

static int
lua_warmup_resume(lua_State *L)
{
	struct tern_err err;

	if (warmup_resume(luaL_checkstring(L, 1), &err) < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err.msg);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static void
set_number(lua_State *L, const char *key, double v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, key);
}

static int
lua_warmup_state(lua_State *L)
{
	struct warmup_view v;

	if (warmup_get(luaL_checkstring(L, 1), &v) < 0) {
		lua_pushnil(L);
		return 1;
	}
	lua_newtable(L);
	set_number(L, "stage", v.stage);
	set_number(L, "cap", v.cap);
	set_number(L, "sent", v.sent);
	set_number(L, "next_refill", v.next);
	set_number(L, "bounce_rate", v.bounce_rate);
	set_number(L, "complaint_rate", v.complaint_rate);
	set_number(L, "window_messages", v.window_messages);
	lua_pushboolean(L, v.paused);
	lua_setfield(L, -2, "paused");
	lua_pushstring(L, v.reason);
	lua_setfield(L, -2, "reason");
	return 1;
}

void
lua_warmup_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"configure", lua_warmup_configure},
				       {"resume", lua_warmup_resume},
				       {"state", lua_warmup_state},
				       {NULL, NULL}};

	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "warmup");
}
