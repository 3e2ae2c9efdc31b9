/* SPDX-License-Identifier: MIT */
/*
 * tern.shaping_state: shaping automation's rules and states from Lua
 * (core/automation.c matches, core/path_state.c keeps the states).
 *
 *   tern.shaping_state.rule { regex = ..., action = ..., duration = ..., trigger = ...,
 *                             recovery = ..., scope = ..., mx_suffixes = {...},
 *                             file = ..., line = ... }
 *       -- compile a rule into this Lua state's set: its index, which a path's
 *       -- `automation` option lists (lua/tern/shaping.lua does both)
 *   tern.shaping_state.clear { source = ..., site = ..., tenant = ..., campaign = ... }
 *       -- lift the states matching every given key: the number lifted, or nil, err
 *   tern.shaping_state.list()   -- the states in force or recovering, as JSON text
 */
#ifndef TERN_LUA_SHAPING_H
#define TERN_LUA_SHAPING_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct automation_rule;

/* With the `tern` table on top of the stack: set tern.shaping_state = {...}. */
void lua_shaping_open(lua_State *L);
/* The first rule among ids of L's set matching reply, or NULL (no set yet: none). Never raises. */
const struct automation_rule *lua_shaping_match(lua_State *L, const uint16_t *ids, size_t n,
						const char *reply, size_t len);

#endif
