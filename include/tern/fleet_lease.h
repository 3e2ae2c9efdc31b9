/* SPDX-License-Identifier: MIT */
/*
 * A connection limit shared by the fleet (fleet mode): every open
 * connection of a path holds a lease in Redis, a member "node:id" of the
 * sorted set tern:conn:<path> scored by its expiry (Redis's clock). A
 * connection opens only after a script that drops expired leases and adds
 * one if fewer than the limit remain has granted it; the node renews the
 * leases it holds every third of the lease time (configure_redis
 * lease_time) and removes one when its connection closes, so a node that
 * dies leaves leases that lapse after the lease time.
 *
 * Redis away: each node allows the limit divided by the fleet's node count
 * (fleet.h), at least one. The connections opened meanwhile are leased by
 * the first renewal once Redis is back.
 *
 * A fleet_conns belongs to one shard: use and release it there. A request
 * in flight holds it; release frees it once the reply is in.
 */
#ifndef TERN_FLEET_LEASE_H
#define TERN_FLEET_LEASE_H

#include <stdint.h>

struct fleet_conns;

/* The leases of a path for the Redis key name ("tern:conn:" is prepended); NULL: no memory. */
struct fleet_conns *fleet_conns_new(const char *name);
/*
 * A new connection within the fleet-wide limit, open of them on this node
 * now: 0 with its lease id in *lease (0 when none could be recorded), else
 * the seconds to wait before asking again (a close wakes the path anyway).
 */
double fleet_conns_take(struct fleet_conns *fc, int limit, int open, uint64_t *lease);
/*
 * A lease taken but not used now (the connection rate said wait): it stays
 * for the next connection, and goes back if unused for a third of the lease
 * time.
 */
void fleet_conns_keep(struct fleet_conns *fc, uint64_t lease);
/* The connection holding lease closed. */
void fleet_conns_drop(struct fleet_conns *fc, uint64_t lease);
void fleet_conns_release(struct fleet_conns *fc);

/* Pure: the connections one node may open while Redis is away. */
int fleet_conns_alone(int limit, int nodes);

#endif
