// SPDX-License-Identifier: MIT
/*
 * libFuzzer: encoding Lua values that did not come from JSON (fuzz_json
 * covers decode-then-encode). The input is a small program that builds Lua
 * values on a stack: numbers from raw double bits (NaN, infinities, -0),
 * arbitrary byte strings (invalid UTF-8), booleans, tern.json.null, tables
 * filled with any keys (sparse and mixed arrays, float and boolean keys),
 * functions, and tables that contain themselves. Encoding either fails with a
 * message or yields valid JSON that decodes again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tern/json.h"
#include "tern/lua_json.h"

#define STACK_MAX 48

enum op {
	OP_NUMBER,
	OP_SMALL_INT,
	OP_STRING,
	OP_BOOLEAN,
	OP_NULL,
	OP_TABLE,
	OP_SET,	   /* t[k] = v: table, key, value on top */
	OP_SET_I,  /* t[i] = v: table, value on top; i from the next byte */
	OP_SELF,   /* t[k] = t: table, key on top */
	OP_FUNCTION,
	OP_COUNT
};

struct program {
	const uint8_t *p;
	size_t n;
};

static void
check(int ok, const char *what, const struct buf *json)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_lua_json: %s: %.*s\n", what, json ? (int)json->len : 0,
		json && json->data ? json->data : "");
	abort();
}

static lua_State *
lua_state(void)
{
	static lua_State *L;

	if (L == NULL) {
		L = luaL_newstate();
		luaL_openlibs(L);
		lua_newtable(L);
		lua_json_open(L);
		lua_setglobal(L, "tern");
	}
	return L;
}

static size_t
take(struct program *pr, void *out, size_t n)
{
	n = n < pr->n ? n : pr->n;
	memcpy(out, pr->p, n);
	pr->p += n;
	pr->n -= n;
	return n;
}

static uint8_t
take_byte(struct program *pr)
{
	uint8_t b = 0;

	take(pr, &b, 1);
	return b;
}

static void
push_string(lua_State *L, struct program *pr)
{
	size_t n = take_byte(pr);

	n = n < pr->n ? n : pr->n;
	lua_pushlstring(L, (const char *)pr->p, n);
	pr->p += n;
	pr->n -= n;
}

static void
push_null(lua_State *L)
{
	lua_getglobal(L, "tern");
	lua_getfield(L, -1, "json");
	lua_getfield(L, -1, "null");
	lua_replace(L, -3);
	lua_pop(L, 1);
}

static bool
usable_key(lua_State *L, int idx)
{
	return !lua_isnil(L, idx) && !(lua_isnumber(L, idx) && lua_tonumber(L, idx) != lua_tonumber(L, idx));
}

/* The ops that combine values; each needs its operands, else it does nothing. */
static void
combine(lua_State *L, enum op op, struct program *pr)
{
	int top = lua_gettop(L);

	if (op == OP_SET && top >= 3 && lua_istable(L, -3) && usable_key(L, -2)) {
		lua_settable(L, -3);
	} else if (op == OP_SET_I && top >= 2 && lua_istable(L, -2)) {
		lua_rawseti(L, -2, take_byte(pr));
	} else if (op == OP_SELF && top >= 2 && lua_istable(L, -2) && usable_key(L, -1)) {
		lua_pushvalue(L, -2);
		lua_settable(L, -3);
	}
}

static void
step(lua_State *L, struct program *pr)
{
	enum op op = (enum op)(take_byte(pr) % OP_COUNT);
	double d = 0;

	if (lua_gettop(L) >= STACK_MAX && op <= OP_TABLE)
		return;
	switch (op) {
	case OP_NUMBER: take(pr, &d, sizeof(d)); lua_pushnumber(L, d); break;
	case OP_SMALL_INT: lua_pushnumber(L, (int8_t)take_byte(pr)); break;
	case OP_STRING: push_string(L, pr); break;
	case OP_BOOLEAN: lua_pushboolean(L, take_byte(pr) & 1); break;
	case OP_NULL: push_null(L); break;
	case OP_TABLE: lua_newtable(L); break;
	case OP_FUNCTION:
		if (lua_gettop(L) < STACK_MAX)
			lua_pushcfunction(L, luaopen_base);
		break;
	default: combine(L, op, pr); break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct program pr = {data, size};
	lua_State *L = lua_state();
	struct tern_err err;
	struct buf out;
	int i;

	lua_settop(L, 0);
	while (pr.n > 0)
		step(L, &pr);
	buf_init(&out);
	/* Each value left on the stack, bottom first: the bottom one holds the most. */
	for (i = 1; i <= lua_gettop(L); i++) {
		out.len = 0;
		if (lua_json_encode(L, i, &out, &err) != 0) {
			check(err.msg[0] != '\0', "encoding failed without a message", NULL);
			continue;
		}
		check(json_validate(out.data, out.len, &err) == 0, "encoded invalid JSON", &out);
		check(lua_json_decode(L, out.data, out.len, &err) == 0, "encoded JSON does not decode", &out);
		lua_pop(L, 1);
	}
	buf_deinit(&out);
	lua_settop(L, 0);
	return 0;
}
