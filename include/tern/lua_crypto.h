/* SPDX-License-Identifier: MIT */
/*
 * tern.crypto: message authentication for policy (signing webhooks).
 *
 *   tern.crypto.hmac_sha256(key, data) -> lower-case hex digest (64 characters)
 */
#ifndef TERN_LUA_CRYPTO_H
#define TERN_LUA_CRYPTO_H

#include <lua.h>

/* With the `tern` table on top of the stack: set tern.crypto = {...}. */
void lua_crypto_open(lua_State *L);

#endif
