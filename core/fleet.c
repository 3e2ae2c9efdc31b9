// SPDX-License-Identifier: MIT
/*
 * Fleet mode on Redis: heartbeats and shared admin rules (see fleet.h).
 * Everything here runs on shard 0's thread except the admin observer, which
 * only posts the change there, and the readers of the two atomics.
 */
#include "tern/fleet.h"
#include "tern/admin.h"
#include "tern/fleet_shaping.h"
#include "tern/fleet_suppress.h"
#include "tern/fleet_table.h"
#include "tern/log.h"
#include "tern/shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_NODES "tern:nodes"

struct fleet {
	struct fleet_config cfg;
	struct shard *home;	/* shard 0: heartbeats, admin rules, the subscription */
	struct redis_client *cmd; /* the home shard's command client: clients[0] */
	struct redis_client *sub;
	struct redis_client **clients; /* one per shard, on its loop, for its shared limits */
	int n_clients;
	ev_timer heartbeat;
};

static struct fleet *fleet;
static atomic_bool redis_up;
static atomic_int nodes_alive = 1;

static void
ignore_reply(void *arg, const redisReply *reply)
{
}

static void
command(redis_reply_fn cb, void *arg, int argc, const char **argv)
{
	size_t lens[8];
	int i;

	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	redis_client_command(fleet->cmd, cb, arg, argc, argv, lens);
}

/* ---- shared admin rules --------------------------------------------------------------------- */

static void
admin_key(const void *item, char *out, size_t size)
{
	snprintf(out, size, "%s", ((const struct admin_rule *)item)->id);
}

static void
admin_to_json(const void *item, struct buf *out)
{
	admin_rule_json(item, out);
}

static int
admin_from_json(const char *text, size_t len, void *item, struct tern_err *err)
{
	return admin_rule_from_json(text, len, item, err);
}

static bool
admin_over(const void *item, double now)
{
	return ((const struct admin_rule *)item)->expires <= now;
}

static int
admin_install(const void *items, size_t n, struct tern_err *err)
{
	return admin_replace(items, n, err);
}

static size_t
admin_items(void **out)
{
	struct admin_rule *rules = NULL;
	size_t n = admin_snapshot(&rules);

	*out = rules;
	return n;
}

static const struct fleet_table admin_table = {
	.hash = "tern:admin:rules",
	.channel = "tern:admin",
	.what = "admin rule",
	.item_size = sizeof(struct admin_rule),
	.key = admin_key,
	.to_json = admin_to_json,
	.from_json = admin_from_json,
	.over = admin_over,
	.install = admin_install,
	.snapshot = admin_items,
};

static void
admin_changed(void *arg, const struct admin_rule *added, const char *removed_id)
{
	fleet_table_changed(&admin_table, added, removed_id);
}

/* ---- heartbeats ----------------------------------------------------------------------------- */

static void
count_done(void *arg, const redisReply *r)
{
	if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		atomic_store(&nodes_alive, r->integer > 0 ? (int)r->integer : 1);
}

static void
on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
	char now[32], gone[32];
	const char *add[] = {"ZADD", KEY_NODES, now, fleet->cfg.node_id};
	const char *trim[] = {"ZREMRANGEBYSCORE", KEY_NODES, "-inf", gone};
	const char *count[] = {"ZCARD", KEY_NODES};
	double wall = util_wallclock();

	if (!redis_client_up(fleet->cmd))
		return;
	snprintf(now, sizeof(now), "%.3f", wall);
	snprintf(gone, sizeof(gone), "(%.3f", wall - FLEET_NODE_TTL);
	command(ignore_reply, NULL, 4, add);
	command(ignore_reply, NULL, 4, trim);
	command(count_done, NULL, 2, count);
}

/* ---- connection state ----------------------------------------------------------------------- */

static void
cmd_state(void *arg, bool up)
{
	atomic_store(&redis_up, up);
	if (!up) {
		log_warn("fleet", "Redis is unreachable: shared state waits, each node goes on alone "
			 "with 1/%d of the shared rates and connection limits", fleet_nodes());
		return;
	}
	log_info("fleet", "node %s joined the fleet", fleet->cfg.node_id);
	on_heartbeat(fleet->home->loop, &fleet->heartbeat, 0);
	fleet_table_joined(&admin_table);
	fleet_table_joined(&fleet_shaping_table);
	fleet_suppress_joined();
}

