// SPDX-License-Identifier: MIT
/*
 * tern.configure_redis{ servers, cluster, timeout, password, tls, node_id, fallback_nodes,
 * lease_time }
 * in init: reads the options into a fleet_config and registers the fleet as
 * a service of the daemon, opened with the spool and fixed while running.
 */
#include "tern/lua_fleet.h"
#include "tern/daemon.h"
#include "tern/fleet.h"
#include "tern/lua_options.h"

#include <lauxlib.h>
#include <string.h>
#include <unistd.h>

static int
fleet_service_open(void *cfg, struct tern_err *err)
{
	return fleet_open(cfg, err);
}

static void
fleet_service_close(void *cfg)
{
	fleet_close();
}

static void
fleet_service_free(void *cfg)
{
	free(cfg);
}

static bool
fleet_service_same(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct fleet_config)) == 0;
}

static void
read_servers(lua_State *L, const char *fname, struct fleet_config *cfg)
{
	struct redis_config *r = &cfg->redis;
	char host[64];
	struct tern_err err;
	size_t i, n;
	int port;

	lua_getfield(L, 1, "servers");
	if (!lua_istable(L, -1) || (n = lua_objlen(L, -1)) == 0)
		luaL_error(L, "%s: option 'servers' must be a list of 'IP:port'", fname);
	if (n > REDIS_MAX_SERVERS)
		luaL_error(L, "%s: option 'servers': at most %d servers", fname, REDIS_MAX_SERVERS);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		if (!lua_isstring(L, -1) || lua_objlen(L, -1) >= sizeof(r->servers[0]))
			luaL_error(L, "%s: servers[%d] must be 'IP:port'", fname, (int)i + 1);
		if (redis_parse_server(lua_tostring(L, -1), host, sizeof(host), &port, &err) < 0)
			luaL_error(L, "%s: servers[%d]: %s", fname, (int)i + 1, err.msg);
		strcpy(r->servers[r->n_servers++], lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void
read_node_id(lua_State *L, const char *fname, struct fleet_config *cfg)
{
	const char *id = lua_options_string(L, 1, fname, "node_id", NULL);

	if (id == NULL) {
		if (gethostname(cfg->node_id, sizeof(cfg->node_id) - 1) < 0)
			strcpy(cfg->node_id, "localhost");
		return;
	}
	if (*id == '\0' || strlen(id) >= sizeof(cfg->node_id))
		luaL_error(L, "%s: option 'node_id' must be 1 to %d bytes", fname,
			   (int)sizeof(cfg->node_id) - 1);
	strcpy(cfg->node_id, id);
}

static int
lua_fleet_configure_redis(lua_State *L)
{
	static const char *const opts[] = {"servers", "cluster", "timeout", "password", "tls",
					   "node_id", "fallback_nodes", "lease_time", NULL};
	const char *fname = "tern.configure_redis";
	struct daemon_service ds = {.name = "redis fleet",
				    .rank = DAEMON_RANK_STORAGE,
				    .open = fleet_service_open,
				    .close = fleet_service_close,
				    .free = fleet_service_free,
				    .same = fleet_service_same};
	struct fleet_config cfg = {0}, *copy;
	const char *password;
	double fallback;
	struct tern_err err;

	lua_options_check(L, 1, fname, opts);
	if (lua_options_bool(L, 1, fname, "cluster", false))
		return luaL_error(L, "%s: cluster = true is not supported: hiredis 0.14 (Debian's) "
				  "has no cluster client; list the servers for failover instead", fname);
	if (lua_options_bool(L, 1, fname, "tls", false))
		return luaL_error(L, "%s: tls = true is not supported: hiredis 0.14 (Debian's) has "
				  "no TLS; reach Redis on loopback or through a TLS tunnel", fname);
	read_servers(L, fname, &cfg);
	cfg.redis.timeout = lua_options_duration(L, 1, fname, "timeout", 0.5);
	if (cfg.redis.timeout <= 0)
		return luaL_error(L, "%s: option 'timeout' must be positive", fname);
	password = lua_options_string(L, 1, fname, "password", "");
	if (strlen(password) >= sizeof(cfg.redis.password))
		return luaL_error(L, "%s: option 'password' is too long", fname);
	strcpy(cfg.redis.password, password);
	read_node_id(L, fname, &cfg);
	fallback = lua_options_number(L, 1, fname, "fallback_nodes", 0);
	if (fallback < 0 || fallback > 10000 || fallback != (int)fallback)
		return luaL_error(L, "%s: option 'fallback_nodes' must be a whole number of nodes",
				  fname);
	cfg.fallback_nodes = (int)fallback;
	cfg.lease_time = lua_options_duration(L, 1, fname, "lease_time", FLEET_LEASE_TIME);
	if (cfg.lease_time < 0.3)
		return luaL_error(L, "%s: option 'lease_time' must be at least 300ms", fname);
	copy = malloc(sizeof(*copy));
	if (copy == NULL)
		return luaL_error(L, "%s: out of memory", fname);
	*copy = cfg;
	ds.cfg = copy;
	if (daemon_add_service(&ds, &err) < 0) {
		free(copy);
		return luaL_error(L, "%s: %s", fname, err.msg);
	}
	return 0;
}

void
lua_fleet_open(lua_State *L)
{
	lua_pushcfunction(L, lua_fleet_configure_redis);
	lua_setfield(L, -2, "configure_redis");
}
