// SPDX-License-Identifier: MIT
/*
 * Egress config makers. Each validates eagerly and stamps the table with a
 * metatable, so a hook that returns a hand-made table is caught clearly.
 */
#include "tern/lua_egress.h"
#include "tern/lua_options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#define SOURCE_MT "tern.egress_source"
#define POOL_MT "tern.egress_pool"
#define PATH_MT "tern.egress_path"

static const char *const path_timeouts[] = {"connect_timeout", "banner_timeout", "ehlo_timeout",
					    "mail_timeout",    "rcpt_timeout",   "data_timeout",
					    "idle_timeout",    NULL};
#define PATH_N_TIMEOUTS (TERN_ARRAY_LEN(path_timeouts) - 1)

/* The fields of c named by path_timeouts, in that order. */
static void
path_timeout_fields(struct egress_path_cfg *c, double *out[PATH_N_TIMEOUTS])
{
	double *fields[PATH_N_TIMEOUTS] = {&c->connect_timeout, &c->banner_timeout,
					   &c->ehlo_timeout,    &c->mail_timeout,
					   &c->rcpt_timeout,    &c->data_timeout,
					   &c->idle_timeout};

	memcpy(out, fields, sizeof(fields));
}

static int
parse_source_address(const char *text, struct egress_source_cfg *c)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&c->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->addr;

	memset(&c->addr, 0, sizeof(c->addr));
	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1)
		a4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1)
		a6->sin6_family = AF_INET6;
	else
		return -EINVAL;
	c->has_addr = true;
	snprintf(c->addr_text, sizeof(c->addr_text), "%s", text);
	return 0;
}

static void
stamp(lua_State *L, const char *mt)
{
	lua_settop(L, 1);
	luaL_getmetatable(L, mt);
	lua_setmetatable(L, 1);
}

static bool
has_mt(lua_State *L, int idx, const char *mt)
{
	bool yes;

	if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
		return false;
	luaL_getmetatable(L, mt);
	yes = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return yes;
}

/* ---- sources ---- */

static int
lua_egress_make_source(lua_State *L)
{
	static const char *const opts[] = {"name", "source_address", "ehlo_domain", NULL};
	const char *fname = "tern.make_egress_source";
	struct egress_source_cfg c;
	const char *addr;

	lua_options_check(L, 1, fname, opts);
	if (lua_options_string(L, 1, fname, "name", NULL) == NULL)
		return luaL_error(L, "%s: option 'name' is required", fname);
	addr = lua_options_string(L, 1, fname, "source_address", NULL);
	if (addr && parse_source_address(addr, &c) < 0)
		return luaL_error(L, "%s: source_address '%s' is not an IP address", fname, addr);
	lua_options_string(L, 1, fname, "ehlo_domain", NULL);
	stamp(L, SOURCE_MT);
	return 1;
}

int
lua_egress_read_source(lua_State *L, int idx, struct egress_source_cfg *out, struct tern_err *err)
{
	const char *v;

	memset(out, 0, sizeof(*out));
	if (!has_mt(L, idx, SOURCE_MT)) {
		tern_err_set(err, 451, "4.3.5", "get_egress_source must return tern.make_egress_source{...}");
		return -EINVAL;
	}
	snprintf(out->name, sizeof(out->name), "%s", lua_options_field_string(L, idx, "name"));
	if ((v = lua_options_field_string(L, idx, "source_address")) != NULL)
		parse_source_address(v, out);
	v = lua_options_field_string(L, idx, "ehlo_domain");
	snprintf(out->ehlo, sizeof(out->ehlo), "%s", v ? v : "localhost");
	return 0;
}

/* ---- pools ---- */

static int
lua_egress_make_pool(lua_State *L)
{
	static const char *const opts[] = {"name", "entries", NULL};
	static const char *const entry_opts[] = {"name", "weight", NULL};
	const char *fname = "tern.make_egress_pool";
	size_t i, n;

	lua_options_check(L, 1, fname, opts);
	if (lua_options_string(L, 1, fname, "name", NULL) == NULL)
		return luaL_error(L, "%s: option 'name' is required", fname);
	lua_getfield(L, 1, "entries");
	if (!lua_istable(L, 2) || (n = lua_objlen(L, 2)) == 0)
		return luaL_error(L, "%s: option 'entries' must be a non-empty list", fname);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 2, (int)i);
		if (!lua_istable(L, 3))
			return luaL_error(L, "%s: entries[%d] must be { name = ..., weight = ... }", fname,
					  (int)i);
		lua_options_check(L, 3, "tern.make_egress_pool entry", entry_opts);
		if (lua_options_string(L, 3, fname, "name", NULL) == NULL ||
		    lua_options_number(L, 3, fname, "weight", 1) < 1)
			return luaL_error(L, "%s: entries[%d] needs a name and a weight >= 1", fname,
					  (int)i);
		lua_pop(L, 1);
	}
	stamp(L, POOL_MT);
	return 1;
}

