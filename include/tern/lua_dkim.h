/* SPDX-License-Identifier: MIT */
/*
 * tern.dkim: DKIM signers for policy. A signer is a userdata holding a
 * reference to a struct dkim_signer (core/dkim.c); keys are shared through
 * dkim's process-wide cache, so creating signers is cheap.
 *
 *   local s = tern.dkim.rsa_sha256_signer { domain = 'example.com', selector = 's1',
 *                                           key = '/etc/tern/dkim/example.com.key' }
 *   msg:dkim_sign(s)          -- the message binding, via lua_dkim_check_signer
 *   s:sign(text)              -- the DKIM-Signature field for text, or nil, err
 */
#ifndef TERN_LUA_DKIM_H
#define TERN_LUA_DKIM_H

#include <lua.h>

struct dkim_signer;

/* With the `tern` table on top of the stack: set tern.dkim = {...}. */
void lua_dkim_open(lua_State *L);
/* The signer at idx (borrowed; ref it to keep it beyond the call), or raise. */
struct dkim_signer *lua_dkim_check_signer(lua_State *L, int idx);

#endif
