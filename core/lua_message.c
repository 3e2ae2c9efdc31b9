// SPDX-License-Identifier: MIT
/*
 * msg:id(), sender(), recipient(), get_meta/set_meta, header access,
 * from_domain(), body_size(), import_x_headers(), dkim_sign(), queue_name(). Meta values
 * cross into C as JSON text so that they can be spooled and logged without Lua.
 *
 * tern.message.new() makes a message that Lua owns, for policy tests
 * (tern.testing) and tools: the same object hooks get, so a test exercises
 * the very methods a policy calls in production.
 */
#include "tern/lua_message.h"
#include "tern/dkim.h"
#include "tern/lua_dkim.h"
#include "tern/lua_json.h"
#include "tern/message.h"
#include "tern/lua_ctx.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#define MESSAGE_MT "tern.message"
#define MESSAGE_OWNER_MT "tern.message.owner"

/* message_free() calls this: the handle raises from now on, and the state lets go of it. */
static void
message_release(struct message *m)
{
	lua_State *L = m->lua_state;
	struct message **handle;

	if (m->lua_handle == LUA_NOREF)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, m->lua_handle);
	handle = lua_touserdata(L, -1);
	if (handle)
		*handle = NULL;
	lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, m->lua_handle);
	lua_ctx_pin(L, -1);
	m->lua_handle = LUA_NOREF;
}

void
lua_message_push(lua_State *L, struct message *m)
{
	struct message **handle;
	lua_State *main_state;

	if (m->lua_handle != LUA_NOREF && m->lua_state == lua_ctx_main(L)) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, m->lua_handle);
		return;
	}
	/* Handed to an earlier policy epoch (a reload came in between): that state lets go. */
	message_release(m);
	handle = lua_newuserdata(L, sizeof(*handle));
	*handle = m;
	luaL_getmetatable(L, MESSAGE_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	m->lua_handle = luaL_ref(L, LUA_REGISTRYINDEX);
	/* Not L itself: a coroutine may be collected before the message is freed. */
	main_state = lua_ctx_main(L);
	m->lua_state = main_state;
	m->release = message_release;
	lua_ctx_pin(L, 1);
}

struct message *
lua_message_check(lua_State *L, int idx)
{
	struct message **handle = luaL_checkudata(L, idx, MESSAGE_MT);

	if (*handle == NULL)
		luaL_error(L, "message is no longer valid");
	return *handle;
}

static int
lua_message_id(lua_State *L)
{
	char hex[SPOOL_ID_HEX_LEN + 1];

	spool_id_to_hex(&lua_message_check(L, 1)->id, hex);
	lua_pushstring(L, hex);
	return 1;
}

static int
lua_message_sender(lua_State *L)
{
	lua_pushstring(L, lua_message_check(L, 1)->sender);
	return 1;
}

static int
lua_message_recipient(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);

	lua_pushstring(L, m->recipient ? m->recipient : "");
	return 1;
}

static int
lua_message_body_size(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)lua_message_check(L, 1)->data.len);
	return 1;
}

static int
lua_message_get_meta(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	const struct meta_entry *e = message_get_meta(m, luaL_checkstring(L, 2));
	struct tern_err err;

	if (e == NULL) {
		lua_pushnil(L);
		return 1;
	}
	if (lua_json_decode(L, e->json, e->json_len, &err) < 0)
		return luaL_error(L, "msg:get_meta: %s", err.msg);
	return 1;
}

static int
lua_message_set_meta(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	const char *key = luaL_checkstring(L, 2);
	struct tern_err err;
	struct buf json;
	int rc;

	luaL_checkany(L, 3);
	buf_init(&json);
	if (lua_json_encode(L, 3, &json, &err) < 0) {
		buf_deinit(&json);
		return luaL_error(L, "msg:set_meta('%s'): %s", key, err.msg);
	}
	rc = message_set_meta(m, key, json.data, json.len);
	buf_deinit(&json);
	if (rc < 0)
		return luaL_error(L, "msg:set_meta: out of memory");
	return 0;
}

