// SPDX-License-Identifier: MIT
/*
 * tern.dkim: signer constructors and the signer class. Options come as one
 * table checked by name, as for every binding; a bad option or key is a
 * policy mistake and raises, while a message that cannot be signed is a
 * run-time failure and returns nil, err.
 */
#include "tern/lua_dkim.h"

#include <lauxlib.h>

#include "tern/dkim.h"
#include "tern/lua_options.h"
#include "tern/util.h"

#define LUA_DKIM_SIGNER_MT "tern.dkim.signer"
#define LUA_DKIM_MAX_HEADERS 64

static const char *const signer_options[] = {
    "domain",
    "selector",
    "key",
    "headers",
    "header_canonicalization",
    "body_canonicalization",
    "over_sign",
    "expiration",
    "identity",
    "body_length",
    NULL,
};

struct dkim_signer *
lua_dkim_check_signer(lua_State *L, int idx)
{
	struct dkim_signer **box = luaL_checkudata(L, idx, LUA_DKIM_SIGNER_MT);

	if (*box == NULL)
		luaL_error(L, "dkim signer is no longer valid");
	return *box;
}

static enum dkim_canon
opt_canon(lua_State *L, const char *fname, const char *key)
{
	const char *v = lua_options_string(L, 1, fname, key, "relaxed");
	enum dkim_canon c;

	if (dkim_canon_parse(v, &c) < 0)
		luaL_error(L, "%s: option '%s' must be 'simple' or 'relaxed', not '%s'", fname, key,
			   v);
	return c;
}

/* headers = { 'From', 'Subject', ... }; the strings stay alive in the options table. */
static size_t
opt_headers(lua_State *L, const char *fname, const char **names)
{
	size_t n;

	lua_getfield(L, 1, "headers");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: option 'headers' must be a list of header names", fname);
	for (n = 0;; n++) {
		lua_rawgeti(L, -1, (int)n + 1);
		if (lua_isnil(L, -1))
			break;
		if (lua_type(L, -1) != LUA_TSTRING || n == LUA_DKIM_MAX_HEADERS)
			luaL_error(L, "%s: option 'headers' must be a list of at most %d names",
				   fname, LUA_DKIM_MAX_HEADERS);
		names[n] = lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
	if (n == 0)
		luaL_error(L, "%s: option 'headers' is empty", fname);
	return n;
}

/* The box exists before the signer, so no Lua error can leak one. */
static struct dkim_signer **
push_box(lua_State *L)
{
	struct dkim_signer **box = lua_newuserdata(L, sizeof(*box));

	*box = NULL;
	luaL_getmetatable(L, LUA_DKIM_SIGNER_MT);
	lua_setmetatable(L, -2);
	return box;
}

static int
new_signer(lua_State *L, const char *fname, enum dkim_algo algo)
{
	const char *names[LUA_DKIM_MAX_HEADERS];
	struct dkim_signer_config cfg;
	struct tern_err err = {0};
	struct dkim_signer **box;

	lua_options_check(L, 1, fname, signer_options);
	dkim_signer_config_init(&cfg);
	cfg.algo = algo;
	cfg.domain = lua_options_string(L, 1, fname, "domain", NULL);
	cfg.selector = lua_options_string(L, 1, fname, "selector", NULL);
	cfg.key_path = lua_options_string(L, 1, fname, "key", NULL);
	cfg.identity = lua_options_string(L, 1, fname, "identity", NULL);
	cfg.header_canon = opt_canon(L, fname, "header_canonicalization");
	cfg.body_canon = opt_canon(L, fname, "body_canonicalization");
	cfg.over_sign = lua_options_bool(L, 1, fname, "over_sign", true);
	cfg.body_length = lua_options_bool(L, 1, fname, "body_length", false);
	cfg.expiration = lua_options_duration(L, 1, fname, "expiration", 0);
	cfg.n_headers = opt_headers(L, fname, names);
	cfg.headers = cfg.n_headers ? names : NULL;
	box = push_box(L);
	*box = dkim_signer_new(&cfg, &err);
	if (*box == NULL)
		return luaL_error(L, "%s: %s", fname, err.msg);
	return 1;
}

/* tern.dkim.rsa_sha256_signer{...} */
static int
lua_dkim_rsa_sha256_signer(lua_State *L)
{
	return new_signer(L, "tern.dkim.rsa_sha256_signer", DKIM_ALGO_RSA_SHA256);
}

/* tern.dkim.ed25519_signer{...}: ed25519-sha256 (RFC 8463) */
static int
lua_dkim_ed25519_signer(lua_State *L)
{
	return new_signer(L, "tern.dkim.ed25519_signer", DKIM_ALGO_ED25519_SHA256);
}

/* signer:sign(text) -> the "DKIM-Signature: ...\r\n" field for text (CRLF endings), or nil, err */
static int
lua_dkim_signer_sign(lua_State *L)
{
	struct dkim_signer *s = lua_dkim_check_signer(L, 1);
	struct tern_err err = {0};
	struct buf out;
	size_t len;
	const char *msg = luaL_checklstring(L, 2, &len);

	buf_init(&out);
	if (dkim_sign(s, msg, len, util_wallclock(), &out, &err) < 0) {
		buf_deinit(&out);
		lua_pushnil(L);
		lua_pushstring(L, err.msg);
		return 2;
	}
	lua_pushlstring(L, out.data, out.len);
	buf_deinit(&out);
	return 1;
}

static int
lua_dkim_signer_tostring(lua_State *L)
{
	struct dkim_signer *s = lua_dkim_check_signer(L, 1);

	lua_pushfstring(L, "tern.dkim.signer(d=%s, s=%s)", dkim_signer_domain(s),
			dkim_signer_selector(s));
	return 1;
}

static int
lua_dkim_signer_gc(lua_State *L)
{
	struct dkim_signer **box = luaL_checkudata(L, 1, LUA_DKIM_SIGNER_MT);

	dkim_signer_unref(*box);
	*box = NULL;
	return 0;
}

void
lua_dkim_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"rsa_sha256_signer", lua_dkim_rsa_sha256_signer},
				       {"ed25519_signer", lua_dkim_ed25519_signer},
				       {NULL, NULL}};
	static const luaL_Reg methods[] = {{"sign", lua_dkim_signer_sign}, {NULL, NULL}};

	luaL_newmetatable(L, LUA_DKIM_SIGNER_MT);
	lua_newtable(L);
	luaL_register(L, NULL, methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_dkim_signer_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, lua_dkim_signer_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "dkim");
}
