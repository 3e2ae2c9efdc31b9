/* SPDX-License-Identifier: MIT */
/*
 * tern.configure_trace_header{ secret = '...', verp = false }: the key of
 * the X-Tern-Ref header (core/trace_ref.c) that tern adds to what it sends,
 * and checks in the bounces and complaints it receives; with verp, each copy
 * also leaves with a VERP return path made with it. Called at the top level
 * of the policy, so each shard's state has it; without it no header is
 * added and refs in reports are not trusted. At least 16 bytes.
 */
#ifndef TERN_LUA_TRACE_H
#define TERN_LUA_TRACE_H

#include <stddef.h>

#include <lua.h>

#include "tern/trace_ref.h"

/* With the `tern` table on top of the stack: set tern.configure_trace_header. */
void lua_trace_open(lua_State *L);
/* What state L's policy configured: out->secret_len 0 when it gave no secret. */
void lua_trace_config(lua_State *L, struct trace_config *out);

#endif