static void
sub_state(void *arg, bool up)
{
	/* Announcements may have been missed while the subscription was down. */
	if (up) {
		fleet_table_resync(&admin_table);
		fleet_table_resync(&fleet_shaping_table);
	}
}

/* A shard's clients go on its own thread, at its exit (or at close if it never ran). */
static void
fleet_stop_on_shard(struct shard *s, void *arg)
{
	if (fleet == NULL || fleet->clients[s->id] == NULL)
		return;
	if (s == fleet->home) {
		admin_set_observer(NULL, NULL);
		fleet_shaping_stop();
		fleet_suppress_stop();
		ev_timer_stop(s->loop, &fleet->heartbeat);
		redis_client_free(fleet->sub);
		fleet->sub = fleet->cmd = NULL;
		atomic_store(&redis_up, false);
	}
	redis_client_free(fleet->clients[s->id]);
	fleet->clients[s->id] = NULL;
}

static void
fleet_free(void)
{
	int i;

	for (i = 0; i < fleet->n_clients; i++)
		fleet_stop_on_shard(shard_get(i), NULL);
	free(fleet->clients);
	free(fleet);
	fleet = NULL;
}

static int
fleet_connect(struct fleet *f)
{
	char name[32];
	int i;

	for (i = 0; i < f->n_clients; i++) {
		snprintf(name, sizeof(name), "fleet shard %d", i);
		f->clients[i] = redis_client_new(shard_get(i)->loop, &f->cfg.redis, name,
						 i == 0 ? cmd_state : NULL, NULL);
		if (f->clients[i] == NULL)
			return -ENOMEM;
		shard_on_exit(shard_get(i), fleet_stop_on_shard, NULL);
	}
	f->cmd = f->clients[0];
	f->sub = redis_client_new(f->home->loop, &f->cfg.redis, "fleet channel", sub_state, NULL);
	if (f->sub == NULL || fleet_table_subscribe(&admin_table, f->sub) < 0 ||
	    fleet_table_subscribe(&fleet_shaping_table, f->sub) < 0)
		return -ENOMEM;
	return 0;
}

int
fleet_open(const struct fleet_config *cfg, struct tern_err *err)
{
	struct fleet *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->clients = calloc((size_t)shard_count(), sizeof(*f->clients))) == NULL) {
		free(f);
		tern_err_set(err, 0, "", "out of memory");
		return -ENOMEM;
	}
	f->cfg = *cfg;
	f->home = shard_get(0);
	f->n_clients = shard_count();
	fleet = f;
	if (fleet_connect(f) < 0) {
		fleet_free();
		tern_err_set(err, 0, "", "out of memory");
		return -ENOMEM;
	}
	ev_timer_init(&f->heartbeat, on_heartbeat, FLEET_HEARTBEAT, FLEET_HEARTBEAT);
	ev_timer_start(f->home->loop, &f->heartbeat);
	admin_set_observer(admin_changed, NULL);
	fleet_shaping_start();
	fleet_suppress_start();
	return 0;
}

void
fleet_close(void)
{
	if (fleet != NULL)
		fleet_free();
}

struct redis_client *
fleet_client(struct shard *s)
{
	return fleet != NULL && s != NULL && s->id < fleet->n_clients ? fleet->clients[s->id] : NULL;
}

bool
fleet_configured(void)
{
	return fleet != NULL;
}

bool
fleet_redis_up(void)
{
	return atomic_load(&redis_up);
}

int
fleet_nodes(void)
{
	if (fleet != NULL && fleet->cfg.fallback_nodes > 0)
		return fleet->cfg.fallback_nodes;
	return atomic_load(&nodes_alive);
}

const char *
fleet_node_id(void)
{
	return fleet != NULL ? fleet->cfg.node_id : "";
}

double
fleet_lease_time(void)
{
	return fleet != NULL && fleet->cfg.lease_time > 0 ? fleet->cfg.lease_time
							   : FLEET_LEASE_TIME;
}
