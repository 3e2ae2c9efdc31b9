// SPDX-License-Identifier: MIT
/*
 * Fleet-wide connection limits: leases with expiry in a Redis sorted set
 * (see fleet_lease.h). Both scripts score leases by Redis's own clock, so
 * the nodes' clocks never matter.
 */
#include "tern/fleet_lease.h"
#include "tern/fleet.h"
#include "tern/log.h"
#include "tern/redis.h"
#include "tern/shard.h"
#include "tern/util.h"

#include <ev.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DENIED_POLL 0.2	 /* the fleet is at its limit: ask again this soon (a close wakes sooner) */
#define FAILED_POLL 0.1	 /* the script failed: ask again this soon */
#define ASK_POLL 0.005	 /* while a request is on its way, look again this soon */
#define ALONE_POLL 1.0	 /* Redis away and at this node's share: look again (Redis may be back) */

/* KEYS[1]: the leases; ARGV: limit, member, lease ms. -> 1 granted, 0 the fleet is at its limit */
static const char acquire_script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end\n"
	"redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])\n"
	"redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
	"return 1\n";

/*
 * KEYS[1]: the leases; ARGV: lease ms, members. A lease Redis lost (a
 * restart, an outage) comes back: its connection is open whatever the count.
 */
static const char renew_script[] =
	"local t = redis.call('TIME')\n"
	"local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])\n"
	"for i = 2, #ARGV do redis.call('ZADD', KEYS[1], exp, ARGV[i]) end\n"
	"redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
	"return #ARGV - 1\n";

struct fleet_conns {
	char key[640];
	uint64_t next_id;
	uint64_t *held; /* the leases of open connections, and the spare */
	size_t n_held, cap;
	uint64_t spare;	 /* granted, no connection yet (0: none) */
	double spare_at; /* when it was granted */
	double retry_at; /* Redis said no before then */
	bool asking;	 /* an acquire is in flight: it holds this */
	bool released;
	struct ev_loop *loop;
	ev_timer renew;
};

int
fleet_conns_alone(int limit, int nodes)
{
	int n = nodes > 0 ? limit / nodes : limit;

	return n < 1 ? 1 : n;
}

static void
member(uint64_t id, char *out, size_t size)
{
	snprintf(out, size, "%s:%llx", fleet_node_id(), (unsigned long long)id);
}

static void
ignore_reply(void *arg, const redisReply *reply)
{
}

/*
 * A spare nobody took for a third of the lease time (the queue emptied
 * while it was on its way) goes back, lest it hold a connection of the
 * fleet forever.
 */
static void
renew_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct fleet_conns *fc = t->data;
	struct redis_client *c = fleet_client(shard_self());
	char lease_ms[32], (*names)[160];
	const char **argv;
	size_t *lens, i, argc;

	if (fc->spare != 0 && util_now() - fc->spare_at >= fleet_lease_time() / 3) {
		fleet_conns_drop(fc, fc->spare);
		fc->spare = 0;
	}
	argc = 5 + fc->n_held;
	if (c == NULL || !redis_client_up(c) || fc->n_held == 0)
		return;
	names = calloc(fc->n_held, sizeof(*names));
	argv = calloc(argc, sizeof(*argv));
	lens = calloc(argc, sizeof(*lens));
	if (names != NULL && argv != NULL && lens != NULL) {
		snprintf(lease_ms, sizeof(lease_ms), "%.0f", fleet_lease_time() * 1000);
		argv[0] = "EVAL", argv[1] = renew_script, argv[2] = "1", argv[3] = fc->key;
		argv[4] = lease_ms;
		for (i = 0; i < fc->n_held; i++) {
			member(fc->held[i], names[i], sizeof(names[i]));
			argv[5 + i] = names[i];
		}
		for (i = 0; i < argc; i++)
			lens[i] = strlen(argv[i]);
		redis_client_command(c, ignore_reply, NULL, (int)argc, argv, lens);
	}
	free(names);
	free(argv);
	free(lens);
}

