/* SPDX-License-Identifier: MIT */
/*
 * tern.make_egress_source, tern.make_egress_pool, tern.make_egress_path:
 * validate the tables the egress hooks return, and read them into C.
 */
#ifndef TERN_LUA_EGRESS_H
#define TERN_LUA_EGRESS_H

#include <lua.h>

#include "tern/egress.h"

void lua_egress_open(lua_State *L);
int lua_egress_read_source(lua_State *L, int idx, struct egress_source_cfg *out,
			   struct tern_err *err);
int lua_egress_read_pool(lua_State *L, int idx, struct egress_pool_cfg *out, struct tern_err *err);
int lua_egress_read_path(lua_State *L, int idx, struct egress_path_cfg *out, struct tern_err *err);

#endif
