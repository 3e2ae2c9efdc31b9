// SPDX-License-Identifier: MIT
/*
 * Fleet-wide rates (messages, connections): GCRA in a Redis script, permits in batches (see
 * fleet_limit.h). The script keeps the theoretical arrival time (TAT) of
 * the key in milliseconds of Redis's own clock, so the nodes' clocks never
 * matter, and grants as many of the permits asked for as the limit allows
 * now, or says how long until the next one.
 */
#include "tern/fleet_limit.h"
#include "tern/fleet.h"
#include "tern/log.h"
#include "tern/redis.h"
#include "tern/shard.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_SECONDS 0.1   /* a batch is about this much of the rate */
#define BATCH_MAX 100
#define PERMIT_LIFE 1.0	    /* unspent permits lapse after this long */
#define ASK_POLL 0.005	    /* while a batch is on its way, look again this soon */
/*
 * Timers fire late on a busy node and Redis answers late on a busy host: a
 * fleet whose askers all come this late still gets the permits it missed,
 * in batches; a longer pause starts afresh, so nothing builds into a burst.
 */
#define CATCH_UP_SECONDS 0.25

/* KEYS[1]: the rate; ARGV: interval ms, burst tolerance ms, permits wanted, catch-up ms. -> {granted, wait ms} */
static const char gcra_script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local interval, tol, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local late = tonumber(ARGV[4])\n"
	"local tat = tonumber(redis.call('GET', KEYS[1]) or now)\n"
	"if tat < now - late then tat = now - late end\n"
	"local room = math.floor((now + tol - tat) / interval) + 1\n"
	"if room < 0 then room = 0 end\n"
	"local n = math.min(want, room)\n"
	"if n > 0 then\n"
	"  tat = tat + n * interval\n"
	"  redis.call('SET', KEYS[1], tat, 'PX', math.max(1, math.ceil(tat - now + tol)) + 1000)\n"
	"end\n"
	"local wait = 0\n"
	"if n < want then wait = math.max(0, math.ceil(tat - tol - now)) end\n"
	"return { n, wait }\n";

struct fleet_rate {
	char key[640];
	double per_second;
	int permits;	       /* granted by Redis, not yet spent */
	double permits_lapse;  /* when the unspent ones lapse */
	double retry_at;       /* Redis said none before then */
	bool asking;	       /* a batch request is in flight: it holds this */
	bool released;
	int fallback_nodes;    /* the node count the fallback throttle is divided by */
	struct throttle fallback;
};

int
fleet_rate_batch(double per_second)
{
	double n = ceil(per_second * BATCH_SECONDS);

	return n < 1 ? 1 : n > BATCH_MAX ? BATCH_MAX : (int)n;
}

struct fleet_rate *
fleet_rate_new(const char *kind, const char *name)
{
	struct fleet_rate *r = calloc(1, sizeof(*r));

	if (r != NULL)
		snprintf(r->key, sizeof(r->key), "tern:%s:%s", kind, name);
	return r;
}

void
fleet_rate_retune(struct fleet_rate *r, double per_second)
{
	if (r->per_second == per_second)
		return;
	r->per_second = per_second;
	r->permits = 0;
	r->retry_at = 0;
	r->fallback_nodes = 0;
}

void
fleet_rate_release(struct fleet_rate *r)
{
	if (r == NULL)
		return;
	r->released = true;
	if (!r->asking)
		free(r);
}

static void
granted(void *arg, const redisReply *reply)
{
	struct fleet_rate *r = arg;
	double now = util_now();

	r->asking = false;
	if (r->released) {
		free(r);
		return;
	}
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_INTEGER) {
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			log_warn("fleet", "%s: the rate script failed: %s", r->key, reply->str);
		r->retry_at = now + 0.1;
		return;
	}
	r->permits = (int)reply->element[0]->integer;
	r->permits_lapse = now + PERMIT_LIFE;
	r->retry_at = now + (double)reply->element[1]->integer / 1000;
}

static void
ask(struct fleet_rate *r, struct redis_client *c)
{
	char interval[32], tol[32], want[16], late[32];
	const char *argv[] = {"EVAL", gcra_script, "1", r->key, interval, tol, want, late};
	size_t lens[8];
	int batch = fleet_rate_batch(r->per_second), i;

	snprintf(interval, sizeof(interval), "%.3f", 1000 / r->per_second);
	snprintf(tol, sizeof(tol), "%.3f", (batch - 1) * 1000 / r->per_second);
	snprintf(want, sizeof(want), "%d", batch);
	snprintf(late, sizeof(late), "%.3f", CATCH_UP_SECONDS * 1000);
	for (i = 0; i < 8; i++)
		lens[i] = strlen(argv[i]);
	if (redis_client_command(c, granted, r, 8, argv, lens) == 0)
		r->asking = true;
}

/* Redis away: this node's share of the rate, by the fleet's last node count. */
static double
take_alone(struct fleet_rate *r, double now)
{
	int nodes = fleet_nodes();

	if (nodes != r->fallback_nodes) {
		r->fallback_nodes = nodes;
		throttle_init(&r->fallback, r->per_second / nodes, 1);
	}
	return throttle_take(&r->fallback, now);
}

double
fleet_rate_take(struct fleet_rate *r, double now)
{
	struct redis_client *c = fleet_client(shard_self());

	if (r->per_second <= 0)
		return 0;
	if (c == NULL || !redis_client_up(c)) {
		r->permits = 0;
		return take_alone(r, now);
	}
	if (r->permits > 0 && now < r->permits_lapse) {
		r->permits--;
		return 0;
	}
	r->permits = 0;
	if (r->asking)
		return ASK_POLL;
	if (now < r->retry_at)
		return r->retry_at - now;
	ask(r, c);
	return r->asking ? ASK_POLL : take_alone(r, now);
}
