// SPDX-License-Identifier: MIT
/*
 * Tables shared by the fleet through a Redis hash and a channel (see
 * fleet_table.h).
 */
#include "tern/fleet_table.h"
#include "tern/fleet.h"
#include "tern/log.h"
#include "tern/redis.h"
#include "tern/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A local change on its way to shard 0: an item's JSON to store, or a key to delete. */
struct table_change {
	const struct fleet_table *t;
	char key[FLEET_TABLE_KEY_MAX];
	struct buf json; /* empty: removed */
};

static void
ignore_reply(void *arg, const redisReply *reply)
{
}

/* Shard 0's command client when it is up, else NULL. */
static struct redis_client *
home_client(void)
{
	struct redis_client *c = fleet_client(shard_get(0));

	return c != NULL && redis_client_up(c) ? c : NULL;
}

static void
command(struct redis_client *c, redis_reply_fn cb, const struct fleet_table *t, int argc,
	const char **argv)
{
	size_t lens[4];
	int i;

	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	redis_client_command(c, cb, (void *)t, argc, argv, lens);
}

static void
announce(struct redis_client *c, const struct fleet_table *t)
{
	const char *argv[] = {"PUBLISH", t->channel, fleet_node_id()};

	command(c, ignore_reply, t, 3, argv);
}

/* HGETALL's flat [key, json, key, json, ...] into the local table; ended items leave the hash. */
static void
resync_done(void *arg, const redisReply *r)
{
	const struct fleet_table *t = arg;
	struct redis_client *c = home_client();
	struct tern_err err = {0};
	double now = util_wallclock();
	size_t i, n = 0;
	char *items;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY ||
	    (items = calloc(r->elements / 2 + 1, t->item_size)) == NULL)
		return;
	for (i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *v = r->element[i + 1];
		void *item = items + n * t->item_size;
		const char *del[] = {"HDEL", t->hash, r->element[i]->str};

		if (v->type != REDIS_REPLY_STRING || t->from_json(v->str, v->len, item, &err) < 0) {
			log_warn("fleet", "ignoring a malformed %s in %s: %s", t->what, t->hash,
				 err.msg);
			continue;
		}
		if (!t->over(item, now))
			n++;
		else if (c != NULL)
			command(c, ignore_reply, t, 3, del);
	}
	if (t->install(items, n, &err) < 0)
		log_warn("fleet", "cannot install the fleet's %ss: %s", t->what, err.msg);
	free(items);
}

void
fleet_table_resync(const struct fleet_table *t)
{
	struct redis_client *c = home_client();
	const char *argv[] = {"HGETALL", t->hash};

	if (c != NULL)
		command(c, resync_done, t, 2, argv);
}

static void
change_run(void *arg)
{
	struct table_change *ch = arg;
	struct redis_client *c = home_client();

	if (c != NULL) {
		if (ch->json.len > 0) {
			const char *argv[] = {"HSET", ch->t->hash, ch->key, ch->json.data};

			command(c, ignore_reply, ch->t, 4, argv);
		} else {
			const char *argv[] = {"HDEL", ch->t->hash, ch->key};

			command(c, ignore_reply, ch->t, 3, argv);
		}
		announce(c, ch->t);
	}
	buf_deinit(&ch->json);
	free(ch);
}

void
fleet_table_changed(const struct fleet_table *t, const void *added, const char *removed_key)
{
	struct table_change *ch = calloc(1, sizeof(*ch));

	if (ch == NULL)
		return;
	ch->t = t;
	buf_init(&ch->json);
	if (added != NULL) {
		t->key(added, ch->key, sizeof(ch->key));
		t->to_json(added, &ch->json);
	} else {
		snprintf(ch->key, sizeof(ch->key), "%s", removed_key);
	}
	if (shard_post(shard_get(0), change_run, ch) < 0) {
		buf_deinit(&ch->json);
		free(ch);
	}
}

void
fleet_table_joined(const struct fleet_table *t)
{
	struct redis_client *c = home_client();
	char key[FLEET_TABLE_KEY_MAX], *items = NULL;
	const char *argv[] = {"HSETNX", t->hash, key, NULL};
	struct buf json;
	size_t i, n;

	if (c == NULL)
		return;
	n = t->snapshot((void **)&items);
	buf_init(&json);
	for (i = 0; i < n; i++) {
		buf_reset(&json);
		t->key(items + i * t->item_size, key, sizeof(key));
		t->to_json(items + i * t->item_size, &json);
		if ((argv[3] = json.data) != NULL)
			command(c, ignore_reply, t, 4, argv);
	}
	buf_deinit(&json);
	free(items);
	/* Nodes that came back before this one must hear of what it held meanwhile. */
	announce(c, t);
	fleet_table_resync(t);
}

static void
on_message(void *arg, const char *channel, const char *payload, size_t len)
{
	fleet_table_resync(arg);
}

int
fleet_table_subscribe(const struct fleet_table *t, struct redis_client *sub)
{
	return redis_client_subscribe(sub, t->channel, on_message, (void *)t);
}
