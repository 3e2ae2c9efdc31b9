// SPDX-License-Identifier: MIT
/*
 * Fleet mode on Redis: heartbeats and shared admin rules (see fleet.h).
 * Everything here runs on shard 0's thread except the admin observer, which
 * only posts the change there, and the readers of the two atomics.
 */
#include "tern/fleet.h"
#include "tern/admin.h"
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
	struct shard *home;
	struct redis_client *cmd, *sub;
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
		log_warn("fleet", "Redis is unreachable: shared state waits, each node goes on alone");
		return;
	}
	log_info("fleet", "node %s joined the fleet", fleet->cfg.node_id);
	on_heartbeat(fleet->home->loop, &fleet->heartbeat, 0);
	push_local_rules();
	resync();
}

static void
sub_state(void *arg, bool up)
{
	/* Announcements may have been missed while the subscription was down. */
	if (up && redis_client_up(fleet->cmd))
		resync();
}

static void
fleet_stop_on_home(struct shard *s, void *arg)
{
	if (fleet == NULL)
		return;
	admin_set_observer(NULL, NULL);
	ev_timer_stop(s->loop, &fleet->heartbeat);
	redis_client_free(fleet->sub);
	redis_client_free(fleet->cmd);
	fleet->sub = fleet->cmd = NULL;
	atomic_store(&redis_up, false);
}

int
fleet_open(const struct fleet_config *cfg, struct tern_err *err)
{
	struct fleet *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		tern_err_set(err, 0, "", "out of memory");
		return -ENOMEM;
	}
	f->cfg = *cfg;
	f->home = shard_get(0);
	fleet = f;
	f->cmd = redis_client_new(f->home->loop, &cfg->redis, "fleet commands", cmd_state, NULL);
	f->sub = redis_client_new(f->home->loop, &cfg->redis, "fleet channel", sub_state, NULL);
	if (f->cmd == NULL || f->sub == NULL ||
	    redis_client_subscribe(f->sub, CHANNEL_ADMIN, on_admin_message, NULL) < 0) {
		fleet_stop_on_home(f->home, NULL);
		free(f);
		fleet = NULL;
		tern_err_set(err, 0, "", "out of memory");
		return -ENOMEM;
	}
	ev_timer_init(&f->heartbeat, on_heartbeat, FLEET_HEARTBEAT, FLEET_HEARTBEAT);
	ev_timer_start(f->home->loop, &f->heartbeat);
	shard_on_exit(f->home, fleet_stop_on_home, NULL);
	admin_set_observer(admin_changed, NULL);
	return 0;
}

void
fleet_close(void)
{
	if (fleet == NULL)
		return;
	/* The clients belong to shard 0's loop: freed there at its exit, or here if it never ran. */
	if (fleet->cmd != NULL)
		fleet_stop_on_home(fleet->home, NULL);
	free(fleet);
	fleet = NULL;
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