int
lua_egress_read_pool(lua_State *L, int idx, struct egress_pool_cfg *out, struct tern_err *err)
{
	size_t i, n;

	memset(out, 0, sizeof(*out));
	if (!has_mt(L, idx, POOL_MT)) {
		tern_err_set(err, 451, "4.3.5", "get_egress_pool must return tern.make_egress_pool{...}");
		return -EINVAL;
	}
	snprintf(out->name, sizeof(out->name), "%s", lua_options_field_string(L, idx, "name"));
	lua_getfield(L, idx, "entries");
	n = lua_objlen(L, -1);
	out->sources = calloc(n, sizeof(*out->sources));
	out->weights = calloc(n, sizeof(*out->weights));
	if (out->sources == NULL || out->weights == NULL) {
		lua_pop(L, 1);
		egress_pool_cfg_deinit(out);
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		snprintf(out->sources[i], sizeof(out->sources[i]), "%s", lua_options_field_string(L, -1, "name"));
		out->weights[i] = (int)lua_options_field_number(L, lua_gettop(L), "weight", 1);
		lua_pop(L, 1);
	}
	out->n = n;
	lua_pop(L, 1);
	return 0;
}

/* ---- paths ---- */

/*
 * KumoMTA's spellings, so that a path table written for Kumo loads unchanged:
 * its timeout names become tern's, and enable_tls is read in any case
 * ('Opportunistic'). Rewritten in place, before the options are checked.
 */
