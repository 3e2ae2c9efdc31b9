/* SPDX-License-Identifier: MIT */
/*
 * The global `tern` module: tern.on, tern.log, tern.sleep, tern.spawn,
 * tern.reject, tern.shard, and the shared checker for option tables that
 * every binding taking `{...}` uses.
 */
#ifndef TERN_LUA_TERN_H
#define TERN_LUA_TERN_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

/* Create the global `tern` table and open every binding module into it. */
void lua_tern_open(lua_State *L);

/* Raise "unknown option 'x' for fname" unless every key of the table at idx is in allowed (NULL-terminated). */
void lua_tern_check_options(lua_State *L, int idx, const char *fname, const char *const *allowed);
/* Typed option readers: absent (nil) gives def; a wrong type raises naming fname and key. */
const char *lua_tern_opt_string(lua_State *L, int idx, const char *fname, const char *key,
				const char *def);
double lua_tern_opt_number(lua_State *L, int idx, const char *fname, const char *key, double def);
bool lua_tern_opt_bool(lua_State *L, int idx, const char *fname, const char *key, bool def);
/* A number of seconds or a duration string ("30s", "5m"). */
double lua_tern_opt_duration(lua_State *L, int idx, const char *fname, const char *key, double def);
/* Read a field of an already validated table (made by a tern.make_* function): def when absent. */
double lua_tern_field_number(lua_State *L, int idx, const char *key, double def);
const char *lua_tern_field_string(lua_State *L, int idx, const char *key);
/* Replace a rate option ("120/min") by events per second in the table; absent stays absent. */
void lua_tern_normalise_rate(lua_State *L, int idx, const char *fname, const char *key);
/* A number of bytes or a size string ("20MiB"). */
uint64_t lua_tern_opt_size(lua_State *L, int idx, const char *fname, const char *key, uint64_t def);

#endif
