// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for core/json.c and core/lua_json.c. Any input goes to
 * json_validate; a valid one is walked completely (every member, element,
 * string and number), decoded into Lua and re-encoded: the encoding must be
 * valid JSON and a fixed point of decode-then-encode.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tern/json.h"
#include "tern/lua_json.h"

static int walk(const struct json_span *v);

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
check_string(const struct json_span *v)
{
	struct tern_err err;
	struct buf s, quoted;

	buf_init(&s);
	buf_init(&quoted);
	check(json_string_decode(v, &s) == 0);
	/* Decoded text is valid UTF-8, so quoting it again gives valid JSON. */
	check(buf_append_json_string(&quoted, s.data ? s.data : "", s.len) == 0);
	check(json_validate(quoted.data, quoted.len, &err) == 0);
	buf_deinit(&s);
	buf_deinit(&quoted);
}

static int
walk_member(void *arg, const char *key, size_t keylen, const struct json_span *val)
{
	const struct json_span *obj = arg;
	struct json_span first;

	check(key[keylen] == '\0');
	if (strlen(key) == keylen)
		check(json_object_get(obj, key, &first) == 0);
	return walk(val);
}

static int
walk_element(void *arg, size_t index, const struct json_span *val)
{
	return walk(val);
}

static int
walk(const struct json_span *v)
{
	double d;
	int rc;

	switch (v->type) {
	case JSON_OBJECT:
		return json_object_foreach(v, walk_member, (void *)v);
	case JSON_ARRAY:
		return json_array_foreach(v, walk_element, NULL);
	case JSON_STRING:
		check_string(v);
		return 0;
	case JSON_NUMBER:
		rc = json_number_value(v, &d);
		check(rc == 0 || rc == -ERANGE);
		return 0;
	default:
		return 0;
	}
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

/* decode(text) then encode; 1 when text decoded (numbers beyond a double do not). */
static int
round_trip(lua_State *L, const char *p, size_t len, struct buf *out)
{
	struct tern_err err;

	if (lua_json_decode(L, p, len, &err) != 0) {
		check(strstr(err.msg, "does not fit a double") != NULL);
		return 0;
	}
	check(lua_json_encode(L, -1, out, &err) == 0);
	lua_settop(L, 0);
	check(json_validate(out->data, out->len, &err) == 0);
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	lua_State *L = lua_state();
	struct json_span span;
	struct buf once, twice;

	if (json_validate(p, size, NULL) != 0)
		return 0;
	check(json_parse_span(p, size, &span, NULL) == 0);
	check(walk(&span) == 0);
	buf_init(&once);
	buf_init(&twice);
	if (round_trip(L, p, size, &once)) {
		check(round_trip(L, once.data, once.len, &twice) == 1);
		check(once.len == twice.len && memcmp(once.data, twice.data, once.len) == 0);
	}
	buf_deinit(&once);
	buf_deinit(&twice);
	return 0;
}
