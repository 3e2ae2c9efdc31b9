// SPDX-License-Identifier: MIT
/*
 * tern.json: Lua values to JSON and back, on top of the span scanner in
 * core/json.c. Encoding walks the value depth-first, remembering the tables on
 * the current path (for cycles) and the keys that led there (for errors that
 * say where the bad value is). Decoding validates the whole text first, so a
 * malformed document never leaves a half-built value on the Lua stack.
 */
#include "tern/lua_json.h"
#include "tern/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* Objects with more keys than this sort them in a userdata instead of on the C stack. */
#define LUA_JSON_STACK_KEYS 32

/* tern.json.null: its address is the value, unique to this process. */
static char lua_json_null;

/* One step of the path from the encoded value to the current one: a key or an array index. */
struct enc_step {
	const char *key; /* NULL for an array index */
	size_t keylen;
	size_t index; /* 0 with no key: the table's own keys are being looked at, no step yet */
};

struct enc {
	lua_State *L;
	struct buf *out;
	struct tern_err *err;
	int depth;
	const void *tables[JSON_MAX_DEPTH];
	struct enc_step path[JSON_MAX_DEPTH];
};

struct enc_key {
	const char *p;
	size_t len;
};

static int enc_value(struct enc *e, int idx);
static int enc_fail(struct enc *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
is_identifier(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || (p[0] >= '0' && p[0] <= '9'))
		return false;
	for (i = 0; i < n; i++)
		if (!(p[i] == '_' || (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9')))
			return false;
	return true;
}

/* The path as Lua would index it: .name, ["odd key"], [2]. Truncated to fit out. */
static void
enc_path(const struct enc *e, char *out, size_t size)
{
	size_t used = 0;
	int i, n;

	out[0] = '\0';
	for (i = 0; i < e->depth && used < size; i++) {
		const struct enc_step *s = &e->path[i];

		if (s->key == NULL && s->index == 0)
			break;
		if (s->key == NULL)
			n = snprintf(out + used, size - used, "[%zu]", s->index);
		else if (is_identifier(s->key, s->keylen))
			n = snprintf(out + used, size - used, ".%.*s", (int)s->keylen, s->key);
		else
			n = snprintf(out + used, size - used, "[\"%.*s\"]",
				     (int)(s->keylen > 64 ? 64 : s->keylen), s->key);
		used += n > 0 ? (size_t)n : 0;
	}
}

static int
enc_fail(struct enc *e, const char *fmt, ...)
{
	char what[256], path[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	enc_path(e, path, sizeof(path));
	if (path[0] == '\0')
		tern_err_set(e->err, 0, NULL, "%s", what);
	else
		tern_err_set(e->err, 0, NULL, "%s (at %s)", what, path);
	return -EINVAL;
}

static int
enc_check(struct enc *e, int rc)
{
	if (rc < 0) {
		tern_err_set(e->err, 0, NULL, "out of memory while encoding JSON");
		return -ENOMEM;
	}
	return 0;
}

static int
enc_number(struct enc *e, double x)
{
	char tmp[32];
	int n;

	if (isnan(x))
		return enc_fail(e, "cannot encode NaN as JSON");
	if (isinf(x))
		return enc_fail(e, "cannot encode %s as JSON", x > 0 ? "inf" : "-inf");
	if (x == floor(x) && fabs(x) < 9007199254740992.0)
		n = snprintf(tmp, sizeof(tmp), "%" PRId64, (int64_t)x);
	else
		n = snprintf(tmp, sizeof(tmp), "%.17g", x);
	return enc_check(e, buf_append(e->out, tmp, (size_t)n));
}

/* Kinds of keys in a table, counted in one pass. */
struct shape {
	size_t count;
	size_t strings;
	size_t indices; /* positive integers */
	double max_index;
};

static void
table_shape(lua_State *L, int idx, struct shape *sh)
{
	double k;

	memset(sh, 0, sizeof(*sh));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		sh->count++;
		if (lua_type(L, -1) == LUA_TSTRING) {
			sh->strings++;
		} else if (lua_type(L, -1) == LUA_TNUMBER) {
			k = lua_tonumber(L, -1);
			if (k >= 1 && k == floor(k)) {
				sh->indices++;
				sh->max_index = k > sh->max_index ? k : sh->max_index;
			}
		}
	}
}

static int
enc_array(struct enc *e, int idx, size_t n)
{
	struct enc_step *step = &e->path[e->depth - 1];
	size_t i;
	int rc;

	if (enc_check(e, buf_append_char(e->out, '[')) < 0)
		return -ENOMEM;
	for (i = 1; i <= n; i++) {
		if (i > 1 && enc_check(e, buf_append_char(e->out, ',')) < 0)
			return -ENOMEM;
		*step = (struct enc_step){NULL, 0, i};
		lua_rawgeti(e->L, idx, (int)i);
		rc = enc_value(e, lua_gettop(e->L));
		lua_pop(e->L, 1);
		if (rc < 0)
			return rc;
	}
	return enc_check(e, buf_append_char(e->out, ']'));
}

static int
key_cmp(const void *a, const void *b)
{
	const struct enc_key *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* The table's keys, sorted; they stay valid while the table holds them. */
static struct enc_key *
object_keys(lua_State *L, int idx, size_t count, struct enc_key *stack)
{
	struct enc_key *keys = stack;
	size_t n = 0;

	if (count > LUA_JSON_STACK_KEYS)
		keys = lua_newuserdata(L, count * sizeof(*keys)); /* collected with the encode */
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		keys[n].p = lua_tolstring(L, -1, &keys[n].len);
		n++;
	}
	qsort(keys, count, sizeof(*keys), key_cmp);
	return keys;
}

static int
enc_member(struct enc *e, int idx, const struct enc_key *k)
{
	int rc;

	e->path[e->depth - 1] = (struct enc_step){k->p, k->len, 0};
	if (enc_check(e, buf_append_json_string(e->out, k->p, k->len)) < 0 ||
	    enc_check(e, buf_append_char(e->out, ':')) < 0)
		return -ENOMEM;
	lua_pushlstring(e->L, k->p, k->len);
	lua_rawget(e->L, idx);
	rc = enc_value(e, lua_gettop(e->L));
	lua_pop(e->L, 1);
	return rc;
}

static int
enc_object(struct enc *e, int idx, size_t count)
{
	struct enc_key stack[LUA_JSON_STACK_KEYS], *keys;
	size_t i;
	int rc;

	keys = object_keys(e->L, idx, count, stack);
	if (enc_check(e, buf_append_char(e->out, '{')) < 0)
		return -ENOMEM;
	for (i = 0; i < count; i++) {
		if (i > 0 && enc_check(e, buf_append_char(e->out, ',')) < 0)
			return -ENOMEM;
		rc = enc_member(e, idx, &keys[i]);
		if (rc < 0)
			return rc;
	}
	return enc_check(e, buf_append_char(e->out, '}'));
}

static int
enc_table_body(struct enc *e, int idx)
{
	struct shape sh;

	table_shape(e->L, idx, &sh);
	if (sh.count == 0)
		return enc_check(e, buf_append(e->out, "{}", 2));
	if (sh.strings == sh.count)
		return enc_object(e, idx, sh.count);
	if (sh.indices == sh.count && sh.max_index == (double)sh.count)
		return enc_array(e, idx, sh.count);
	if (sh.indices == sh.count)
		return enc_fail(e, "cannot encode a sparse array as JSON");
	return enc_fail(e, "cannot encode a table with mixed or non-string keys as JSON");
}

static int
enc_table(struct enc *e, int idx)
{
	const void *t = lua_topointer(e->L, idx);
	int i, rc;

	for (i = 0; i < e->depth; i++)
		if (e->tables[i] == t)
			return enc_fail(e, "cannot encode a table that contains itself as JSON");
	if (e->depth == JSON_MAX_DEPTH)
		return enc_fail(e, "cannot encode tables nested deeper than %d as JSON",
				JSON_MAX_DEPTH);
	/* The child value, a key and its value while iterating, and the key userdata. */
	if (!lua_checkstack(e->L, 4))
		return enc_check(e, -ENOMEM);
	e->tables[e->depth] = t;
	e->path[e->depth++] = (struct enc_step){NULL, 0, 0};
	rc = enc_table_body(e, idx);
	e->depth--;
	return rc;
}

static int
enc_value(struct enc *e, int idx)
{
	lua_State *L = e->L;
	const char *s;
	size_t n;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return enc_check(e, buf_append(e->out, "null", 4));
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			return enc_check(e, buf_append(e->out, "true", 4));
		return enc_check(e, buf_append(e->out, "false", 5));
	case LUA_TNUMBER:
		return enc_number(e, lua_tonumber(L, idx));
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		return enc_check(e, buf_append_json_string(e->out, s, n));
	case LUA_TTABLE:
		return enc_table(e, idx);
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == &lua_json_null)
			return enc_check(e, buf_append(e->out, "null", 4));
		return enc_fail(e, "cannot encode a userdata as JSON");
	default:
		return enc_fail(e, "cannot encode a %s as JSON", lua_typename(L, lua_type(L, idx)));
	}
}

int
lua_json_encode(lua_State *L, int idx, struct buf *out, struct tern_err *err)
{
	struct enc e = {.L = L, .out = out, .err = err};
	int top = lua_gettop(L);
	size_t len = out->len;
	int rc;

	if (idx < 0 && idx > LUA_REGISTRYINDEX)
		idx = top + idx + 1;
	rc = enc_value(&e, idx);
	lua_settop(L, top);
	if (rc < 0 && out->data != NULL) {
		out->len = len;
		out->data[len] = '\0';
	}
	return rc;
}

struct dec {
	lua_State *L;
	const char *text;
	struct tern_err *err;
};

static int dec_value(struct dec *d, const struct json_span *v);

static int
dec_element(void *arg, size_t index, const struct json_span *val)
{
	struct dec *d = arg;

	if (dec_value(d, val) < 0)
		return -EINVAL;
	lua_rawseti(d->L, -2, (int)index + 1);
	return 0;
}

static int
dec_member(void *arg, const char *key, size_t keylen, const struct json_span *val)
{
	struct dec *d = arg;

	lua_pushlstring(d->L, key, keylen);
	if (dec_value(d, val) < 0)
		return -EINVAL;
	lua_rawset(d->L, -3);
	return 0;
}

/* Short strings decode on the C stack, long ones in a userdata the GC takes back. */
static int
dec_string(struct dec *d, const struct json_span *v)
{
	char stack[256];
	char *p = stack;
	size_t n;

	if (v->len > sizeof(stack))
		p = lua_newuserdata(d->L, v->len);
	if (json_string_decode_to(v, p, &n) < 0)
		return -EINVAL;
	lua_pushlstring(d->L, p, n);
	if (p != stack)
		lua_remove(d->L, -2);
	return 0;
}

static int
dec_number(struct dec *d, const struct json_span *v)
{
	double x;

	if (json_number_value(v, &x) < 0) {
		tern_err_set(d->err, 0, NULL, "JSON number at byte %zu does not fit a double",
			     (size_t)(v->p - d->text));
		return -EINVAL;
	}
	lua_pushnumber(d->L, x);
	return 0;
}

static int
dec_value(struct dec *d, const struct json_span *v)
{
	/* A container, a key and a value per level of nesting. */
	if (!lua_checkstack(d->L, 3)) {
		tern_err_set(d->err, 0, NULL, "JSON nested too deep for the Lua stack");
		return -EINVAL;
	}
	switch (v->type) {
	case JSON_NULL:
		lua_pushlightuserdata(d->L, &lua_json_null);
		return 0;
	case JSON_FALSE:
	case JSON_TRUE:
		lua_pushboolean(d->L, v->type == JSON_TRUE);
		return 0;
	case JSON_NUMBER:
		return dec_number(d, v);
	case JSON_STRING:
		return dec_string(d, v);
	case JSON_ARRAY:
		lua_newtable(d->L);
		return json_array_foreach(v, dec_element, d) < 0 ? -EINVAL : 0;
	case JSON_OBJECT:
		lua_newtable(d->L);
		return json_object_foreach(v, dec_member, d) < 0 ? -EINVAL : 0;
	}
	return -EINVAL;
}

int
lua_json_decode(lua_State *L, const char *p, size_t len, struct tern_err *err)
{
	struct dec d = {.L = L, .text = p, .err = err};
	struct json_span span;
	int top = lua_gettop(L);

	if (json_parse_span(p, len, &span, err) < 0)
		return -EINVAL;
	if (dec_value(&d, &span) < 0) {
		lua_settop(L, top);
		return -EINVAL;
	}
	return 0;
}

/*
 * The Lua-facing functions are named lua_json_<method>_lua rather than
 * CONVENTIONS' lua_json_<method>: those names are taken by the C API above,
 * which other modules call with a value already on the stack.
 */

/* tern.json.encode(v) -> string; raises for values JSON cannot hold (misuse). */
static int
lua_json_encode_lua(lua_State *L)
{
	struct tern_err err;
	struct buf out;
	int rc;

	luaL_checkany(L, 1);
	buf_init(&out);
	rc = lua_json_encode(L, 1, &out, &err);
	if (rc == 0)
		lua_pushlstring(L, out.data, out.len);
	buf_deinit(&out);
	if (rc < 0)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

/* tern.json.decode(s) -> value, or nil and the error for malformed text (a run-time failure). */
static int
lua_json_decode_lua(lua_State *L)
{
	struct tern_err err;
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);

	if (lua_json_decode(L, s, len, &err) == 0)
		return 1;
	lua_pushnil(L);
	lua_pushstring(L, err.msg);
	return 2;
}

void
lua_json_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
	    {"encode", lua_json_encode_lua},
	    {"decode", lua_json_decode_lua},
	    {NULL, NULL},
	};

	lua_createtable(L, 0, 3);
	luaL_register(L, NULL, fns);
	lua_pushlightuserdata(L, &lua_json_null);
	lua_setfield(L, -2, "null");
	lua_setfield(L, -2, "json");
}
