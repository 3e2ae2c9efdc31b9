// SPDX-License-Identifier: MIT
/*
 * tern.shaping_state: reads shaping automation rules (Lua tables) into the
 * engine's rule structs and keeps the compiled set in the Lua state's
 * registry, as tern.bounce keeps its rules: each shard's state compiles its
 * own set once per epoch (a reload makes new states and a new set), and a
 * path's config names its rules by index in it. Also lets policy lift a
 * state early.
 */
#include "tern/lua_shaping.h"
#include "tern/automation.h"
#include "tern/lua_options.h"
#include "tern/path_state.h"
#include "tern/throttle.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#define LUA_SHAPING_RULES_MT "tern.shaping.rules"
#define LUA_SHAPING_RULES_KEY "tern.shaping.current"
/* A suspension's climb back to full limits when the rule does not say. */
#define LUA_SHAPING_RECOVERY_DEFAULT 300.0

static const char *const rule_options[] = {"regex", "action", "duration", "trigger", "recovery",
					   "scope", "mx_suffixes", "file", "line", NULL};
static const char *const set_options[] = {"max_message_rate", "connection_limit", NULL};
static const char *const clear_options[] = {"source", "site", "tenant", "campaign", NULL};

struct rule_read {
	struct automation_rule_def def;
	char where[300];       /* "file:line" for errors */
	char suffixes[1024];
};

static int
rules_gc(lua_State *L)
{
	struct automation_rules **box = luaL_checkudata(L, 1, LUA_SHAPING_RULES_MT);

	automation_rules_free(*box);
	*box = NULL;
	return 0;
}

/* The state's set, created on first use. */
static struct automation_rules *
rules_here(lua_State *L)
{
	struct automation_rules **box;

	lua_getfield(L, LUA_REGISTRYINDEX, LUA_SHAPING_RULES_KEY);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		box = lua_newuserdata(L, sizeof(*box));
		*box = NULL;
		luaL_getmetatable(L, LUA_SHAPING_RULES_MT);
		lua_setmetatable(L, -2);
		if ((*box = automation_rules_new()) == NULL)
			luaL_error(L, "tern.shaping_state.rule: out of memory");
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, LUA_SHAPING_RULES_KEY);
	}
	box = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return *box;
}

/* regex: one string or a list of strings (any matching is a match). */
static void
read_regex(lua_State *L, struct rule_read *r)
{
	size_t i, n = 0;

	lua_getfield(L, 1, "regex");
	if (lua_type(L, -1) == LUA_TSTRING) {
		r->def.patterns[0] = lua_tostring(L, -1);
		r->def.n_patterns = 1;
		lua_pop(L, 1); /* the string lives on in the rule table */
		return;
	}
	if (!lua_istable(L, -1) || (n = lua_objlen(L, -1)) == 0 || n > AUTOMATION_MAX_PATTERNS)
		luaL_error(L, "%s: automation rule: regex must be a string or a list of 1 to %d strings",
			   r->where, AUTOMATION_MAX_PATTERNS);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: automation rule: regex[%d] must be a string", r->where,
				   (int)i + 1);
		r->def.patterns[i] = lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	r->def.n_patterns = n;
	lua_pop(L, 1);
}

/* action = { set = { max_message_rate = '30/min', connection_limit = 2 } } */
static void
read_set(lua_State *L, int idx, struct rule_read *r)
{
	const char *rate;

	lua_getfield(L, idx, "set");
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: automation rule: action must be a name or { set = {...} }", r->where);
	lua_options_check(L, lua_gettop(L), "automation rule action set", set_options);
	rate = lua_options_string(L, lua_gettop(L), "automation rule action set",
				  "max_message_rate", NULL);
	if (rate && throttle_parse_rate(rate, &r->def.set_rate) < 0)
		luaL_error(L, "%s: automation rule: max_message_rate '%s' is not a rate like '30/min'",
			   r->where, rate);
	r->def.set_connections = (int)lua_options_number(L, lua_gettop(L),
							  "automation rule action set",
							  "connection_limit", 0);
	if (r->def.set_connections < 0 || (rate == NULL && r->def.set_connections == 0))
		luaL_error(L, "%s: automation rule: set needs max_message_rate or connection_limit >= 1",
			   r->where);
	r->def.action = AUTOMATION_SET;
	lua_pop(L, 1);
}

static void
read_action(lua_State *L, struct rule_read *r)
{
	lua_getfield(L, 1, "action");
	if (lua_istable(L, -1))
		read_set(L, lua_gettop(L), r);
	else if (lua_type(L, -1) != LUA_TSTRING ||
		 automation_action_parse(lua_tostring(L, -1), &r->def.action) < 0 ||
		 r->def.action == AUTOMATION_SET)
		luaL_error(L, "%s: automation rule: action must be 'suspend', 'suspend_source', "
			      "'suspend_tenant', 'suspend_campaign', 'bounce' or { set = {...} }",
			   r->where);
	lua_pop(L, 1);
}

