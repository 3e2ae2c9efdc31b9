/* SPDX-License-Identifier: MIT */
/*
 * The message as Lua sees it: a handle to a C-owned struct message. When C
 * frees the message the handle is cleared, and any later use raises
 * "message is no longer valid" instead of touching freed memory.
 */
#ifndef TERN_LUA_MESSAGE_H
#define TERN_LUA_MESSAGE_H

#include <lua.h>

struct message;

/* Register the message class (metatable). */
void lua_message_open(lua_State *L);
/* Push the handle of m (created on first use). */
void lua_message_push(lua_State *L, struct message *m);
/* The live message at idx, or raise. */
struct message *lua_message_check(lua_State *L, int idx);

#endif
