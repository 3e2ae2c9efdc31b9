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

#include <lua.h>

struct bounce_rules;
struct logrec;

/* With the `tern` table on top of the stack: set tern.bounce = {...}. */
void lua_bounce_open(lua_State *L);
/* The state's rule set (the defaults until policy configures it), or raise. */
struct bounce_rules *lua_bounce_rules(lua_State *L);

/*
 * Set rec->bounce_classification from rec's response and site when rec is a
 * TransientFailure, Bounce or Expiration, with the rules of the calling
 * shard's policy (each shard's Lua state is its own thread's alone; outside
 * a shard the field stays null). Never raises: when the rules cannot be
 * loaded the field stays null and a diagnostic is logged.
 */
void lua_bounce_record(struct logrec *rec);

#endif
