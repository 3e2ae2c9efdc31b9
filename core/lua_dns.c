// SPDX-License-Identifier: MIT
/*
 * tern.dns: configure the resolvers and look up MX sets from policy. A lookup
 * yields the calling coroutine and resumes it from the resolver's callback;
 * a cached answer returns at once without yielding.
 */
#include "tern/lua_dns.h"
#include "tern/coro.h"
#include "tern/dns.h"
#include "tern/lua_options.h"
#include "tern/lua_ctx.h"
#include "tern/shard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include <lauxlib.h>

/* tern.dns.configure { servers = {...}, timeout = '2s', attempts = 2 } */
static int
lua_dns_configure(lua_State *L)
{
	static const char *const allowed[] = {"servers", "timeout", "attempts", NULL};
	static const char fname[] = "tern.dns.configure";
	struct dns_config cfg = {0};
	struct tern_err err;
	size_t i;

	lua_options_check(L, 1, fname, allowed);
	lua_getfield(L, 1, "servers");
	if (!lua_isnil(L, -1)) {
		luaL_argcheck(L, lua_istable(L, -1), 1,
			      "tern.dns.configure: 'servers' must be a list");
		cfg.n_servers = lua_objlen(L, -1);
		if (cfg.n_servers > DNS_MAX_SERVERS)
			return luaL_error(L, "%s: at most %d servers", fname, DNS_MAX_SERVERS);
		for (i = 0; i < cfg.n_servers; i++) {
			lua_rawgeti(L, -1, (int)i + 1);
			if (lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, "%s: servers must be strings ('ip:port')",
						  fname);
			cfg.servers[i] = lua_tostring(L, -1); /* anchored in the servers table */
			lua_pop(L, 1);
		}
	}
	cfg.timeout = lua_options_duration(L, 1, fname, "timeout", DNS_DEFAULT_TIMEOUT);
	cfg.attempts = (int)lua_options_number(L, 1, fname, "attempts", DNS_DEFAULT_ATTEMPTS);
	if (cfg.timeout <= 0 || cfg.attempts < 1)
		return luaL_error(L, "%s: timeout and attempts must be positive", fname);
	if (dns_configure(&cfg, &err) < 0)
		return luaL_error(L, "%s: %s", fname, err.msg);
	return 0;
}

static void
push_addresses(lua_State *L, const struct dns_mx_host *h)
{
	char buf[INET6_ADDRSTRLEN];
	size_t i;

	lua_createtable(L, (int)h->n_addrs, 0);
	for (i = 0; i < h->n_addrs; i++) {
		const struct sockaddr_storage *ss = &h->addrs[i];
		const void *a = ss->ss_family == AF_INET
				    ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
				    : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

		lua_pushstring(L, inet_ntop(ss->ss_family, a, buf, sizeof(buf)));
		lua_rawseti(L, -2, (int)i + 1);
	}
}

/* The Lua values for a result: the host list, or nil, error, status. */
static int
push_result(lua_State *L, const struct dns_mx_result *res)
{
	size_t i;

	if (res->status != DNS_OK) {
		lua_pushnil(L);
		lua_pushstring(L, res->error);
		lua_pushstring(L, dns_status_name(res->status));
		return 3;
	}
	lua_createtable(L, (int)res->n_hosts, 1);
	for (i = 0; i < res->n_hosts; i++) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, res->hosts[i].name);
		lua_setfield(L, -2, "host");
		lua_pushinteger(L, res->hosts[i].preference);
		lua_setfield(L, -2, "preference");
		push_addresses(L, &res->hosts[i]);
		lua_setfield(L, -2, "addresses");
		lua_rawseti(L, -2, (int)i + 1);
	}
	if (res->implicit) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "implicit");
	}
	return 1;
}

/* A lookup_mx in progress: answered at once (sync) or by waking the coroutine. */
struct mx_lookup {
	struct coro_wait wait;
	struct dns_query *q;
	bool sync;
	struct dns_mx_result *res; /* the synchronous answer, referenced */
};

static void
mx_lookup_done(void *arg, struct dns_mx_result *res)
{
	struct mx_lookup *lk = arg;
	struct coro_wait wait = lk->wait;
	lua_State *co;

	if (lk->sync) {
		dns_mx_result_ref(res);
		lk->res = res;
		return;
	}
	free(lk);
	co = coro_wait_state(&wait);
	if (co)
		coro_wake(&wait, push_result(co, res));
}

static void
mx_lookup_cancel(void *arg)
{
	struct mx_lookup *lk = arg;

	dns_cancel(lk->q);
	free(lk);
}

/* tern.dns.lookup_mx(domain) -> hosts, or nil, error, status. Yields. */
static int
lua_dns_lookup_mx(lua_State *L)
{
	const char *domain = luaL_checkstring(L, 1);
	struct dns_resolver *r = dns_for_shard(lua_ctx_shard(L));
	struct mx_lookup *lk;
	struct coro_wait w;
	int n;

	if (r == NULL) {
		lua_pushnil(L);
		lua_pushliteral(L, "DNS resolver unavailable");
		lua_pushstring(L, dns_status_name(DNS_TEMPFAIL));
		return 3;
	}
	coro_prepare_wait(L, "tern.dns.lookup_mx", &w); /* raises where yielding is not allowed */
	lk = calloc(1, sizeof(*lk));
	if (lk == NULL)
		return luaL_error(L, "tern.dns.lookup_mx: out of memory");
	lk->wait = w;
	lk->sync = true;
	lk->q = dns_resolve_mx(r, domain, mx_lookup_done, lk);
	if (lk->q == NULL) {
		n = push_result(L, lk->res);
		dns_mx_result_unref(lk->res);
		free(lk);
		return n;
	}
	lk->sync = false;
	return coro_yield(L, &lk->wait, 0, mx_lookup_cancel, lk);
}

void
lua_dns_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
	    {"configure", lua_dns_configure}, {"lookup_mx", lua_dns_lookup_mx}, {NULL, NULL}};

	lua_newtable(L);
	luaL_register(L, NULL, fns);
	lua_setfield(L, -2, "dns");
}
