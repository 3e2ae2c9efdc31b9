// SPDX-License-Identifier: MIT
/*
 * Fleet mode on Redis: heartbeats and shared admin rules (see fleet.h).
 * Everything here runs on shard 0's thread except the admin observer, which
 * only posts the change there, and the readers of the two atomics.
 */
#include "tern/fleet.h"
#include "tern/admin.h"
#include "tern/fleet_shaping.h"
#include "tern/log.h"
#include "tern/shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_NODES "tern:nodes"
#define KEY_ADMIN "tern:admin:rules"
#define CHANNEL_ADMIN "tern:admin"

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

/* A local admin change on its way to shard 0: a rule's JSON to store, or an id to delete. */
struct admin_change {
	char id[ADMIN_ID_LEN + 1];
	struct buf json; /* empty: removed */
};

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

/* HGETALL's flat [id, json, id, json, ...] into the table; expired rules leave the hash. */
static void
resync_done(void *arg, const redisReply *r)
{
	struct admin_rule *rules;
	struct tern_err err = {0};
	double now = util_wallclock();
	size_t i, n = 0;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return;
	rules = calloc(r->elements / 2 + 1, sizeof(*rules));
	if (rules == NULL)
		return;
	for (i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *v = r->element[i + 1];
		const char *del[] = {"HDEL", KEY_ADMIN, r->element[i]->str};

		if (v->type != REDIS_REPLY_STRING ||
		    admin_rule_from_json(v->str, v->len, &rules[n], &err) < 0) {
			log_warn("fleet", "ignoring a malformed admin rule in %s: %s", KEY_ADMIN,
				 err.msg);
			continue;
		}
		if (rules[n].expires <= now)
			command(ignore_reply, NULL, 3, del);
		else
			n++;
	}
	if (admin_replace(rules, n, &err) < 0)
		log_warn("fleet", "cannot install the fleet's admin rules: %s", err.msg);
	free(rules);
}

static void
resync(void)
{
	const char *argv[] = {"HGETALL", KEY_ADMIN};

	command(resync_done, NULL, 2, argv);
}

static void
announce(void)
{
	const char *argv[] = {"PUBLISH", CHANNEL_ADMIN, fleet->cfg.node_id};

	command(ignore_reply, NULL, 3, argv);
}

static void
admin_change_run(void *arg)
{
	struct admin_change *ch = arg;

	if (fleet != NULL && redis_client_up(fleet->cmd)) {
		if (ch->json.len > 0) {
			const char *argv[] = {"HSET", KEY_ADMIN, ch->id, ch->json.data};

			command(ignore_reply, NULL, 4, argv);
		} else {
			const char *argv[] = {"HDEL", KEY_ADMIN, ch->id};

			command(ignore_reply, NULL, 3, argv);
		}
		announce();
	}
	buf_deinit(&ch->json);
	free(ch);
}

static void
admin_changed(void *arg, const struct admin_rule *added, const char *removed_id)
{
	struct admin_change *ch = calloc(1, sizeof(*ch));

	if (ch == NULL)
		return;
	buf_init(&ch->json);
	snprintf(ch->id, sizeof(ch->id), "%s", added ? added->id : removed_id);
	if (added != NULL)
		admin_rule_json(added, &ch->json);
	if (shard_post(fleet->home, admin_change_run, ch) < 0) {
		buf_deinit(&ch->json);
		free(ch);
	}
}

/* After a reconnect: what this node holds joins the fleet's rules, then the fleet's come back. */
static void
push_local_rules(void)
{
	struct admin_rule *rules = NULL;
	size_t i, n = admin_snapshot(&rules);
	struct buf json;

	buf_init(&json);
	for (i = 0; i < n; i++) {
		const char *argv[4] = {"HSETNX", KEY_ADMIN, rules[i].id, NULL};

		buf_reset(&json);
		admin_rule_json(&rules[i], &json);
		argv[3] = json.data;
		command(ignore_reply, NULL, 4, argv);
	}
	buf_deinit(&json);
	free(rules);
}

static void
on_admin_message(void *arg, const char *channel, const char *payload, size_t len)
{
	if (redis_client_up(fleet->cmd))
		resync();
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
	/* Nodes that came back before this one must hear of what it held meanwhile. */
	push_local_rules();
	announce();
	resync();
	fleet_shaping_joined();
}

static void
sub_state(void *arg, bool up)
{
	/* Announcements may have been missed while the subscription was down. */
	if (up && redis_client_up(fleet->cmd)) {
		resync();
		fleet_shaping_resync();
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
	if (f->sub == NULL || redis_client_subscribe(f->sub, CHANNEL_ADMIN, on_admin_message, NULL) < 0 ||
	    fleet_shaping_start(f->sub) < 0)
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
