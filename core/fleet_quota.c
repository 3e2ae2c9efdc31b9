// SPDX-License-Identifier: MIT
/*
 * Counts the fleet shares, reserved in batches (see fleet_quota.h). The
 * script reads the period's count, grants what the cap leaves of the batch
 * asked for and adds it, with the asker's debt, in one atomic step, so two
 * nodes asking at once never both get the cap's last permits.
 */
#include "tern/fleet_quota.h"
#include "tern/fleet.h"
#include "tern/log.h"
#include "tern/redis.h"
#include "tern/shard.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_SHARE 0.01 /* a batch is this much of the cap */
#define BATCH_MAX 100

/* KEYS[1]: the count; ARGV: cap, debt, permits wanted, ttl ms. -> permits granted */
static const char reserve_script[] =
	"local cap, debt, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local used = tonumber(redis.call('GET', KEYS[1]) or 0)\n"
	"local n = math.min(want, cap - used - debt)\n"
	"if n < 0 then n = 0 end\n"
	"if debt + n > 0 then\n"
	"  redis.call('INCRBY', KEYS[1], debt + n)\n"
	"  redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
	"end\n"
	"return n\n";

struct reserve_req {
	fleet_quota_fn fn;
	void *arg;
	char key[300];
};

int
fleet_quota_batch(double cap)
{
	double n = ceil(cap * BATCH_SHARE);

	return n < 1 ? 1 : n > BATCH_MAX ? BATCH_MAX : (int)n;
}

bool
fleet_quota_up(void)
{
	struct redis_client *c = fleet_client(shard_self());

	return c != NULL && redis_client_up(c);
}

static void
reserved(void *arg, const redisReply *reply)
{
	struct reserve_req *req = arg;
	int granted = -1;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		granted = (int)reply->integer;
	else if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		log_warn("fleet", "%s: the quota script failed: %s", req->key, reply->str);
	req->fn(req->arg, granted);
	free(req);
}

int
fleet_quota_reserve(const char *name, double cap, int debt, int want, double ttl,
		    fleet_quota_fn fn, void *arg)
{
	struct redis_client *c = fleet_client(shard_self());
	char caps[32], debts[16], wants[16], ttls[32];
	struct reserve_req *req;
	const char *argv[8];
	size_t lens[8];
	int i, rc;

	if (c == NULL || !redis_client_up(c))
		return -ENOTCONN;
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return -ENOMEM;
	*req = (struct reserve_req){.fn = fn, .arg = arg};
	snprintf(req->key, sizeof(req->key), "tern:quota:%s", name);
	snprintf(caps, sizeof(caps), "%.0f", cap);
	snprintf(debts, sizeof(debts), "%d", debt);
	snprintf(wants, sizeof(wants), "%d", want);
	snprintf(ttls, sizeof(ttls), "%.0f", ttl * 1000);
	argv[0] = "EVAL", argv[1] = reserve_script, argv[2] = "1", argv[3] = req->key;
	argv[4] = caps, argv[5] = debts, argv[6] = wants, argv[7] = ttls;
	for (i = 0; i < 8; i++)
		lens[i] = strlen(argv[i]);
	rc = redis_client_command(c, reserved, req, 8, argv, lens);
	if (rc < 0)
		free(req);
	return rc;
}