struct fleet_conns *
fleet_conns_new(const char *name)
{
	struct fleet_conns *fc = calloc(1, sizeof(*fc));

	if (fc == NULL)
		return NULL;
	snprintf(fc->key, sizeof(fc->key), "tern:conn:%s", name);
	fc->loop = shard_self()->loop;
	ev_timer_init(&fc->renew, renew_cb, fleet_lease_time() / 3, fleet_lease_time() / 3);
	fc->renew.data = fc;
	ev_timer_start(fc->loop, &fc->renew);
	return fc;
}

static void
hold(struct fleet_conns *fc, uint64_t id)
{
	uint64_t *more;

	if (fc->n_held == fc->cap) {
		more = realloc(fc->held, (fc->cap * 2 + 8) * sizeof(*more));
		if (more == NULL)
			return; /* unrecorded: its lease lapses while the connection is open */
		fc->held = more;
		fc->cap = fc->cap * 2 + 8;
	}
	fc->held[fc->n_held++] = id;
}

void
fleet_conns_release(struct fleet_conns *fc)
{
	if (fc == NULL)
		return;
	ev_timer_stop(fc->loop, &fc->renew);
	free(fc->held);
	fc->held = NULL;
	fc->n_held = 0;
	fc->released = true;
	if (!fc->asking)
		free(fc);
}

static void
granted(void *arg, const redisReply *reply)
{
	struct fleet_conns *fc = arg;

	fc->asking = false;
	if (fc->released) {
		free(fc);
		return;
	}
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
		hold(fc, fc->spare = fc->next_id);
		fc->spare_at = util_now();
		return;
	}
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		log_warn("fleet", "%s: the lease script failed: %s", fc->key, reply->str);
	fc->retry_at = util_now() + (reply != NULL && reply->type == REDIS_REPLY_INTEGER ?
				     DENIED_POLL : FAILED_POLL);
}

static void
ask(struct fleet_conns *fc, struct redis_client *c, int limit)
{
	char lim[16], name[160], lease_ms[32];
	const char *argv[] = {"EVAL", acquire_script, "1", fc->key, lim, name, lease_ms};
	size_t lens[7];
	int i;

	snprintf(lim, sizeof(lim), "%d", limit);
	member(++fc->next_id, name, sizeof(name));
	snprintf(lease_ms, sizeof(lease_ms), "%.0f", fleet_lease_time() * 1000);
	for (i = 0; i < 7; i++)
		lens[i] = strlen(argv[i]);
	if (redis_client_command(c, granted, fc, 7, argv, lens) == 0)
		fc->asking = true;
}

/* Redis away: this node's share of the limit, by the fleet's last node count. */
static double
take_alone(struct fleet_conns *fc, int limit, int open, uint64_t *lease)
{
	if (open >= fleet_conns_alone(limit, fleet_nodes()))
		return ALONE_POLL;
	*lease = ++fc->next_id;
	hold(fc, *lease);
	return 0;
}

double
fleet_conns_take(struct fleet_conns *fc, int limit, int open, uint64_t *lease)
{
	struct redis_client *c = fleet_client(shard_self());
	double now = util_now();

	*lease = 0;
	if (fc->spare != 0) {
		*lease = fc->spare;
		fc->spare = 0;
		return 0;
	}
	if (c == NULL || !redis_client_up(c))
		return take_alone(fc, limit, open, lease);
	if (fc->asking)
		return ASK_POLL;
	if (now < fc->retry_at)
		return fc->retry_at - now;
	ask(fc, c, limit);
	return fc->asking ? ASK_POLL : take_alone(fc, limit, open, lease);
}

void
fleet_conns_keep(struct fleet_conns *fc, uint64_t lease)
{
	if (lease == 0)
		return;
	if (fc->spare != 0)
		fleet_conns_drop(fc, fc->spare);
	fc->spare = lease;
}

void
fleet_conns_drop(struct fleet_conns *fc, uint64_t lease)
{
	struct redis_client *c = fleet_client(shard_self());
	char name[160];
	const char *argv[] = {"ZREM", fc->key, name};
	size_t lens[3], i;

	for (i = 0; i < fc->n_held && fc->held[i] != lease; i++)
		;
	if (lease == 0 || i == fc->n_held)
		return;
	fc->held[i] = fc->held[--fc->n_held];
	if (c == NULL || !redis_client_up(c))
		return; /* it lapses */
	member(lease, name, sizeof(name));
	for (i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	redis_client_command(c, ignore_reply, NULL, 3, argv, lens);
}
