/* SPDX-License-Identifier: MIT */
/*
 * tern.bounce: the classifier's rules from policy (core/bounce.c does the work).
 *
 *   tern.bounce.rule { name = 'x', category = 'bad-mailbox', pattern = '...', site = '...' }
 *       -- the rule, marked with the file:line that wrote it
 *   tern.bounce.configure { rules = { ... }, extra = { ... } }
 *       -- rules replaces the defaults (lua/tern/bounce_rules.lua); each entry of extra
 *       -- overrides the rule of the same name in place, removes it ({ name = 'x',
 *       -- remove = true }), or, with a new name, is checked before the defaults
 *   tern.bounce.classify(reply [, site])  -- category, rule name, 'file:line' (nil, nil: none)
 *   tern.bounce.normalise(reply)          -- '550 5.1.1 text'
 */
#ifndef TERN_LUA_BOUNCE_H
#define TERN_LUA_BOUNCE_H

#include <stddef.h>

#include <lua.h>

struct bounce_rules;

/* With the `tern` table on top of the stack: set tern.bounce = {...}. */
void lua_bounce_open(lua_State *L);
/* The state's rule set (the defaults until policy configures it), or raise. */
struct bounce_rules *lua_bounce_rules(lua_State *L);

/*
 * The category (a static name) of reply, seen from site, with the rules of
 * the state L (the calling shard's own: each Lua state belongs to one
 * thread). Never raises: when the rules cannot be loaded it logs and
 * returns NULL.
 */
const char *lua_bounce_category(lua_State *L, const char *reply, size_t len, const char *site);

#endif
