/* SPDX-License-Identifier: MIT */
/*
 * Option tables: every binding that takes `{...}` checks its keys and reads
 * its values with these, so a typo or a wrong type fails the same way
 * everywhere, naming the function and the key.
 */
#ifndef TERN_LUA_OPTIONS_H
#define TERN_LUA_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

/* Raise "unknown option 'x' for fname" unless each key of the table at idx is in allowed. */
void lua_options_check(lua_State *L, int idx, const char *fname, const char *const *allowed);
/* Typed option readers: absent (nil) gives def; a wrong type raises naming fname and key. */
const char *lua_options_string(lua_State *L, int idx, const char *fname, const char *key,
			       const char *def);
double lua_options_number(lua_State *L, int idx, const char *fname, const char *key, double def);
bool lua_options_bool(lua_State *L, int idx, const char *fname, const char *key, bool def);
/* A number of seconds or a duration string ("30s", "5m"). */
double lua_options_duration(lua_State *L, int idx, const char *fname, const char *key, double def);
/* Read a field of an already validated table (made by a tern.make_* function): def when absent. */
double lua_options_field_number(lua_State *L, int idx, const char *key, double def);
const char *lua_options_field_string(lua_State *L, int idx, const char *key);
/*
 * Replace a rate option ("120/min") by events per second in the table; absent stays absent.
 * A 'local:' prefix (fleet mode: this node's own limit) also sets KEY_local = true.
 */
void lua_options_normalise_rate(lua_State *L, int idx, const char *fname, const char *key);
/* A number of bytes or a size string ("20MiB"). */
uint64_t lua_options_size(lua_State *L, int idx, const char *fname, const char *key, uint64_t def);

#endif