/* Push a header value with folding removed (CRLF before WSP dropped, RFC 5322 2.2.3). */
static void
push_unfolded(lua_State *L, const char *v, size_t n)
{
	luaL_Buffer b;
	size_t i;

	luaL_buffinit(L, &b);
	for (i = 0; i < n; i++) {
		if (v[i] == '\r' && i + 1 < n && v[i + 1] == '\n') {
			i++;
			continue;
		}
		luaL_addchar(&b, v[i]);
	}
	luaL_pushresult(&b);
}

static int
lua_message_get_header(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	struct message_field f;

	if (message_find_header(m, luaL_checkstring(L, 2), 0, &f) < 0) {
		lua_pushnil(L);
		return 1;
	}
	push_unfolded(L, m->data.data + f.value, f.value_len);
	return 1;
}

/*
 * The domain of the address in a From value: inside the last <...> when there
 * is one (a display name may hold '@'), else the whole value; after its last
 * '@', up to the first character that cannot be in a domain. Returns its
 * length (0: none) and sets *start.
 */
static size_t
from_value_domain(const char *v, size_t n, size_t *start)
{
	size_t lt = n, at = n, i, end;

	for (i = 0; i < n; i++)
		if (v[i] == '<')
			lt = i;
	end = lt < n ? lt + 1 : 0;
	for (i = end; i < n && (lt == n || v[i] != '>'); i++)
		if (v[i] == '@')
			at = i;
	if (at == n)
		return 0;
	*start = at + 1;
	for (end = at + 1; end < n && (isalnum((unsigned char)v[end]) || v[end] == '.' ||
				       v[end] == '-');
	     end++)
		;
	return end - *start;
}

/* msg:from_domain(): the From header's domain in lower case, or nil. */
static int
lua_message_from_domain(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	struct message_field f;
	size_t start = 0, len, i;
	luaL_Buffer b;

	if (message_find_header(m, "From", 0, &f) < 0 ||
	    (len = from_value_domain(m->data.data + f.value, f.value_len, &start)) == 0) {
		lua_pushnil(L);
		return 1;
	}
	luaL_buffinit(L, &b);
	for (i = 0; i < len; i++)
		luaL_addchar(&b, (char)tolower((unsigned char)m->data.data[f.value + start + i]));
	luaL_pushresult(&b);
	return 1;
}

static int
lua_message_get_headers(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct message_field f;
	size_t i;

	lua_newtable(L);
	for (i = 0; message_find_header(m, name, i, &f) == 0; i++) {
		push_unfolded(L, m->data.data + f.value, f.value_len);
		lua_rawseti(L, -2, (int)i + 1);
	}
	return 1;
}

static int
header_result(lua_State *L, int rc, const char *what)
{
	if (rc == -EINVAL)
		return luaL_error(L, "%s: invalid header name", what);
	if (rc < 0)
		return luaL_error(L, "%s: out of memory", what);
	return 0;
}

static int
lua_message_set_header(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);

	return header_result(
		L, message_set_header(m, luaL_checkstring(L, 2), luaL_checkstring(L, 3)),
		"msg:set_header");
}

static int
lua_message_prepend_header(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);

	return header_result(
		L, message_prepend_header(m, luaL_checkstring(L, 2), luaL_checkstring(L, 3)),
		"msg:prepend_header");
}

static int
lua_message_remove_header(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);

	lua_pushinteger(L, message_remove_header(m, luaL_checkstring(L, 2)));
	return 1;
}

/* Is name one of the strings in the list at idx (or is there no list)? */
static bool
name_listed(lua_State *L, int idx, const char *name, size_t n)
{
	int i;
	bool found = false;

	if (lua_isnoneornil(L, idx))
		return true;
	for (i = 1; !found; i++) {
		lua_rawgeti(L, idx, i);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			break;
		}
		found = strlen(lua_tostring(L, -1)) == n && strncasecmp(lua_tostring(L, -1), name, n) == 0;
		lua_pop(L, 1);
	}
	return found;
}

/*
 * msg:import_x_headers([names]): copy X-* header fields into meta, keyed by
 * the lower-cased field name ("X-Tenant" -> "x-tenant"); with a list, only
 * the fields named in it.
 */