/* mx_suffixes = { '.google.com', ... } -> "google.com,..." (leading dots and trailing dots dropped). */
static void
read_suffixes(lua_State *L, struct rule_read *r)
{
	size_t i, n, used = 0;

	lua_getfield(L, 1, "mx_suffixes");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
	for (i = 1; i <= n; i++) {
		const char *sfx;
		size_t len;

		lua_rawgeti(L, -1, (int)i);
		sfx = lua_tolstring(L, -1, &len);
		if (sfx == NULL)
			luaL_error(L, "%s: automation rule: mx_suffixes must be strings", r->where);
		while (len > 0 && sfx[len - 1] == '.')
			len--;
		used += (size_t)snprintf(r->suffixes + used, sizeof(r->suffixes) - used, "%s%.*s",
					 used ? "," : "", (int)len, sfx);
		if (used >= sizeof(r->suffixes))
			luaL_error(L, "%s: automation rule: mx_suffixes too long", r->where);
		lua_pop(L, 1);
	}
	r->def.mx_suffixes = r->suffixes;
	lua_pop(L, 1);
}

static void
read_trigger(lua_State *L, struct rule_read *r)
{
	const char *t = lua_options_string(L, 1, "automation rule", "trigger", "immediate");

	if (automation_trigger_parse(t, &r->def.trigger_n, &r->def.trigger_period) < 0)
		luaL_error(L, "%s: automation rule: trigger must be 'immediate' or 'N/period' "
			      "(like '3/5m'), not '%s'", r->where, t);
}

/* tern.shaping_state.rule{...} -> index */
static int
lua_shaping_state_rule(lua_State *L)
{
	struct rule_read r;
	struct tern_err err;
	int id;

	memset(&r, 0, sizeof(r));
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, "automation rule", rule_options);
	r.def.file = lua_options_string(L, 1, "automation rule", "file", "?");
	r.def.line = (int)lua_options_number(L, 1, "automation rule", "line", 0);
	r.def.scope = lua_options_string(L, 1, "automation rule", "scope", "default");
	snprintf(r.where, sizeof(r.where), "%s:%d %s", r.def.file, r.def.line, r.def.scope);
	read_regex(L, &r);
	read_action(L, &r);
	read_trigger(L, &r);
	read_suffixes(L, &r);
	r.def.duration = lua_options_duration(L, 1, "automation rule", "duration", 0);
	if (r.def.duration <= 0 && r.def.action != AUTOMATION_BOUNCE)
		luaL_error(L, "%s: automation rule: duration is required ('1h', '30m')", r.where);
	r.def.recovery = lua_options_duration(L, 1, "automation rule", "recovery",
					      LUA_SHAPING_RECOVERY_DEFAULT);
	if (r.def.recovery <= 0)
		luaL_error(L, "%s: automation rule: recovery must be positive", r.where);
	id = automation_rules_add(rules_here(L), &r.def, &err);
	if (id < 0)
		luaL_error(L, "%s", err.msg);
	if (id > UINT16_MAX)
		luaL_error(L, "%s: too many automation rules", r.where);
	lua_pushinteger(L, id);
	return 1;
}

static const char *
opt_key(lua_State *L, const char *key)
{
	return lua_options_string(L, 1, "tern.shaping_state.clear", key, NULL);
}

/* tern.shaping_state.clear{ source =, site =, tenant =, campaign = } -> number lifted, or nil, err */
static int
lua_shaping_state_clear(lua_State *L)
{
	struct tern_err err;
	int n;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, "tern.shaping_state.clear", clear_options);
	n = path_state_clear(opt_key(L, "source"), opt_key(L, "site"), opt_key(L, "tenant"),
			     opt_key(L, "campaign"), &err);
	if (n == -EINVAL)
		return luaL_error(L, "tern.shaping_state.clear: %s", err.msg);
	if (n < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err.msg);
		return 2;
	}
	lua_pushinteger(L, n);
	return 1;
}

/* tern.shaping_state.list() -> JSON text */
static int
lua_shaping_state_list(lua_State *L)
{
	struct buf b;

	buf_init(&b);
	path_state_list_json(&b);
	lua_pushlstring(L, b.data ? b.data : "[]", b.data ? b.len : 2);
	buf_deinit(&b);
	return 1;
}

const struct automation_rule *
lua_shaping_match(lua_State *L, const uint16_t *ids, size_t n, const char *reply, size_t len)
{
	struct automation_rules **box;

	lua_getfield(L, LUA_REGISTRYINDEX, LUA_SHAPING_RULES_KEY);
	box = lua_isnil(L, -1) ? NULL : lua_touserdata(L, -1);
	lua_pop(L, 1);
	return box ? automation_match(*box, ids, n, reply, len) : NULL;
}

void
lua_shaping_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"rule", lua_shaping_state_rule},
				       {"clear", lua_shaping_state_clear},
				       {"list", lua_shaping_state_list},
				       {NULL, NULL}};

	luaL_newmetatable(L, LUA_SHAPING_RULES_MT);
	lua_pushcfunction(L, rules_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "shaping_state");
}
