/* SPDX-License-Identifier: MIT */
/*
 * Fleet mode: ternd nodes that share one Redis (tern.configure_redis).
 *
 * Every shard keeps a Redis connection for its shared limits (fleet_limit.h:
 * rates, fleet_lease.h: connection limits); shard 0's also carries the
 * fleet's own commands, and a second one there is subscribed to the fleet's
 * channels. Each node writes a heartbeat every second into the sorted set
 * tern:nodes (score: the time), so every node knows how many are alive (what
 * a shared limit is divided by while Redis is away).
 *
 * Admin rules (suspensions, admin bounces) and shaping states are tables the
 * fleet shares (fleet_table.h): a hash each, changes announced on a channel,
 * every node reloading the hash; each node also keeps them in its spool, so
 * that a node restarted while Redis is away still holds them.
 */
#ifndef TERN_FLEET_H
#define TERN_FLEET_H

#include <stdbool.h>

#include "tern/redis.h"

#define FLEET_HEARTBEAT 1.0	/* seconds between a node's heartbeats */
#define FLEET_NODE_TTL 5.0	/* a node without a heartbeat for this long is gone */
#define FLEET_LEASE_TIME 30.0	/* default lease_time */

struct fleet_config {
	struct redis_config redis;
	char node_id[128];
	int fallback_nodes; /* > 0: the node count to assume, instead of the heartbeats' */
	double lease_time;  /* seconds a connection's lease outlives its node (fleet_lease.h) */
};

/* Start on shard 0's loop (before the shards run); the connection follows asynchronously. */
int fleet_open(const struct fleet_config *cfg, struct tern_err *err);
void fleet_close(void);

struct shard;
/* The shard's own Redis client (for shared limits), or NULL outside fleet mode. Its thread only. */
struct redis_client *fleet_client(struct shard *s);

/* Any thread. */
bool fleet_configured(void);
bool fleet_redis_up(void);
/* Nodes alive as last counted (at least 1: this one), or fallback_nodes when set. */
int fleet_nodes(void);
/* This node's id, and the lease time of its connections (fleet_lease.h). */
const char *fleet_node_id(void);
double fleet_lease_time(void);

#endif
