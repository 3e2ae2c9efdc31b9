// SPDX-License-Identifier: MIT
/*
 * tern.bounce: reads the policy's bounce rules (Lua tables) into the
 * classifier's rule structs and keeps the compiled set in the Lua state's
 * registry, so each shard's state owns its own set (core/bounce.c needs one
 * set per thread) and a reload compiles a new one with the new epoch.
 * Every rule remembers the file:line that wrote it, because an operator who
 * asks "why is this reply spam-related?" needs to find the rule.
 */
#include "tern/lua_bounce.h"
#include "tern/bounce.h"
#include "tern/log.h"
#include "tern/lua_options.h"
#include "tern/util.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#define LUA_BOUNCE_RULES_MT "tern.bounce.rules"
#define LUA_BOUNCE_RULES_KEY "tern.bounce.current"
#define LUA_BOUNCE_DEFAULTS "tern.bounce_rules"

static const char *const rule_options[] = {"name", "category", "pattern", "site", "file", "line",
					   "remove", NULL};
static const char *const configure_options[] = {"rules", "extra", NULL};

/*
 * The calling Lua function's file and line ("?" and 0 when unknown). Pushes
 * the file name, which *file points into while it stays on the stack.
 */
static void
caller_where(lua_State *L, const char **file, int *line)
{
	lua_Debug ar;

	*line = 0;
	if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
		/*
		 * The whole file name (short_src cuts long paths); the standard
		 * library's rules are named as in the repository, wherever installed.
		 */
		const char *src = ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
		const char *lib = strstr(src, "/lua/tern/");

		lua_pushstring(L, lib ? lib + 1 : src);
		*line = ar.currentline;
	} else {
		lua_pushliteral(L, "?");
	}
	*file = lua_tostring(L, -1);
}

static const char *
opt_field(lua_State *L, int idx, const char *key)
{
	const char *v;

	lua_getfield(L, idx, key);
	v = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1); /* the string stays alive in the rule table */
	return v;
}

/* Read the rule table at idx into def; raise naming where the rule was written. */
static void
read_rule(lua_State *L, int idx, struct bounce_rule_def *def, const char *file, int line)
{
	const char *cat;

	if (!lua_istable(L, idx))
		luaL_error(L, "%s:%d: a bounce rule must be a table", file, line);
	lua_options_check(L, idx, "bounce rule", rule_options);
	def->file = opt_field(L, idx, "file");
	lua_getfield(L, idx, "line");
	def->line = def->file ? (int)lua_tointeger(L, -1) : line;
	lua_pop(L, 1);
	def->file = def->file ? def->file : file;
	def->name = opt_field(L, idx, "name");
	def->pattern = opt_field(L, idx, "pattern");
	def->site = opt_field(L, idx, "site");
	cat = opt_field(L, idx, "category");
	if (def->name == NULL || def->pattern == NULL || cat == NULL)
		luaL_error(L, "%s:%d: bounce rule '%s': name, category and pattern are required",
			   def->file, def->line, def->name ? def->name : "?");
	if (bounce_category_parse(cat, &def->category) < 0)
		luaL_error(L, "%s:%d: bounce rule '%s': unknown category '%s'", def->file, def->line,
			   def->name, cat);
}

/* tern.bounce.rule{...}: the same table, marked with the caller's file:line. */
static int
lua_bounce_rule(lua_State *L)
{
	const char *file;
	int line;

	luaL_checktype(L, 1, LUA_TTABLE);
	caller_where(L, &file, &line);
	lua_setfield(L, 1, "file");
	lua_pushinteger(L, line);
	lua_setfield(L, 1, "line");
	lua_settop(L, 1);
	return 1;
}

static const char *
name_at(lua_State *L, int list, int i)
{
	const char *name;

	lua_rawgeti(L, list, i);
	name = lua_istable(L, -1) ? opt_field(L, lua_gettop(L), "name") : NULL;
	lua_pop(L, 1); /* the name lives on in the rule, which lives in the list */
	return name;
}

static int
find_rule(lua_State *L, int list, const char *name)
{
	int i, n = (int)lua_objlen(L, list);

	for (i = 1; i <= n; i++) {
		const char *other = name_at(L, list, i);

		if (other && strcmp(other, name) == 0)
			return i;
	}
	return 0;
}

/* Apply one extra entry (at idx) to base: override, remove (false), or append to front. */
static void
apply_extra(lua_State *L, int base, int front, int idx, const char *file, int line)
{
	const char *name;
	int at;

	if (!lua_istable(L, idx) || (name = opt_field(L, idx, "name")) == NULL)
		luaL_error(L, "%s:%d: each entry of extra needs a name", file, line);
	at = find_rule(L, base, name);
	lua_getfield(L, idx, "remove");
	if (lua_toboolean(L, -1)) {
		if (at == 0)
			luaL_error(L, "%s:%d: extra removes '%s', but no rule has that name", file,
				   line, name);
		lua_pushboolean(L, 0);
		lua_rawseti(L, base, at);
	} else {
		lua_pushvalue(L, idx);
		lua_rawseti(L, at ? base : front, at ? at : (int)lua_objlen(L, front) + 1);
	}
	lua_pop(L, 1);
}

