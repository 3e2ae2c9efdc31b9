// SPDX-License-Identifier: MIT
/*
 * tern.http.request: read the option table into a request, start it on the
 * calling shard's client and yield; the client's done callback pushes the
 * response (or nil, error) and wakes the coroutine. If the hook is cancelled
 * first (its deadline, a reload), the request is abandoned with it.
 */
#include "tern/lua_http.h"
#include "tern/coro.h"
#include "tern/http_client.h"
#include "tern/lua_ctx.h"
#include "tern/lua_options.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define LUA_HTTP_MAX_HEADERS 64

static const char fname[] = "tern.http.request";

struct lua_http_call {
	struct coro_wait wait;
	struct http_request *req;
};

/* Push the "Name: value" lines of a header block as { name = value } (names lowered). */
static void
push_headers(lua_State *L, const struct buf *h)
{
	const char *p = h->data ? h->data : "", *end = p + h->len, *eol, *colon, *v;
	char name[128];
	size_t i, n;

	lua_newtable(L);
	for (; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		n = colon ? (size_t)(colon - p) : 0;
		if (n == 0 || n >= sizeof(name))
			continue; /* the status line, the blank line, or a name too long to matter
				   */
		for (i = 0; i < n; i++)
			name[i] = (char)tolower((unsigned char)p[i]);
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		lua_pushlstring(L, name, n);
		lua_pushlstring(L, v, (size_t)(eol - v) - (eol > v && eol[-1] == '\r'));
		lua_rawset(L, -3);
	}
}

static int
push_response(lua_State *L, const struct http_response *res, const char *error)
{
	if (res == NULL) {
		lua_pushnil(L);
		lua_pushstring(L, error);
		return 2;
	}
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, (lua_Integer)res->status);
	lua_setfield(L, -2, "status");
	push_headers(L, &res->headers);
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, res->body.data ? res->body.data : "", res->body.len);
	lua_setfield(L, -2, "body");
	return 1;
}

static void
call_done(void *arg, const struct http_response *res, const char *error)
{
	struct lua_http_call *c = arg;
	struct coro_wait wait = c->wait;
	lua_State *co = coro_wait_state(&wait);

	free(c);
	if (co != NULL)
		coro_wake(&wait, push_response(co, res, error));
}

static void
call_cancel(void *arg)
{
	struct lua_http_call *c = arg;

	http_request_cancel(c->req);
	free(c);
}

/* headers = { Name = 'value', ... } into "Name: value" lines kept on the Lua stack. */
static size_t
read_headers(lua_State *L, const char **lines)
{
	size_t n = 0;

	lua_getfield(L, 1, "headers");
	if (lua_isnil(L, -1))
		return 0;
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: 'headers' must be a table of name = value", fname);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
			luaL_error(L, "%s: 'headers' must map names to strings", fname);
		luaL_checkstack(L, 3, fname);
		if (n == LUA_HTTP_MAX_HEADERS)
			luaL_error(L, "%s: at most %d headers", fname, LUA_HTTP_MAX_HEADERS);
		if (strpbrk(lua_tostring(L, -1), "\r\n") || strpbrk(lua_tostring(L, -2), "\r\n:"))
			luaL_error(L, "%s: header '%s' holds a line break or colon", fname,
				   lua_tostring(L, -2));
		lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
		lines[n++] = lua_tostring(L, -1);
		lua_insert(L, 2); /* anchor the line below the iteration */
		lua_pop(L, 1);
	}
	return n;
}

static void
read_request(lua_State *L, struct http_request_opts *o, const char **lines)
{
	static const char *const allowed[] = {"method",	 "url",	     "headers", "body",
					      "timeout", "insecure", NULL};

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_options_check(L, 1, fname, allowed);
	o->url = lua_options_string(L, 1, fname, "url", NULL);
	if (o->url == NULL)
		luaL_error(L, "%s: option 'url' is required", fname);
	o->method = lua_options_string(L, 1, fname, "method", "GET");
	if (*o->method == '\0' ||
	    o->method[strspn(o->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")] != '\0')
		luaL_error(L, "%s: option 'method' must be an upper-case HTTP method", fname);
	o->timeout = lua_options_duration(L, 1, fname, "timeout", HTTP_CLIENT_DEFAULT_TIMEOUT);
	if (o->timeout <= 0)
		luaL_error(L, "%s: option 'timeout' must be positive", fname);
	o->insecure = lua_options_bool(L, 1, fname, "insecure", false);
	lua_getfield(L, 1, "body");
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: option 'body' must be a string", fname);
		o->body = lua_tolstring(L, -1, &o->body_len); /* anchored in the option table */
	}
	lua_pop(L, 1);
	o->headers = lines;
	o->n_headers = read_headers(L, lines);
}

/* tern.http.request{ method, url, headers, body, timeout, insecure } -> response | nil, err */
static int
lua_http_request(lua_State *L)
{
	const char *lines[LUA_HTTP_MAX_HEADERS];
	struct http_request_opts o = {0};
	struct lua_http_call *c;
	struct coro_wait w;
	struct tern_err err;

	read_request(L, &o, lines);
	coro_prepare_wait(L, fname, &w); /* raises where yielding is not allowed */
	if (lua_ctx_shard(L) == NULL) {
		lua_pushnil(L);
		lua_pushliteral(L, "no event loop to run the request on");
		return 2;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return luaL_error(L, "%s: out of memory", fname);
	c->wait = w;
	c->req = http_request_start(lua_ctx_shard(L), &o, call_done, c, &err);
	if (c->req == NULL) {
		free(c);
		lua_pushnil(L);
		lua_pushstring(L, err.msg);
		return 2;
	}
	return coro_yield(L, &c->wait, 0, call_cancel, c);
}

void
lua_http_open(lua_State *L)
{
	static const luaL_Reg fns[] = {{"request", lua_http_request}, {NULL, NULL}};

	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "http");
}