static int
lua_message_import_x_headers(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	struct message_field f;
	size_t off = 0, i;
	char name[128];

	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TTABLE);
	while (message_next_header(m, &off, &f) == 0) {
		const char *p = m->data.data + f.start;

		if (f.name_len <= 2 || f.name_len >= sizeof(name) || strncasecmp(p, "x-", 2) != 0 ||
		    !name_listed(L, 2, p, f.name_len))
			continue;
		for (i = 0; i < f.name_len; i++)
			name[i] = (char)tolower((unsigned char)p[i]);
		name[f.name_len] = '\0';
		lua_pushcfunction(L, lua_message_set_meta);
		lua_pushvalue(L, 1);
		lua_pushstring(L, name);
		push_unfolded(L, m->data.data + f.value, f.value_len);
		lua_call(L, 3, 0);
	}
	return 0;
}

/* msg:queue_name(): the scheduled queue the message joins ("campaign:tenant@domain"). */
static int
lua_message_queue_name(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	struct buf name;

	buf_init(&name);
	if (message_queue_name(m, &name) < 0) {
		buf_deinit(&name);
		return luaL_error(L, "msg:queue_name: out of memory");
	}
	lua_pushlstring(L, name.data ? name.data : "", name.len);
	buf_deinit(&name);
	return 1;
}

/* msg:dkim_sign(signer): prepend a DKIM-Signature made by signer. */
static int
lua_message_dkim_sign(lua_State *L)
{
	struct message *m = lua_message_check(L, 1);
	struct dkim_signer *s = lua_dkim_check_signer(L, 2);
	struct tern_err err;
	struct buf sig;
	int rc;

	buf_init(&sig);
	rc = dkim_sign(s, m->data.data, m->data.len, util_wallclock(), &sig, &err);
	if (rc == 0)
		rc = message_prepend_raw(m, sig.data, sig.len);
	buf_deinit(&sig);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err.msg);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int
lua_message_owner_gc(lua_State *L)
{
	struct message **box = luaL_checkudata(L, 1, MESSAGE_OWNER_MT);

	message_free(*box);
	*box = NULL;
	return 0;
}

/*
 * tern.message.new(sender, recipient, data): data is the RFC 5322 text with
 * CRLF line endings. The message lives until the Lua state closes: a test
 * makes a handful, and its handle stays valid for the whole test file.
 */
static int
lua_message_new(lua_State *L)
{
	const char *sender = luaL_checkstring(L, 1);
	const char *recipient = luaL_checkstring(L, 2);
	size_t len;
	const char *data = luaL_checklstring(L, 3, &len);
	struct message **box = lua_newuserdata(L, sizeof(*box));

	*box = message_new(sender, recipient);
	luaL_getmetatable(L, MESSAGE_OWNER_MT);
	lua_setmetatable(L, -2);
	if (*box == NULL || buf_append(&(*box)->data, data, len) < 0)
		return luaL_error(L, "tern.message.new: out of memory");
	(*box)->size = len;
	(*box)->created = util_wallclock();
	luaL_ref(L, LUA_REGISTRYINDEX);
	lua_message_push(L, *box);
	return 1;
}

void
lua_message_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"id", lua_message_id},
		{"sender", lua_message_sender},
		{"recipient", lua_message_recipient},
		{"body_size", lua_message_body_size},
		{"get_meta", lua_message_get_meta},
		{"set_meta", lua_message_set_meta},
		{"get_header", lua_message_get_header},
		{"get_headers", lua_message_get_headers},
		{"from_domain", lua_message_from_domain},
		{"set_header", lua_message_set_header},
		{"prepend_header", lua_message_prepend_header},
		{"remove_header", lua_message_remove_header},
		{"import_x_headers", lua_message_import_x_headers},
		{"dkim_sign", lua_message_dkim_sign},
		{"queue_name", lua_message_queue_name},
		{NULL, NULL},
	};

	luaL_newmetatable(L, MESSAGE_MT);
	lua_newtable(L);
	luaL_register(L, NULL, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newmetatable(L, MESSAGE_OWNER_MT);
	lua_pushcfunction(L, lua_message_owner_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_newtable(L);
	lua_pushcfunction(L, lua_message_new);
	lua_setfield(L, -2, "new");
	lua_setfield(L, -2, "message");
}
