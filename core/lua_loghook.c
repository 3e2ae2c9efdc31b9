// SPDX-License-Identifier: MIT
/*
 * tern.configure_log_hook: read the options into the engine's hook
 * (loghook_configure) and register the deliver function as the handler of
 * the hook's event. The engine passes raw JSON lines; a small Lua wrapper
 * decodes them, applies the filter function, and calls deliver, all inside
 * the hook's coroutine so that deliver may yield (tern.http.request).
 */
#include "tern/lua_loghook.h"
#include "tern/lua_ctx.h"
#include "tern/lua_options.h"
#include "tern/loghook.h"

#include <string.h>

#include <lauxlib.h>

static const char fname[] = "tern.configure_log_hook";

/* (decode, filter, deliver) -> the handler the engine calls with a list of JSON lines. */
static const char wrapper_src[] = "local decode, filter, deliver = ...\n"
				  "return function(lines)\n"
				  "  local records, kept = {}, {}\n"
				  "  for i = 1, #lines do\n"
				  "    local r = decode(lines[i])\n"
				  "    if filter == nil or filter(r) then\n"
				  "      records[#records + 1] = r\n"
				  "      kept[#kept + 1] = lines[i]\n"
				  "    end\n"
				  "  end\n"
				  "  if #records == 0 then return true end\n"
				  "  return deliver(records, kept)\n"
				  "end\n";

static void
read_types(lua_State *L, struct loghook_config *c)
{
	size_t i;

	lua_getfield(L, 1, "types");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: 'types' must be a list of record types", fname);
	c->n_types = lua_objlen(L, -1);
	if (c->n_types == 0 || c->n_types > LOGHOOK_TYPES_MAX)
		luaL_error(L, "%s: 'types' must list 1 to %d record types", fname,
			   LOGHOOK_TYPES_MAX);
	for (i = 0; i < c->n_types; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		if (lua_type(L, -1) != LUA_TSTRING || lua_objlen(L, -1) >= 32)
			luaL_error(L, "%s: types[%d] must be a record type name", fname,
				   (int)i + 1);
		c->types[i] = lua_tostring(L, -1); /* anchored in the types table */
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void
check_function(lua_State *L, const char *key, bool required)
{
	lua_getfield(L, 1, key);
	if (!lua_isfunction(L, -1) && !(lua_isnil(L, -1) && !required))
		luaL_error(L, "%s: option '%s' must be a function", fname, key);
	lua_pop(L, 1);
}

static void
read_options(lua_State *L, struct loghook_config *c)
{
	static const char *const allowed[] = {"name",	     "types",	"filter", "batch_size",
					      "max_latency", "deliver", NULL};
	double batch;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, fname, allowed);
	c->name = lua_options_string(L, 1, fname, "name", NULL);
	if (c->name == NULL || !loghook_name_valid(c->name))
		luaL_error(L,
			   "%s: option 'name' is required: letters, digits, '_', '-', '.' "
			   "(not first), at most %d",
			   fname, LOGHOOK_NAME_MAX - 1);
	read_types(L, c);
	check_function(L, "filter", false);
	check_function(L, "deliver", true);
	lua_getfield(L, 1, "filter");
	if (!lua_isnil(L, -1) && c->n_types > 0)
		luaL_error(L, "%s: give 'types' or 'filter', not both", fname);
	lua_pop(L, 1);
	batch = lua_options_number(L, 1, fname, "batch_size", LOGHOOK_DEFAULT_BATCH);
	if (batch < 1 || batch > 100000 || batch != (double)(size_t)batch)
		luaL_error(L, "%s: option 'batch_size' must be a whole number from 1 to 100000",
			   fname);
	c->batch_size = (size_t)batch;
	c->max_latency = lua_options_duration(L, 1, fname, "max_latency", LOGHOOK_DEFAULT_LATENCY);
	if (c->max_latency <= 0)
		luaL_error(L, "%s: option 'max_latency' must be positive", fname);
}

/* tern.on(LOGHOOK_EVENT_PREFIX .. name, wrapper(tern.json.decode, filter, deliver)) */
static void
register_handler(lua_State *L, const char *name)
{
	lua_getglobal(L, "tern");
	lua_getfield(L, -1, "on");
	lua_pushfstring(L, "%s%s", LOGHOOK_EVENT_PREFIX, name);
	if (luaL_loadbuffer(L, wrapper_src, sizeof(wrapper_src) - 1, "=log_hook") != 0)
		lua_error(L);
	lua_getfield(L, -4, "json");
	lua_getfield(L, -1, "decode");
	lua_remove(L, -2);
	lua_getfield(L, 1, "filter");
	lua_getfield(L, 1, "deliver");
	lua_call(L, 3, 1);
	lua_call(L, 2, 0);
	lua_pop(L, 1);
}

static int
lua_loghook_configure(lua_State *L)
{
	struct loghook_config c = {0};
	struct tern_err err;

	read_options(L, &c);
	register_handler(L, c.name);
	/* Without a shard (policy checks) there is nothing to run: the options are checked. */
	if (lua_ctx_shard(L) != NULL && loghook_configure(&c, &err) < 0)
		return luaL_error(L, "%s: %s", fname, err.msg);
	return 0;
}

void
lua_loghook_open(lua_State *L)
{
	lua_pushcfunction(L, lua_loghook_configure);
	lua_setfield(L, -2, "configure_log_hook");
}
