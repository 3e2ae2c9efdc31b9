/* SPDX-License-Identifier: MIT */
/*
 * The global `tern` module: tern.on, tern.log, tern.sleep, tern.spawn,
 * tern.reject, tern.shard; it opens every binding into the table, so it sits
 * above them, beside policy.
 */
#ifndef TERN_LUA_TERN_H
#define TERN_LUA_TERN_H

#include <lua.h>

/* Create the global `tern` table and open every binding module into it. */
void lua_tern_open(lua_State *L);

#endif
