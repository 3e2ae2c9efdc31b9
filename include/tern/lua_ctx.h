/* SPDX-License-Identifier: MIT */
/*
 * What a binding needs to know about the Lua state it runs in: the shard it
 * belongs to and its main state (coroutines come and go; references meant to
 * outlive a hook are anchored in the main state). Policy sets both when it
 * creates a state; bindings read them here rather than from policy, which
 * sits above them.
 */
#ifndef TERN_LUA_CTX_H
#define TERN_LUA_CTX_H

#include <lua.h>

struct shard;

/* On the main state L, once: remember L and shard (which may be NULL: --check, tests). */
void lua_ctx_set(lua_State *L, struct shard *shard);
/* The main state of L's state (L itself when L is the main state). */
lua_State *lua_ctx_main(lua_State *L);
struct shard *lua_ctx_shard(lua_State *L);
/*
 * Pins: engine objects (a session's connection, a message) holding a
 * reference into L's state. A reloaded policy's old state is closed only
 * once its pins are gone, so that releasing them never touches a closed one.
 */
void lua_ctx_pin(lua_State *L, int delta);
int lua_ctx_pins(lua_State *L);

#endif