static void
path_accept_kumo_spellings(lua_State *L, const char *fname)
{
	static const char *const aliases[][2] = {{"mail_from_timeout", "mail_timeout"},
						 {"rcpt_to_timeout", "rcpt_timeout"}};
	size_t i;

	luaL_checktype(L, 1, LUA_TTABLE);
	for (i = 0; i < TERN_ARRAY_LEN(aliases); i++) {
		lua_getfield(L, 1, aliases[i][0]);
		if (!lua_isnil(L, -1)) {
			lua_getfield(L, 1, aliases[i][1]);
			if (!lua_isnil(L, -1))
				luaL_error(L, "%s: '%s' and '%s' are the same option", fname,
					   aliases[i][0], aliases[i][1]);
			lua_pop(L, 1);
			lua_setfield(L, 1, aliases[i][1]);
			lua_pushnil(L);
			lua_setfield(L, 1, aliases[i][0]);
		} else {
			lua_pop(L, 1);
		}
	}
	lua_getfield(L, 1, "enable_tls");
	if (lua_type(L, -1) == LUA_TSTRING) {
		lua_getglobal(L, "string");
		lua_getfield(L, -1, "lower");
		lua_pushvalue(L, -3);
		lua_call(L, 1, 1);
		lua_setfield(L, 1, "enable_tls");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void path_check_automation(lua_State *L, const char *fname);

/*
 * connection_limit: a whole number, or 'local:N' to keep it per node in fleet
 * mode (stored as N with connection_limit_local = true, as rates are).
 */
static void
path_normalise_connection_limit(lua_State *L, const char *fname)
{
	const char *v;
	char *end;
	long n;

	lua_getfield(L, 1, "connection_limit");
	v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if (v == NULL || strncmp(v, "local:", 6) != 0) {
		lua_pop(L, 1);
		if (lua_options_number(L, 1, fname, "connection_limit", 1) < 1)
			luaL_error(L, "%s: connection_limit must be at least 1", fname);
		return;
	}
	n = strtol(v + 6, &end, 10);
	if (!isdigit((unsigned char)v[6]) || n < 1 || n > 100000 || *end != '\0')
		luaL_error(L, "%s: connection_limit must be a number of connections, or 'local:N' "
			      "to keep it per node (got '%s')", fname, v);
	lua_pop(L, 1);
	lua_pushnumber(L, (double)n);
	lua_setfield(L, 1, "connection_limit");
	lua_pushboolean(L, 1);
	lua_setfield(L, 1, "connection_limit_local");
}

static int
lua_egress_make_path(lua_State *L)
{
	static const char *const opts[] = {
		"connection_limit", "max_message_rate", "max_connection_rate",
		"max_deliveries_per_connection", "enable_tls", "smtp_port", "connect_timeout",
		"banner_timeout", "ehlo_timeout", "mail_timeout", "rcpt_timeout", "data_timeout",
		"idle_timeout", "ehlo_domain", "tls_ca_file", "automation", NULL};
	const char *fname = "tern.make_egress_path";
	const char *tls, *ca;
	const char *const *t;
	double port;

	path_accept_kumo_spellings(L, fname);
	lua_options_check(L, 1, fname, opts);
	path_normalise_connection_limit(L, fname);
	if (lua_options_number(L, 1, fname, "max_deliveries_per_connection", 1) < 1)
		return luaL_error(L, "%s: max_deliveries_per_connection must be at least 1", fname);
	port = lua_options_number(L, 1, fname, "smtp_port", 25);
	if (port < 1 || port > 65535)
		return luaL_error(L, "%s: smtp_port must be 1..65535", fname);
	tls = lua_options_string(L, 1, fname, "enable_tls", "opportunistic");
	if (strcmp(tls, "opportunistic") && strcmp(tls, "required") && strcmp(tls, "disabled") &&
	    strcmp(tls, "required_insecure"))
		return luaL_error(L, "%s: enable_tls must be 'opportunistic', 'required', "
				     "'required_insecure' or 'disabled'", fname);
	ca = lua_options_string(L, 1, fname, "tls_ca_file", NULL);
	if (ca && strlen(ca) >= 256)
		return luaL_error(L, "%s: tls_ca_file is longer than 255 bytes", fname);
	if (ca && access(ca, R_OK) < 0)
		return luaL_error(L, "%s: tls_ca_file %s: %s", fname, ca, strerror(errno));
	lua_options_string(L, 1, fname, "ehlo_domain", NULL);
	lua_options_normalise_rate(L, 1, fname, "max_message_rate");
	lua_options_normalise_rate(L, 1, fname, "max_connection_rate");
	for (t = path_timeouts; *t; t++) {
		double v = lua_options_duration(L, 1, fname, *t, -1);

		if (v == -1)
			continue;
		if (v <= 0)
			return luaL_error(L, "%s: option '%s' must be positive", fname, *t);
		lua_pushnumber(L, v);
		lua_setfield(L, 1, *t);
	}
	path_check_automation(L, fname);
	stamp(L, PATH_MT);
	return 1;
}

/* automation: the indexes of tern.shaping_state.rule{} results watching the path. */
static void
path_check_automation(lua_State *L, const char *fname)
{
	size_t i, n;

	lua_getfield(L, 1, "automation");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
	if (!lua_istable(L, -1) || n > EGRESS_AUTOMATION_MAX)
		luaL_error(L, "%s: automation must be a list of at most %d rule indexes", fname,
			   EGRESS_AUTOMATION_MAX);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (int)i);
		if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0 ||
		    lua_tonumber(L, -1) > UINT16_MAX)
			luaL_error(L, "%s: automation[%d] must be a rule index from "
				      "tern.shaping_state.rule", fname, (int)i);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void
path_read_automation(lua_State *L, int idx, struct egress_path_cfg *out)
{
	size_t i;

	lua_getfield(L, idx, "automation");
	out->n_automation = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
	for (i = 0; i < out->n_automation; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		out->automation[i] = (uint16_t)lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

int
lua_egress_read_path(lua_State *L, int idx, struct egress_path_cfg *out, struct tern_err *err)
{
	double *timeouts[PATH_N_TIMEOUTS];
	const char *tls, *ehlo, *ca;
	size_t i;

	egress_path_defaults(out);
	path_timeout_fields(out, timeouts);
	if (!has_mt(L, idx, PATH_MT)) {
		tern_err_set(err, 451, "4.3.5", "get_egress_path_config must return tern.make_egress_path{...}");
		return -EINVAL;
	}
	out->connection_limit = (int)lua_options_field_number(L, idx, "connection_limit", out->connection_limit);
	out->max_message_rate = lua_options_field_number(L, idx, "max_message_rate", 0);
	lua_getfield(L, idx, "max_message_rate_local");
	out->max_message_rate_local = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, idx, "connection_limit_local");
	out->connection_limit_local = lua_toboolean(L, -1);
	lua_pop(L, 1);
	out->max_connection_rate = lua_options_field_number(L, idx, "max_connection_rate", 0);
	lua_getfield(L, idx, "max_connection_rate_local");
	out->max_connection_rate_local = lua_toboolean(L, -1);
	lua_pop(L, 1);
	out->max_deliveries_per_connection = (int)lua_options_field_number(
		L, idx, "max_deliveries_per_connection", out->max_deliveries_per_connection);
	out->smtp_port = (int)lua_options_field_number(L, idx, "smtp_port", out->smtp_port);
	for (i = 0; i < PATH_N_TIMEOUTS; i++)
		*timeouts[i] = lua_options_field_number(L, idx, path_timeouts[i], *timeouts[i]);
	tls = lua_options_field_string(L, idx, "enable_tls");
	if (tls && strcmp(tls, "required") == 0)
		out->tls = SMTP_TLS_REQUIRED;
	else if (tls && strcmp(tls, "disabled") == 0)
		out->tls = SMTP_TLS_DISABLED;
	else if (tls && strcmp(tls, "required_insecure") == 0)
		out->tls = SMTP_TLS_REQUIRED_INSECURE;
	ca = lua_options_field_string(L, idx, "tls_ca_file");
	snprintf(out->tls_ca_file, sizeof(out->tls_ca_file), "%s", ca ? ca : "");
	ehlo = lua_options_field_string(L, idx, "ehlo_domain");
	snprintf(out->ehlo, sizeof(out->ehlo), "%s", ehlo ? ehlo : "");
	path_read_automation(L, idx, out);
	return 0;
}

static const char *
tls_mode_name(enum smtp_tls_mode m)
{
	switch (m) {
	case SMTP_TLS_REQUIRED: return "required";
	case SMTP_TLS_DISABLED: return "disabled";
	case SMTP_TLS_REQUIRED_INSECURE: return "required_insecure";
	default: return "opportunistic";
	}
}

/*
 * tern.egress_path_defaults() -> the values a path has where policy leaves a
 * field out (rates per second, 0 = unlimited; durations in seconds), so that
 * tools such as `tern policy explain` show the engine's own defaults.
 */
static int
lua_egress_path_defaults(lua_State *L)
{
	struct egress_path_cfg c;
	double *timeouts[PATH_N_TIMEOUTS];
	size_t i;

	egress_path_defaults(&c);
	path_timeout_fields(&c, timeouts);
	lua_createtable(L, 0, 14);
	lua_pushinteger(L, c.connection_limit);
	lua_setfield(L, -2, "connection_limit");
	lua_pushnumber(L, c.max_message_rate);
	lua_setfield(L, -2, "max_message_rate");
	lua_pushnumber(L, c.max_connection_rate);
	lua_setfield(L, -2, "max_connection_rate");
	lua_pushinteger(L, c.max_deliveries_per_connection);
	lua_setfield(L, -2, "max_deliveries_per_connection");
	lua_pushstring(L, tls_mode_name(c.tls));
	lua_setfield(L, -2, "enable_tls");
	lua_pushinteger(L, c.smtp_port);
	lua_setfield(L, -2, "smtp_port");
	for (i = 0; i < PATH_N_TIMEOUTS; i++) {
		lua_pushnumber(L, *timeouts[i]);
		lua_setfield(L, -2, path_timeouts[i]);
	}
	return 1;
}

void
lua_egress_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{"egress_path_defaults", lua_egress_path_defaults},
		{"make_egress_source", lua_egress_make_source},
		{"make_egress_pool", lua_egress_make_pool},
		{"make_egress_path", lua_egress_make_path},
		{NULL, NULL},
	};

	luaL_newmetatable(L, SOURCE_MT);
	luaL_newmetatable(L, POOL_MT);
	luaL_newmetatable(L, PATH_MT);
	lua_pop(L, 3);
	luaL_register(L, NULL, fns);
}
