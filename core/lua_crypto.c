// SPDX-License-Identifier: MIT
/*
 * tern.crypto: HMAC-SHA256 through OpenSSL, for senders that sign what they
 * send (lua/tern/log_hooks.lua's webhook) so that receivers can check it.
 */
#include "tern/lua_crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <lauxlib.h>

/* tern.crypto.hmac_sha256(key, data) -> hex digest */
static int
lua_crypto_hmac_sha256(lua_State *L)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	char out[2 * EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	size_t klen, dlen;
	const char *key = luaL_checklstring(L, 1, &klen);
	const char *data = luaL_checklstring(L, 2, &dlen);

	if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, dlen, mac, &n) == NULL)
		return luaL_error(L, "tern.crypto.hmac_sha256: HMAC failed");
	for (i = 0; i < n; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	lua_pushlstring(L, out, 2 * n);
	return 1;
}

void
lua_crypto_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"hmac_sha256", lua_crypto_hmac_sha256}, {NULL, NULL}};

	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "crypto");
}