/* Push the rule list in check order: new extras, then the (overridden) base list. */
static void
push_merged(lua_State *L, int rules, int extra, const char *file, int line)
{
	int base, front, i, n;

	lua_newtable(L);
	base = lua_gettop(L);
	for (i = 1, n = (int)lua_objlen(L, rules); i <= n; i++) {
		lua_rawgeti(L, rules, i);
		lua_rawseti(L, base, i);
	}
	lua_newtable(L);
	front = lua_gettop(L);
	for (i = 1, n = extra ? (int)lua_objlen(L, extra) : 0; i <= n; i++) {
		lua_rawgeti(L, extra, i);
		apply_extra(L, base, front, lua_gettop(L), file, line);
		lua_pop(L, 1);
	}
	for (i = 1, n = (int)lua_objlen(L, base); i <= n; i++) {
		lua_rawgeti(L, base, i);
		if (lua_toboolean(L, -1))
			lua_rawseti(L, front, (int)lua_objlen(L, front) + 1);
		else
			lua_pop(L, 1);
	}
	lua_replace(L, base);
	lua_settop(L, base);
}

static int
rules_gc(lua_State *L)
{
	struct bounce_rules **box = luaL_checkudata(L, 1, LUA_BOUNCE_RULES_MT);

	bounce_rules_free(*box);
	*box = NULL;
	return 0;
}

/* Compile the list at idx into a new set and make it the state's; raise on the first bad rule. */
static void
install(lua_State *L, int list, const char *file, int line)
{
	struct bounce_rules **box = lua_newuserdata(L, sizeof(*box));
	struct bounce_rule_def def;
	struct tern_err err;
	int i, n = (int)lua_objlen(L, list);

	*box = NULL;
	luaL_getmetatable(L, LUA_BOUNCE_RULES_MT);
	lua_setmetatable(L, -2);
	if ((*box = bounce_rules_new()) == NULL)
		luaL_error(L, "tern.bounce.configure: out of memory");
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, list, i);
		read_rule(L, lua_gettop(L), &def, file, line);
		if (bounce_rules_add(*box, &def, &err) < 0)
			luaL_error(L, "%s:%d: %s", def.file, def.line, err.msg);
		lua_pop(L, 1);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, LUA_BOUNCE_RULES_KEY);
}

static void
push_defaults(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushstring(L, LUA_BOUNCE_DEFAULTS);
	lua_call(L, 1, 1);
	if (!lua_istable(L, -1))
		luaL_error(L, "%s must return a list of rules", LUA_BOUNCE_DEFAULTS);
}

/* tern.bounce.configure{ rules = ..., extra = ... } */
static int
lua_bounce_configure(lua_State *L)
{
	const char *file;
	int line, top;

	lua_options_check(L, 1, "tern.bounce.configure", configure_options);
	lua_settop(L, 1);
	caller_where(L, &file, &line);
	top = lua_gettop(L);
	lua_getfield(L, 1, "rules");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		push_defaults(L);
	}
	if (!lua_istable(L, top + 1))
		luaL_error(L, "tern.bounce.configure: rules must be a list of rules");
	lua_getfield(L, 1, "extra");
	if (!lua_isnil(L, -1) && !lua_istable(L, -1))
		luaL_error(L, "tern.bounce.configure: extra must be a list of rules");
	push_merged(L, top + 1, lua_isnil(L, top + 2) ? 0 : top + 2, file, line);
	install(L, lua_gettop(L), file, line);
	return 0;
}

struct bounce_rules *
lua_bounce_rules(lua_State *L)
{
	struct bounce_rules **box;
	int top = lua_gettop(L);

	lua_getfield(L, LUA_REGISTRYINDEX, LUA_BOUNCE_RULES_KEY);
	if (lua_isnil(L, -1)) {
		push_defaults(L);
		install(L, lua_gettop(L), LUA_BOUNCE_DEFAULTS, 0);
		lua_getfield(L, LUA_REGISTRYINDEX, LUA_BOUNCE_RULES_KEY);
	}
	box = lua_touserdata(L, -1);
	lua_settop(L, top);
	return *box;
}

/* tern.bounce.classify(reply [, site]) -> category, rule, 'file:line' */
static int
lua_bounce_classify(lua_State *L)
{
	size_t len;
	const char *reply = luaL_checklstring(L, 1, &len);
	const char *site = luaL_optstring(L, 2, "");
	struct bounce_result res = bounce_classify(lua_bounce_rules(L), reply, len, site);

	lua_pushstring(L, bounce_category_name(res.category));
	if (res.rule == NULL)
		return 1;
	lua_pushstring(L, res.rule);
	lua_pushfstring(L, "%s:%d", res.file, res.line);
	return 3;
}

struct classify_call {
	const char *reply;
	size_t len;
	const char *site;
	const char *category;
};

/* Under lua_cpcall: loading the default rules may raise. */
static int
classify_call(lua_State *L)
{
	struct classify_call *c = lua_touserdata(L, 1);
	struct bounce_result res = bounce_classify(lua_bounce_rules(L), c->reply, c->len,
						   c->site ? c->site : "");

	c->category = bounce_category_name(res.category);
	return 0;
}

const char *
lua_bounce_category(lua_State *L, const char *reply, size_t len, const char *site)
{
	struct classify_call c = {.reply = reply, .len = len, .site = site};

	if (lua_cpcall(L, classify_call, &c) != 0) {
		log_warn("bounce", "bounce rules not loaded: %s", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	return c.category;
}

/* tern.bounce.normalise(reply) -> '550 5.1.1 text' */
static int
lua_bounce_normalise(lua_State *L)
{
	size_t len;
	const char *reply = luaL_checklstring(L, 1, &len);
	char out[BOUNCE_REPLY_MAX];

	lua_pushlstring(L, out, bounce_normalise(reply, len, out, sizeof(out)));
	return 1;
}

void
lua_bounce_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"rule", lua_bounce_rule},
				       {"configure", lua_bounce_configure},
				       {"classify", lua_bounce_classify},
				       {"normalise", lua_bounce_normalise},
				       {NULL, NULL}};

	luaL_newmetatable(L, LUA_BOUNCE_RULES_MT);
	lua_pushcfunction(L, rules_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "bounce");
}
