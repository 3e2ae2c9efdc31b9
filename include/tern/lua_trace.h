/* SPDX-License-Identifier: MIT */
/*
 * tern.configure_trace_header{ secret = '...' }: the key of the X-Tern-Ref
 * header (core/trace_ref.c) that tern adds to what it sends, and checks in
 * the bounces and complaints it receives. Called at the top level of the
 * policy, so each shard's state has it; without it no header is added and
 * refs in reports are not trusted. At least 16 bytes.
 */
#ifndef TERN_LUA_TRACE_H
#define TERN_LUA_TRACE_H

#include <stddef.h>

#include <lua.h>

/* With the `tern` table on top of the stack: set tern.configure_trace_header. */
void lua_trace_open(lua_State *L);
/* The secret of state L copied to out (cap bytes): its length, 0 when policy gave none. */
size_t lua_trace_secret(lua_State *L, char *out, size_t cap);

#endif
