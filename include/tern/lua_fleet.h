/* SPDX-License-Identifier: MIT */
/* tern.configure_redis (fleet mode): see core/lua_fleet.c. */
#ifndef TERN_LUA_FLEET_H
#define TERN_LUA_FLEET_H

#include <lua.h>

/* Adds configure_redis to the `tern` table on top of the stack. */
void lua_fleet_open(lua_State *L);

#endif
