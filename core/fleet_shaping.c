// SPDX-License-Identifier: MIT
/*
 * Shaping automation's path states shared by the fleet (see fleet_shaping.h).
 */
#include "tern/fleet_shaping.h"
#include "tern/fleet.h"
#include "tern/log.h"
#include "tern/path_state.h"
#include "tern/redis.h"
#include "tern/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_STATES "tern:shaping:states"
#define CHANNEL_SHAPING "tern:shaping"

/* A local change on its way to shard 0: a state's JSON to store, or a key to delete. */
struct shaping_change {
	char key[PATH_STATE_KEY_LEN];
	struct buf json; /* empty: removed */
};

static void
ignore_reply(void *arg, const redisReply *reply)
{
}

/* On shard 0: its command client when up, else NULL. */
static struct redis_client *
home_client(void)
{
	struct redis_client *c = fleet_client(shard_get(0));

	return c != NULL && redis_client_up(c) ? c : NULL;
}

static void
command(struct redis_client *c, redis_reply_fn cb, int argc, const char **argv)
{
	size_t lens[4];
	int i;

	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	redis_client_command(c, cb, NULL, argc, argv, lens);
}

/* HGETALL's flat [key, json, ...] into the table; recovered states leave the hash. */
static void
resync_done(void *arg, const redisReply *r)
{
	struct redis_client *c = home_client();
	struct path_state *states;
	struct tern_err err = {0};
	double now = util_wallclock();
	size_t i, n = 0;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY ||
	    (states = calloc(r->elements / 2 + 1, sizeof(*states))) == NULL)
		return;
	for (i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *v = r->element[i + 1];
		const char *del[] = {"HDEL", KEY_STATES, r->element[i]->str};

		if (v->type != REDIS_REPLY_STRING ||
		    path_state_from_json(v->str, v->len, &states[n], &err) < 0) {
			log_warn("fleet", "ignoring a malformed path state in %s: %s", KEY_STATES,
				 err.msg);
			continue;
		}
		if (states[n].until + states[n].recovery <= now) {
			if (c != NULL)
				command(c, ignore_reply, 3, del);
		} else {
			n++;
		}
	}
	if (path_state_replace(states, n, &err) < 0)
		log_warn("fleet", "cannot install the fleet's path states: %s", err.msg);
	free(states);
}

void
fleet_shaping_resync(void)
{
	struct redis_client *c = home_client();
	const char *argv[] = {"HGETALL", KEY_STATES};

	if (c != NULL)
		command(c, resync_done, 2, argv);
}

static void
announce(struct redis_client *c)
{
	const char *argv[] = {"PUBLISH", CHANNEL_SHAPING, fleet_node_id()};

	command(c, ignore_reply, 3, argv);
}

static void
change_run(void *arg)
{
	struct shaping_change *ch = arg;
	struct redis_client *c = home_client();

	if (c != NULL) {
		if (ch->json.len > 0) {
			const char *argv[] = {"HSET", KEY_STATES, ch->key, ch->json.data};

			command(c, ignore_reply, 4, argv);
		} else {
			const char *argv[] = {"HDEL", KEY_STATES, ch->key};

			command(c, ignore_reply, 3, argv);
		}
		announce(c);
	}
	buf_deinit(&ch->json);
	free(ch);
}

static void
changed(void *arg, const struct path_state *added, const struct path_state *removed)
{
	struct shaping_change *ch = calloc(1, sizeof(*ch));

	if (ch == NULL)
		return;
	buf_init(&ch->json);
	path_state_key(added ? added : removed, ch->key, sizeof(ch->key));
	if (added != NULL)
		path_state_json(added, &ch->json);
	if (shard_post(shard_get(0), change_run, ch) < 0) {
		buf_deinit(&ch->json);
		free(ch);
	}
}

void
fleet_shaping_joined(void)
{
	struct redis_client *c = home_client();
	struct path_state *states = NULL;
	size_t i, n;
	char key[PATH_STATE_KEY_LEN];
	struct buf json;

	if (c == NULL)
		return;
	n = path_state_snapshot(&states);
	buf_init(&json);
	for (i = 0; i < n; i++) {
		const char *argv[] = {"HSETNX", KEY_STATES, key, NULL};

		buf_reset(&json);
		path_state_key(&states[i], key, sizeof(key));
		path_state_json(&states[i], &json);
		argv[3] = json.data;
		if (argv[3] != NULL)
			command(c, ignore_reply, 4, argv);
	}
	buf_deinit(&json);
	free(states);
	announce(c);
	fleet_shaping_resync();
}

static void
on_message(void *arg, const char *channel, const char *payload, size_t len)
{
	fleet_shaping_resync();
}

int
fleet_shaping_start(struct redis_client *sub)
{
	int rc = redis_client_subscribe(sub, CHANNEL_SHAPING, on_message, NULL);

	if (rc == 0)
		path_state_set_observer(changed, NULL);
	return rc;
}

void
fleet_shaping_stop(void)
{
	path_state_set_observer(NULL, NULL);
}
